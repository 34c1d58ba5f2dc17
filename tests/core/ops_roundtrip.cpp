// Reads q, k, v from a safetensors file, runs attention() through the C++ API and writes the
// output; the H100 script compares it with torch.ops.xattn.attention from Python.
// usage: xattn_ops_roundtrip IN.safetensors OUT.safetensors MODE STRIDE BLOCK THRESHOLD CAUSAL DEVICE
#include <iostream>

#include "core/attention/xattention.h"
#include "core/device.h"
#include "core/safetensors/safetensors.h"

int main(int argc, char** argv) {
  if (argc != 9) {
    std::cerr << "usage: xattn_ops_roundtrip IN OUT MODE STRIDE BLOCK THRESHOLD CAUSAL DEVICE\n";
    return 2;
  }
  try {
    const auto in = xattn::safetensors::load(argv[1]);
    const at::Device dev = xattn::parse_device(argv[8]);
    xattn::attention::AttentionSpec spec;
    spec.mode = argv[3];
    spec.xattention.stride = std::stoi(argv[4]);
    spec.xattention.block_size = std::stoi(argv[5]);
    spec.xattention.threshold = std::stod(argv[6]);
    xattn::attention::AttentionOptions o;
    o.causal = std::string(argv[7]) == "1";
    const at::Tensor out =
        xattn::attention::attention(in.at("q").to(dev), in.at("k").to(dev), in.at("v").to(dev), spec, o);
    xattn::safetensors::save(argv[2], {{"out", out}});
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
