#include "pipelines/hunyuan/vae.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/attention/xattention.h"
#include "core/device.h"
#include "core/error.h"
#include "pipelines/text/hf_model_util.h"

namespace xattn::hunyuan {

// ---------------------------------------------------------------------------------------------
// Config

VaeConfig VaeConfig::from_json(const std::string& json_text, const std::string& origin) {
  const text::HfConfigReader r(json_text, origin);
  VaeConfig c;
  c.latent_channels = r.integer("latent_channels", c.latent_channels);
  c.out_channels = r.integer("out_channels", c.out_channels);
  const auto blocks = r.int_list("block_out_channels");
  if (!blocks.empty()) c.block_out_channels = blocks;
  c.layers_per_block = r.integer("layers_per_block", c.layers_per_block);
  c.norm_num_groups = r.integer("norm_num_groups", c.norm_num_groups);
  c.scaling_factor = r.number("scaling_factor", c.scaling_factor);
  c.spatial_compression_ratio = r.integer("spatial_compression_ratio", c.spatial_compression_ratio);
  c.temporal_compression_ratio = r.integer("temporal_compression_ratio", c.temporal_compression_ratio);
  c.mid_block_add_attention = r.boolean("mid_block_add_attention", c.mid_block_add_attention);
  const std::string act = r.str("act_fn", "silu");
  if (act != "silu") r.fail("act_fn", "'" + act + "' is not supported (silu)");
  const std::string bad = c.check();
  if (!bad.empty()) throw Error("model", origin + ": " + bad);
  return c;
}

VaeConfig VaeConfig::from_file(const std::string& path) { return from_json(text::read_text_file(path), path); }

std::string VaeConfig::to_json() const {
  nlohmann::json j = {{"_class_name", "AutoencoderKLHunyuanVideo"},
                      {"act_fn", "silu"},
                      {"latent_channels", latent_channels},
                      {"in_channels", out_channels},
                      {"out_channels", out_channels},
                      {"block_out_channels", block_out_channels},
                      {"layers_per_block", layers_per_block},
                      {"norm_num_groups", norm_num_groups},
                      {"scaling_factor", scaling_factor},
                      {"spatial_compression_ratio", spatial_compression_ratio},
                      {"temporal_compression_ratio", temporal_compression_ratio},
                      {"mid_block_add_attention", mid_block_add_attention}};
  return j.dump(2);
}

std::string VaeConfig::check() const {
  std::ostringstream e;
  const auto pow2 = [](int64_t v) { return v >= 1 && (v & (v - 1)) == 0; };
  const int64_t n = static_cast<int64_t>(block_out_channels.size());
  int64_t spatial_layers = 0, time_layers = 0;
  for (int64_t v = spatial_compression_ratio; v > 1; v /= 2) ++spatial_layers;
  for (int64_t v = temporal_compression_ratio; v > 1; v /= 2) ++time_layers;
  if (latent_channels < 1 || out_channels < 1 || layers_per_block < 1 || norm_num_groups < 1 || n < 1)
    e << "sizes must be positive";
  else if (!pow2(spatial_compression_ratio) || !pow2(temporal_compression_ratio))
    e << "compression ratios must be powers of two";
  else if (spatial_layers > n - 1 || time_layers > n - 1)
    e << "block_out_channels has " << n << " blocks: too few for the compression ratios";
  else
    for (int64_t c : block_out_channels)
      if (c % norm_num_groups != 0) {
        e << "block_out_channels " << c << " is not a multiple of norm_num_groups " << norm_num_groups;
        break;
      }
  return e.str();
}

// ---------------------------------------------------------------------------------------------
// Parameters

VaeDecoder::VaeDecoder(VaeConfig cfg, const ModelOptions& o) : cfg_(std::move(cfg)) {
  const auto t = at::TensorOptions().dtype(o.dtype).device(o.device);
  auto conv = [&](int64_t in, int64_t out, int64_t k) {
    return Conv{at::empty({out, in, k, k, k}, t), at::empty({out}, t)};
  };
  auto norm = [&](int64_t c) { return Norm{at::empty({c}, t), at::empty({c}, t)}; };
  auto res = [&](int64_t in, int64_t out) {
    Resnet r{norm(in), norm(out), conv(in, out, 3), conv(out, out, 3), {}};
    if (in != out) r.shortcut = conv(in, out, 1);
    return r;
  };
  const std::vector<int64_t>& ch = cfg_.block_out_channels;
  const int64_t n = static_cast<int64_t>(ch.size()), top = ch.back();
  post_quant_ = conv(cfg_.latent_channels, cfg_.latent_channels, 1);
  conv_in_ = conv(cfg_.latent_channels, top, 3);
  mid0_ = res(top, top);
  mid1_ = res(top, top);
  if (cfg_.mid_block_add_attention) {
    attn_norm_ = norm(top);
    for (Linear* l : {&attn_q_, &attn_k_, &attn_v_, &attn_out_}) l->make(top, top, t);
  }
  int64_t spatial_layers = 0, time_layers = 0;
  for (int64_t v = cfg_.spatial_compression_ratio; v > 1; v /= 2) ++spatial_layers;
  for (int64_t v = cfg_.temporal_compression_ratio; v > 1; v /= 2) ++time_layers;
  int64_t prev = top;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t out = ch[static_cast<size_t>(n - 1 - i)];
    UpBlock b;
    for (int64_t j = 0; j <= cfg_.layers_per_block; ++j) b.resnets.push_back(res(j == 0 ? prev : out, out));
    const bool last = i == n - 1;
    const bool spatial = i < spatial_layers;
    const bool time = i >= n - 1 - time_layers && !last;
    if (spatial || time) {
      if (!spatial) throw Error("model", "VAE: temporal-only upsampling is not supported");
      b.upsample = conv(out, out, 3);
      b.time_factor = time ? 2 : 1;
    }
    up_.push_back(std::move(b));
    prev = out;
  }
  norm_out_ = norm(ch.front());
  conv_out_ = conv(ch.front(), cfg_.out_channels, 3);
}

Params VaeDecoder::named_parameters() const {
  Params p;
  auto conv = [&](const Conv& c, const std::string& name) {
    p[name + ".weight"] = c.w;
    p[name + ".bias"] = c.b;
  };
  auto norm = [&](const Norm& n, const std::string& name) {
    p[name + ".weight"] = n.w;
    p[name + ".bias"] = n.b;
  };
  auto res = [&](const Resnet& r, const std::string& n) {
    norm(r.norm1, n + ".norm1");
    norm(r.norm2, n + ".norm2");
    conv(r.conv1, n + ".conv1.conv");
    conv(r.conv2, n + ".conv2.conv");
    if (r.shortcut.w.defined()) conv(r.shortcut, n + ".conv_shortcut.conv");
  };
  conv(post_quant_, "post_quant_conv");
  conv(conv_in_, "decoder.conv_in.conv");
  res(mid0_, "decoder.mid_block.resnets.0");
  res(mid1_, "decoder.mid_block.resnets.1");
  if (cfg_.mid_block_add_attention) {
    norm(attn_norm_, "decoder.mid_block.attentions.0.group_norm");
    attn_q_.add_to(p, "decoder.mid_block.attentions.0.to_q");
    attn_k_.add_to(p, "decoder.mid_block.attentions.0.to_k");
    attn_v_.add_to(p, "decoder.mid_block.attentions.0.to_v");
    attn_out_.add_to(p, "decoder.mid_block.attentions.0.to_out.0");
  }
  for (size_t i = 0; i < up_.size(); ++i) {
    const std::string n = "decoder.up_blocks." + std::to_string(i);
    for (size_t j = 0; j < up_[i].resnets.size(); ++j) res(up_[i].resnets[j], n + ".resnets." + std::to_string(j));
    if (up_[i].upsample.w.defined()) conv(up_[i].upsample, n + ".upsamplers.0.conv.conv");
  }
  norm(norm_out_, "decoder.conv_norm_out");
  conv(conv_out_, "decoder.conv_out.conv");
  return p;
}

VaeDecoder VaeDecoder::load(const std::string& dir, const ModelOptions& options) {
  VaeDecoder v(VaeConfig::from_file(text::model_config_path(dir)), options);
  text::load_parameters(text::open_checkpoint(dir), v.named_parameters(), "the VAE decoder");
  return v;
}

void VaeDecoder::check_checkpoint(const std::string& dir) {
  VaeDecoder v(VaeConfig::from_file(text::model_config_path(dir)), {at::kMeta, at::kFloat});
  text::load_parameters(text::open_checkpoint(dir), v.named_parameters(), "the VAE decoder", /*dry_run=*/true);
}

VaeDecoder VaeDecoder::random(const VaeConfig& config, const ModelOptions& options, uint64_t seed) {
  const std::string bad = config.check();
  if (!bad.empty()) throw Error("model", "random VAE: " + bad);
  VaeDecoder v(config, options);
  text::fill_random(v.named_parameters(), seed);
  return v;
}

// ---------------------------------------------------------------------------------------------
// Decoding

at::Tensor VaeDecoder::Conv::operator()(const at::Tensor& x) const {
  const int64_t k = w.size(2);
  if (k == 1) return at::conv3d(x, w, b);
  // Replicate padding: k/2 on both sides of W and H, k-1 frames in front (causal in time).
  const int64_t s = k / 2;
  const at::Tensor padded = at::replication_pad3d(x, {s, s, s, s, k - 1, 0});
  const int64_t T = x.size(2);
  // On the CPU, LibTorch's conv3d unfolds its whole input (C·k³ × T·H·W floats, hundreds of MB at
  // video sizes) into fresh memory: page faults, not arithmetic, dominated. Output frames depend on
  // k input frames only, so convolve windows of frames whose unfolded size stays near 16 MB.
  const int64_t per_frame = x.size(1) * k * k * k * x.size(3) * x.size(4) * static_cast<int64_t>(x.element_size());
  const int64_t chunk = std::max<int64_t>(1, (int64_t{16} << 20) / std::max<int64_t>(per_frame, 1));
  if (!x.is_cpu() || chunk >= T) return at::conv3d(padded, w, b);
  std::vector<at::Tensor> parts;
  for (int64_t t0 = 0; t0 < T; t0 += chunk) {
    const int64_t n = std::min(chunk, T - t0);
    parts.push_back(at::conv3d(padded.narrow(2, t0, n + k - 1), w, b));
  }
  return at::cat(parts, 2);
}

at::Tensor VaeDecoder::resnet(const Resnet& r, const at::Tensor& x) const {
  const double eps = 1e-6;
  const int64_t g = cfg_.norm_num_groups;
  at::Tensor h = r.conv1(at::silu(at::group_norm(x, g, r.norm1.w, r.norm1.b, eps)));
  h = r.conv2(at::silu(at::group_norm(h, g, r.norm2.w, r.norm2.b, eps)));
  return h + (r.shortcut.w.defined() ? r.shortcut(x) : x);
}

// Single-head attention over every position, frame i attending to frames <= i: one dense call per
// query frame over the keys of frames 0..i, which is the frame-causal mask without building it.
at::Tensor VaeDecoder::mid_attention(const at::Tensor& x) const {
  const int64_t B = x.size(0), C = x.size(1), T = x.size(2), H = x.size(3), W = x.size(4), S = H * W;
  const at::Tensor n = at::group_norm(x, cfg_.norm_num_groups, attn_norm_.w, attn_norm_.b, 1e-6);
  const at::Tensor tokens = n.permute({0, 2, 3, 4, 1}).reshape({B, T * S, C});
  const at::Tensor q = attn_q_(tokens).view({B, T * S, 1, C}), k = attn_k_(tokens).view({B, T * S, 1, C}),
                   v = attn_v_(tokens).view({B, T * S, 1, C});
  std::vector<at::Tensor> outs;
  for (int64_t f = 0; f < T; ++f)
    outs.push_back(attention::dense_attention(q.narrow(1, f * S, S), k.narrow(1, 0, (f + 1) * S),
                                              v.narrow(1, 0, (f + 1) * S))
                       .out);
  const at::Tensor a = attn_out_(at::cat(outs, 1).reshape({B, T * S, C}));
  return x + a.view({B, T, H, W, C}).permute({0, 4, 1, 2, 3});
}

at::Tensor VaeDecoder::decode_window(const at::Tensor& z) const {
  at::Tensor h = conv_in_(post_quant_(z));
  h = resnet(mid0_, h);
  if (cfg_.mid_block_add_attention) h = mid_attention(h);
  h = resnet(mid1_, h);
  for (const UpBlock& b : up_) {
    for (const Resnet& r : b.resnets) h = resnet(r, h);
    if (!b.upsample.w.defined()) continue;
    const int64_t T = h.size(2), H = h.size(3), W = h.size(4);
    // The first frame is upsampled in space only; the rest also in time when the block does.
    at::Tensor first = at::upsample_nearest3d(h.narrow(2, 0, 1), {1, 2 * H, 2 * W});
    if (T > 1) {
      const at::Tensor rest = at::upsample_nearest3d(h.narrow(2, 1, T - 1).contiguous(), {(T - 1) * b.time_factor, 2 * H, 2 * W});
      first = at::cat({first, rest}, 2);
    }
    h = b.upsample(first);
  }
  h = at::silu(at::group_norm(h, cfg_.norm_num_groups, norm_out_.w, norm_out_.b, 1e-6));
  return conv_out_(h);
}

namespace {

// In-place linear blends of b's first `extent` slices along `dim` with a's last ones (diffusers'
// blend_t / blend_v / blend_h; b is modified, as there).
void blend(const at::Tensor& a, at::Tensor& b, int64_t dim, int64_t extent) {
  extent = std::min({a.size(dim), b.size(dim), extent});
  for (int64_t x = 0; x < extent; ++x) {
    const double w = static_cast<double>(x) / static_cast<double>(extent);
    b.select(dim, x).copy_(a.select(dim, a.size(dim) - extent + x) * (1.0 - w) + b.select(dim, x) * w);
  }
}

}  // namespace

at::Tensor VaeDecoder::spatial_tiled(const at::Tensor& z, const VaeTiling& t, Progress* p) const {
  const int64_t r = cfg_.spatial_compression_ratio;
  const int64_t min_lat = t.tile_sample_min_size / r, stride_lat = t.tile_sample_stride / r;
  const int64_t blend_px = t.tile_sample_min_size - t.tile_sample_stride;
  const int64_t h = z.size(3), w = z.size(4);
  std::vector<std::vector<at::Tensor>> rows;
  for (int64_t i = 0; i < h; i += stride_lat) {
    std::vector<at::Tensor> row;
    for (int64_t j = 0; j < w; j += stride_lat) {
      row.push_back(decode_window(z.narrow(3, i, std::min(min_lat, h - i)).narrow(4, j, std::min(min_lat, w - j))));
      if (p) p->update(0);
    }
    rows.push_back(std::move(row));
  }
  std::vector<at::Tensor> out_rows;
  for (size_t i = 0; i < rows.size(); ++i) {
    std::vector<at::Tensor> parts;
    for (size_t j = 0; j < rows[i].size(); ++j) {
      at::Tensor tile = rows[i][j];
      if (i > 0) blend(rows[i - 1][j], tile, 3, blend_px);
      if (j > 0) blend(rows[i][j - 1], tile, 4, blend_px);
      parts.push_back(tile.narrow(3, 0, std::min(t.tile_sample_stride, tile.size(3)))
                          .narrow(4, 0, std::min(t.tile_sample_stride, tile.size(4))));
    }
    out_rows.push_back(at::cat(parts, 4));
  }
  return at::cat(out_rows, 3).narrow(3, 0, h * r).narrow(4, 0, w * r);
}

at::Tensor VaeDecoder::decode(const at::Tensor& latents, const VaeTiling& t, const ProgressCallback& progress) const {
  XATTN_CHECK(latents.dim() == 5 && latents.size(1) == cfg_.latent_channels, "latents: expected [B, ",
              cfg_.latent_channels, ", T, h, w], got ", shape_str(latents));
  if (t.tile_sample_min_size % cfg_.spatial_compression_ratio || t.tile_sample_stride % cfg_.spatial_compression_ratio ||
      t.tile_sample_stride > t.tile_sample_min_size || t.tile_sample_stride < 1 ||
      t.tile_sample_min_frames % cfg_.temporal_compression_ratio ||
      t.tile_sample_stride_frames % cfg_.temporal_compression_ratio || t.tile_sample_stride_frames < 1 ||
      t.tile_sample_stride_frames > t.tile_sample_min_frames)
    throw Error("vae", "tile sizes must be multiples of the compression ratios with 0 < stride <= size");
  const at::Tensor z = latents.to(post_quant_.w.device(), post_quant_.w.scalar_type()) / cfg_.scaling_factor;
  const int64_t T = z.size(2), r = cfg_.spatial_compression_ratio, rt = cfg_.temporal_compression_ratio;
  const int64_t min_lat = t.tile_sample_min_size / r;
  const bool spatial = t.spatial && (z.size(3) > min_lat || z.size(4) > min_lat);
  const int64_t win = t.tile_sample_min_frames / rt, stride = t.tile_sample_stride_frames / rt;
  const bool temporal = t.temporal && T > win;
  int64_t total = 1;
  if (temporal) total = (T + stride - 1) / stride;
  if (spatial) {
    const int64_t sl = t.tile_sample_stride / r;
    total *= ((z.size(3) + sl - 1) / sl) * ((z.size(4) + sl - 1) / sl);
  }
  Progress prog(progress, "vae decode", total, "tile");
  int64_t done = 0;
  auto window = [&](const at::Tensor& zw) {
    at::Tensor out = spatial ? spatial_tiled(zw, t, nullptr) : decode_window(zw);
    done += spatial ? total / (temporal ? (T + stride - 1) / stride : 1) : 1;
    prog.update(done);
    return out;
  };
  if (!temporal) {
    at::Tensor out = window(z);
    prog.finish();
    return out;
  }
  // Windows of win + 1 latent frames every `stride`; later windows drop their first decoded frame;
  // each is blended into the previous over (min - stride) frames and cut to `stride` frames.
  const int64_t blend_frames = t.tile_sample_min_frames - t.tile_sample_stride_frames;
  std::vector<at::Tensor> row;
  for (int64_t i = 0; i < T; i += stride) {
    at::Tensor d = window(z.narrow(2, i, std::min(win + 1, T - i)));
    if (i > 0) d = d.narrow(2, 1, d.size(2) - 1);
    row.push_back(d);
  }
  std::vector<at::Tensor> parts;
  for (size_t i = 0; i < row.size(); ++i) {
    at::Tensor tile = row[i];
    if (i > 0) blend(row[i - 1], tile, 2, blend_frames);
    const int64_t keep = t.tile_sample_stride_frames + (i == 0 ? 1 : 0);
    parts.push_back(tile.narrow(2, 0, std::min(keep, tile.size(2))));
  }
  prog.finish();
  return at::cat(parts, 2).narrow(2, 0, (T - 1) * rt + 1);
}

}  // namespace xattn::hunyuan
