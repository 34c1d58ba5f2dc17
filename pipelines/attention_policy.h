// Which attention each DiT layer runs at each denoising step, from one YAML struct:
//
//   mode: xattention          # or dense
//   warmup_steps: 5           # the first steps run dense everywhere
//   xattention: {stride: 8, block_size: 128, threshold: 0.9}
//   dense_layers: [dual:0, single:38-39]
//   layers:                   # overrides, applied in order; later ones win
//     - {layers: dual, threshold: 0.95}
//     - {layers: single:0-9, head_thresholds: [0.9, 0.95, ...]}   # one per head
//   dense_final_step: false
//   mask_reuse: 1             # estimate every k-th sparse step, reuse the masks in between
//
// Layers are named by stream and index: dual:3 (the 4th dual-stream block), single:0-9 (a range,
// inclusive), dual / single (a whole stream), all.
//
// PolicyAttention runs one generation's attention calls under a policy and records, per step and
// layer, the density and the time of each call.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/attention/xattention.h"
#include "core/config/config.h"

namespace xattn::pipelines {

struct LayerId {
  enum class Stream { kDual, kSingle };
  Stream stream = Stream::kDual;
  int index = 0;
  std::string name() const;  // "dual:3"
};

// "all", "dual", "single", "dual:3", "single:0-9". Throws xattn::Error on anything else.
struct LayerSelector {
  bool dual = true, single = true;
  int lo = 0, hi = 1 << 30;
  static LayerSelector parse(const std::string& text);
  bool matches(const LayerId& id) const;
};

struct LayerOverride {
  std::string layers = "all";
  std::optional<double> threshold;
  std::vector<double> head_thresholds;
  bool dense = false;

  template <class V>
  void fields(V& v) {
    namespace c = xattn::config;
    v.field("layers", layers, "which layers: all, dual, single, dual:I, single:I-J");
    v.field("threshold", threshold, "tau for these layers", c::if_set(c::range(0.0, 1.0)));
    v.field("head_thresholds", head_thresholds, "per-head tau for these layers (one per head)",
            c::each(c::range(0.0, 1.0)));
    v.field("dense", dense, "run these layers dense");
  }
  std::string check() const;
};

struct AttentionPolicy {
  std::string mode = "xattention";
  int warmup_steps = 5;
  attention::XAttentionConfig xattention;
  std::vector<std::string> dense_layers;
  std::vector<LayerOverride> layers;
  bool dense_final_step = false;
  int mask_reuse = 1;

  template <class V>
  void fields(V& v) {
    namespace c = xattn::config;
    v.field("mode", mode, "dense or xattention", c::one_of<std::string>({"dense", "xattention"}));
    v.field("warmup_steps", warmup_steps, "first denoising steps run dense", c::at_least(0));
    v.field("xattention", xattention, "block selection for sparse layers (stride, block_size, threshold, ...)");
    v.field("dense_layers", dense_layers, "layers that always run dense (dual:I, single:I-J, ...)");
    v.field("layers", layers, "per-layer overrides, applied in order");
    v.field("dense_final_step", dense_final_step, "run the last step dense");
    v.field("mask_reuse", mask_reuse, "estimate masks every k-th sparse step and reuse them in between",
            c::at_least(1));
  }
  std::string check() const;

  bool dense_step(int step, int total_steps) const;
  // Whether sparse step `step` estimates fresh masks (else it reuses the last estimated ones).
  bool estimates_at(int step) const { return (step - warmup_steps) % mask_reuse == 0; }
  // The attention spec of one layer at one step.
  attention::AttentionSpec spec(int step, int total_steps, const LayerId& layer) const;
};

// Per-call record.
struct LayerAttentionStat {
  int step = 0;
  std::string layer;
  bool dense = true;
  double density = 1.0;  // kept / computable blocks
  double ms = 0.0;       // wall time of the call (device synchronised around it when timing)
};

// The attention of one generate() call under a policy (hook for the transformer).
class PolicyAttention {
 public:
  PolicyAttention(AttentionPolicy policy, int total_steps, bool time_calls);
  void begin_step(int step) { step_ = step; }
  // q: [B, Lq, H, D]; k, v: [B, Lk, Hkv, D].
  at::Tensor operator()(const LayerId& layer, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const attention::AttentionOptions& opts);
  // Densities are read back from the device here, once for all calls since the last read, not
  // inside the calls (that would stall the GPU after every layer).
  const std::vector<LayerAttentionStat>& stats() const;
  double mean_sparse_density() const;  // over sparse calls; 1 when none
  double attention_ms() const;         // sum over calls

 private:
  AttentionPolicy policy_;
  int total_steps_;
  bool time_;
  int step_ = 0;
  std::map<std::string, attention::BlockMask> masks_;  // reused masks by layer (mask_reuse > 1)
  attention::Workspace workspace_;
  mutable std::vector<LayerAttentionStat> stats_;
  struct Pending {
    size_t stat;
    at::Tensor kept, computable;  // device scalars (int64)
  };
  mutable std::vector<Pending> pending_;
};

}  // namespace xattn::pipelines
