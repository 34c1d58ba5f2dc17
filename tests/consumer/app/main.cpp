// A tiny application built against the installed xattn package.
#include <iostream>

#include "core/attention/xattention.h"
#include "core/build_info.h"
#include "core/safetensors/safetensors.h"

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  const std::string path = std::string(argv[1]) + "/consumer.safetensors";
  const at::Tensor w = at::arange(6, at::kFloat).reshape({2, 3});
  xattn::safetensors::save(path, {{"w", w}});
  const auto back = xattn::safetensors::load(path);
  if (!at::equal(back.at("w"), w)) {
    std::cerr << "round trip through the installed library changed the tensor\n";
    return 1;
  }
  {
    // The usage example of core/attention/xattention.h, built against the installed headers.
    using namespace xattn::attention;
    at::Tensor q = at::randn({1, 1000, 8, 64}), k = at::randn({1, 1000, 2, 64}), v = at::randn({1, 1000, 2, 64});
    XAttentionConfig cfg;
    cfg.block_size = 64;
    AttentionOptions opts;
    opts.causal = true;
    BlockMask mask = estimate(q, k, cfg, opts);
    AttentionOutput out = block_sparse_attention(q, k, v, mask, opts);
    AttentionSpec spec;
    spec.xattention = cfg;
    at::Tensor o = attention(q, k, v, spec, opts);
    if (!at::allclose(o, out.out) || mask.density() <= 0.0) {
      std::cerr << "XAttention through the installed library disagreed with itself\n";
      return 1;
    }
  }
  std::cout << "xattn " << xattn::build_info().version << " consumer ok\n";
  return 0;
}
