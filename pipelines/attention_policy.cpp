#include "pipelines/attention_policy.h"

#include <chrono>

#include "core/device.h"
#include "core/error.h"

namespace xattn::pipelines {

std::string LayerId::name() const { return (stream == Stream::kDual ? "dual:" : "single:") + std::to_string(index); }

LayerSelector LayerSelector::parse(const std::string& text) {
  LayerSelector s;
  if (text == "all") return s;
  const auto colon = text.find(':');
  const std::string stream = text.substr(0, colon);
  if (stream != "dual" && stream != "single")
    throw Error("policy", "layer selector '" + text + "': expected all, dual, single, dual:I, single:I or single:I-J");
  s.dual = stream == "dual";
  s.single = !s.dual;
  if (colon == std::string::npos) return s;
  const std::string range = text.substr(colon + 1);
  const auto dash = range.find('-');
  try {
    size_t used = 0;
    s.lo = std::stoi(range.substr(0, dash), &used);
    if (used != (dash == std::string::npos ? range.size() : dash)) throw std::invalid_argument("trailing");
    s.hi = s.lo;
    if (dash != std::string::npos) {
      s.hi = std::stoi(range.substr(dash + 1), &used);
      if (used != range.size() - dash - 1) throw std::invalid_argument("trailing");
    }
  } catch (const std::exception&) {
    throw Error("policy", "layer selector '" + text + "': the index must be I or I-J (non-negative integers)");
  }
  if (s.lo < 0 || s.hi < s.lo) throw Error("policy", "layer selector '" + text + "': empty or negative range");
  return s;
}

bool LayerSelector::matches(const LayerId& id) const {
  const bool stream_ok = id.stream == LayerId::Stream::kDual ? dual : single;
  return stream_ok && id.index >= lo && id.index <= hi;
}

namespace {
std::string selector_error(const std::string& text) {
  try {
    LayerSelector::parse(text);
  } catch (const Error& e) {
    return e.message();
  }
  return "";
}
}  // namespace

std::string LayerOverride::check() const { return selector_error(layers); }

std::string AttentionPolicy::check() const {
  for (const std::string& l : dense_layers) {
    const std::string e = selector_error(l);
    if (!e.empty()) return "dense_layers: " + e;
  }
  return xattention.check();
}

bool AttentionPolicy::dense_step(int step, int total_steps) const {
  return mode == "dense" || step < warmup_steps || (dense_final_step && step == total_steps - 1);
}

attention::AttentionSpec AttentionPolicy::spec(int step, int total_steps, const LayerId& layer) const {
  attention::AttentionSpec s;
  s.xattention = xattention;
  s.mode = dense_step(step, total_steps) ? "dense" : "xattention";
  for (const std::string& d : dense_layers)
    if (LayerSelector::parse(d).matches(layer)) s.mode = "dense";
  for (const LayerOverride& o : layers) {
    if (!LayerSelector::parse(o.layers).matches(layer)) continue;
    if (o.threshold) s.xattention.threshold = *o.threshold;
    if (!o.head_thresholds.empty()) s.xattention.head_thresholds = o.head_thresholds;
    if (o.dense) s.mode = "dense";
  }
  if (s.mode == "xattention" && s.is_dense()) s.mode = "dense";  // tau >= 1 everywhere
  return s;
}

PolicyAttention::PolicyAttention(AttentionPolicy policy, int total_steps, bool time_calls)
    : policy_(std::move(policy)), total_steps_(total_steps), time_(time_calls) {
  const std::string bad = config::validate(policy_, "attention");
  if (!bad.empty()) throw Error("policy", bad);
}

at::Tensor PolicyAttention::operator()(const LayerId& layer, const at::Tensor& q, const at::Tensor& k,
                                       const at::Tensor& v, const attention::AttentionOptions& opts) {
  const attention::AttentionSpec spec = policy_.spec(step_, total_steps_, layer);
  if (time_) device_synchronize(q.device());
  const auto t0 = std::chrono::steady_clock::now();
  LayerAttentionStat st;
  st.step = step_;
  st.layer = layer.name();
  at::Tensor out;
  if (spec.mode == "dense") {
    out = attention::dense_attention(q, k, v, opts).out;
  } else {
    st.dense = false;
    attention::AttentionOptions o = opts;
    if (policy_.mask_reuse == 1) {  // estimate every step; the workspace keeps this allocation-free
      o.workspace = &workspace_;
      const attention::BlockMask m = attention::estimate(q, k, spec.xattention, o);
      out = attention::block_sparse_attention(q, k, v, m, o).out;
      pending_.push_back({stats_.size(), m.kept.sum(), m.computable.sum()});  // queued before the workspace is reused
    } else {  // masks outlive the call, so they own their memory
      auto it = masks_.find(st.layer);
      if (it == masks_.end() || policy_.estimates_at(step_))
        it = masks_.insert_or_assign(st.layer, attention::estimate(q, k, spec.xattention, o)).first;
      out = attention::block_sparse_attention(q, k, v, it->second, o).out;
      pending_.push_back({stats_.size(), it->second.kept.sum(), it->second.computable.sum()});
    }
  }
  if (time_) device_synchronize(q.device());
  st.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  stats_.push_back(st);
  return out;
}

const std::vector<LayerAttentionStat>& PolicyAttention::stats() const {
  if (!pending_.empty()) {
    std::vector<at::Tensor> kept, computable;
    for (const Pending& p : pending_) {
      kept.push_back(p.kept);
      computable.push_back(p.computable);
    }
    // One read for all pending calls.
    const at::Tensor both = at::stack({at::stack(kept), at::stack(computable)}).to(at::kCPU, at::kDouble);
    for (size_t i = 0; i < pending_.size(); ++i) {
      const double c = both[1][static_cast<int64_t>(i)].item<double>();
      stats_[pending_[i].stat].density = c > 0 ? both[0][static_cast<int64_t>(i)].item<double>() / c : 0.0;
    }
    pending_.clear();
  }
  return stats_;
}

double PolicyAttention::mean_sparse_density() const {
  double sum = 0;
  int n = 0;
  for (const auto& s : stats())
    if (!s.dense) {
      sum += s.density;
      ++n;
    }
  return n ? sum / n : 1.0;
}

double PolicyAttention::attention_ms() const {
  double t = 0;
  for (const auto& s : stats_) t += s.ms;  // times are known without a read-back
  return t;
}

}  // namespace xattn::pipelines
