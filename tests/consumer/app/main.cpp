// A tiny application built against the installed xattn package.
#include <iostream>

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
  std::cout << "xattn " << xattn::build_info().version << " consumer ok\n";
  return 0;
}
