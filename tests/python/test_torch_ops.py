#!/usr/bin/env python3
"""On a machine with PyTorch: torch.ops.xattn.* (loaded from libxattn_ops.so) must give the
same result as the C++ call (tests/core/ops_roundtrip.cpp) on the same inputs, and match
PyTorch's own SDPA with the block mask expanded to tokens. usage: test_torch_ops.py BUILD_DIR"""
import os
import subprocess
import sys
import tempfile

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file


def expand(mask, block, lq, lk):
    # [B, H, Qb, Kb] -> [B, H, Lq, Lk]
    m = mask.repeat_interleave(block, 2).repeat_interleave(block, 3)
    return m[:, :, :lq, :lk]


def main(build):
    torch.ops.load_library(os.path.join(build, "lib", "libxattn_ops.so"))
    roundtrip = os.path.join(build, "bin", "xattn_ops_roundtrip")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    failures = 0
    print(f"{'device':6} {'mode':10} {'causal':6} {'vs C++':>10} {'vs SDPA':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for dev in devices:
            g = torch.Generator().manual_seed(0)
            q = torch.randn(2, 1000, 8, 64, generator=g).to(dev)
            k = torch.randn(2, 1000, 2, 64, generator=g).to(dev)
            v = torch.randn(2, 1000, 2, 64, generator=g).to(dev)
            save_file({"q": q.cpu(), "k": k.cpu(), "v": v.cpu()}, f"{tmp}/in.safetensors")
            for mode, causal in [("xattention", True), ("xattention", False), ("dense", True)]:
                out = torch.ops.xattn.attention(q, k, v, mode, 8, 64, 0.9, causal)
                subprocess.run([roundtrip, f"{tmp}/in.safetensors", f"{tmp}/out.safetensors", mode, "8", "64",
                                "0.9", "1" if causal else "0", dev], check=True)
                cpp = load_file(f"{tmp}/out.safetensors")["out"]
                d_cpp = (out.cpu() - cpp).abs().max().item()
                # Independent reference: SDPA with the selected blocks (and causality) as a mask.
                qt, kt, vt = (x.transpose(1, 2) for x in (q, k.repeat_interleave(4, 2), v.repeat_interleave(4, 2)))
                if mode == "xattention":
                    mask, _, _ = torch.ops.xattn.estimate(q, k, 8, 64, 0.9, causal)
                    allowed = expand(mask, 64, 1000, 1000)
                else:
                    allowed = torch.ones(2, 8, 1000, 1000, dtype=torch.bool, device=dev)
                if causal:
                    allowed = allowed & torch.ones(1000, 1000, dtype=torch.bool, device=dev).tril()
                ref = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=allowed).transpose(1, 2)
                d_ref = (out - ref).abs().max().item()
                ok = d_cpp == 0.0 and d_ref < 1e-4
                failures += not ok
                print(f"{dev:6} {mode:10} {str(causal):6} {d_cpp:10.2e} {d_ref:10.2e} {'ok' if ok else 'FAIL'}")
    print("torch ops:", "all passed" if failures == 0 else f"{failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
