#!/usr/bin/env python3
"""Writes the inputs and top-ratio masks of `xattn bench attention --cases causal-8k` for
scripts/attn_trace.cu (MASK_DIR): q.bin, k.bin, v.bin (bf16, [1, L, H, 128], torch.manual_seed(0)
as the bench seeds) and idx-R.bin / cnt-R.bin (int32) from torch.ops.xattn.estimate (S 8).
usage: mkmask.py BUILD_DIR OUT_DIR   (BUILD_DIR: a CUDA build with lib/libxattn_ops.so)"""
import sys

import torch


def main(build, out):
    torch.ops.load_library(build + "/lib/libxattn_ops.so")
    torch.manual_seed(0)
    L, H, HK = 8192, 32, 8
    q = torch.randn(1, L, H, 128, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(1, L, HK, 128, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(1, L, HK, 128, device="cuda", dtype=torch.bfloat16)
    for name, t in (("q", q), ("k", k), ("v", v)):
        t.cpu().view(torch.int16).numpy().tofile(f"{out}/{name}.bin")
    for r in (0.2, 0.25, 0.35, 0.5):
        _, idx, cnt = torch.ops.xattn.estimate(q, k, 8, 128, 0.9, True, "top_ratio", 16, r, None)
        idx.to(torch.int32).cpu().numpy().tofile(f"{out}/idx-{r:.2f}.bin")
        cnt.to(torch.int32).cpu().numpy().tofile(f"{out}/cnt-{r:.2f}.bin")
        print(f"top-ratio {r}: {int(cnt.sum())} kept blocks")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
