// Where the attention kernel's time goes, per warp and event (diagnosis tool, not part of the
// build). Compiles kernels/sparse_attention_sm90.cu with XATTN_ATTN_TRACE, runs the producer
// kernel on a causal case (B 1, 32 query heads, 8 KV heads, D 128, bf16) with a dense mask and a
// top-ratio-like mask (per row ceil(ratio * causal blocks), the diagonal and block 0 always kept,
// the others drawn at random), and prints for each mask:
//   - the launch time (with the trace's stores, so a little slower than `xattn bench`),
//   - the time between consecutive events, by pair of events, for the consumer, producer and
//     storer warps,
//   - a least-squares fit of row time against kept blocks (slope = a step, intercept = a row's
//     own cost, in cycles), and the CTAs' spread (busiest over mean).
// Build (CPU machine, no GPU needed; without -DXATTN_ATTN_TRACE it only times the launches):
//   nvcc -I. -O3 -DNDEBUG -std=c++17 --expt-relaxed-constexpr -gencode=arch=compute_90a,code=sm_90a
//        -DXATTN_ATTN_TRACE scripts/attn_trace.cu -o out/attn_trace
// Run: out/attn_trace [L=8192] [ratio...]   (ratio 1 = dense; default 1 0.2 0.25); WARM=n and
// REPS=n set the untimed and timed launches per mask (20, 200), MASK_DIR the bench's inputs and
// masks (scripts/mkmask.py), CHUNK=n also prints the time of every n consecutive launches (a
// sparse mode's first ~100 ms run ~5% faster than its steady state under the 700 W cap: use
// WARM=0 REPS=20000 CHUNK=2000 to see it), UNIFORM=1 makes the case non-causal with every row
// keeping `ratio` blocks (an integer: 2, 4, ... 64; launch time against k gives the per-row cost
// without the trace's), and a checksum of the output is printed to compare kernel versions.
// Its TF/s are not the bench's: between masks the process copies and checks the output and
// uploads the next mask, the GPU idles and its clocks recover from the power cap, and the sparse
// masks then read ~4% faster than in `xattn bench attention` (same kernel, inputs and mask: 20%
// at 503-506 vs 478-487 TF/s, dense 560-567 in both; under ncu's fixed clocks both launches take
// 259-263 us; H100, 2026-11-27). A sparse mask's first ~100 ms run ~5% faster still (CHUNK): at
// causal 8K, 20%, the default REPS=200 lasts ~50 ms, so steady numbers need REPS >= 2000. Use it
// to compare kernel builds against each other, alternated in one call.
// Reading the tables: each event costs the warp ~80 cycles, and a wait on an mbarrier whose data
// is long there still read ~300-450 cycles (session 14: with the metadata four rows ahead the
// consumers' "take_q -> meta here" stayed at ~430), so short intervals are upper bounds.
#include "kernels/sparse_attention_sm90.cu"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace attn_trace {
using namespace xattn::kernels;

inline int EV(const TraceRec& r) { return int(r.ev_arg & 0xff); }
inline int ARG(const TraceRec& r) { return int(r.ev_arg >> 8); }
#define CK(x)                                                                              \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

__global__ void fill_normal(__nv_bfloat16* x, int64_t n, uint32_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t h = uint32_t(i) * 2654435761u ^ seed;
    h ^= h >> 15, h *= 2246822519u, h ^= h >> 13, h *= 3266489917u, h ^= h >> 16;
    uint32_t g = h * 747796405u + 2891336453u;
    g ^= g >> 17, g *= 1274126177u, g ^= g >> 15;
    const float u1 = (h >> 8) * (1.f / 16777216.f) + 1e-7f, u2 = (g >> 8) * (1.f / 16777216.f);
    x[i] = __float2bfloat16(sqrtf(-2.f * logf(u1)) * __cosf(6.2831853f * u2));
  }
}

const char* site(int ev) {  // the XATTN_TRACE call sites of kernels/sparse_attention_sm90.cu
  switch (ev) {
    case 1: return "row top";
    case 2: return "take_q";
    case 3: return "take_q: meta here";
    case 4: return "take_q: Q here";
    case 5: return "take_q done";
    case 6: return "row known";
    case 7: return "row set up";
    case 8: return "first block done";
    case 9: return "steps done";
    case 10: return "carry: K/V here";
    case 11: return "carry: turn";
    case 12: return "carry: issued";
    case 13: return "carry: S done";
    case 14: return "carry/last: softmax done";
    case 15: return "last PV done";
    case 16: return "stage released, P packed";
    case 17: return "epi: 1/l";
    case 18: return "epi: buffer free";
    case 19: return "epi: O in smem";
    case 20: return "epi: fenced, arrived";
    case 21: return "row end";
    case 30: return "step";
    case 31: return "step: K/V here";
    case 32: return "step: turn";
    case 33: return "step: issued";
    case 34: return "step: S done";
    case 35: return "step: softmax done";
    case 36: return "step: PV done";
    case 40: return "P: row";
    case 41: return "P: meta written";
    case 42: return "P: Q buffer free";
    case 43: return "P: wait stage";
    case 44: return "P: stage free";
    case 50: return "storer: wait O";
    case 51: return "storer: O here";
    case 52: return "storer: stored";
    default: return "?";
  }
}

// Time between consecutive events of the warps [w0, w1), by (event, next event), per warp and row.
void pair_table(const std::vector<TraceRec>& h, int ctas, int w0, int w1, double rows, const char* who) {
  std::map<std::pair<int, int>, std::pair<double, double>> acc;  // cycles, occurrences
  double total = 0;
  for (int c = 0; c < ctas; ++c)
    for (int w = w0; w < w1; ++w) {
      const TraceRec* r = &h[(size_t(c) * kTraceWarps + w) * kTraceCap];
      for (int i = 0; i + 1 < kTraceCap && EV(r[i + 1]); ++i) {
        const double d = double(uint32_t(r[i + 1].t - r[i].t));
        auto& x = acc[{EV(r[i]), EV(r[i + 1])}];
        x.first += d, x.second += 1, total += d;
      }
    }
  std::vector<std::pair<double, std::pair<int, int>>> v;
  for (auto& kv : acc) v.push_back({kv.second.first, kv.first});
  std::sort(v.rbegin(), v.rend());
  const double warps = w1 - w0;
  std::printf("  %s: time between events (share; cycles per warp and row; cycles each)\n", who);
  for (auto& x : v) {
    const auto& a = acc[x.second];
    if (x.first / total < 0.003) continue;
    std::printf("    %5.1f%% %7.0f %7.0f  %s -> %s\n", 100 * x.first / total, x.first / warps / rows, a.first / a.second,
                site(x.second.first), site(x.second.second));
  }
}

void run(int L, double ratio, int ctas_cap) {
  const int B = 1, Hq = 32, Hk = 8, D = 128, qb = L / 128, kb = L / 128;
  const int64_t nq = int64_t(B) * L * Hq * D, nk = int64_t(B) * L * Hk * D;
  __nv_bfloat16 *q, *k, *v, *o;
  CK(cudaMalloc(&q, nq * 2));
  CK(cudaMalloc(&o, nq * 2));
  CK(cudaMalloc(&k, nk * 2));
  CK(cudaMalloc(&v, nk * 2));
  // MASK_DIR (optional): q.bin, k.bin, v.bin (bf16, [1, L, H, 128]) and idx-R.bin / cnt-R.bin
  // (int32, R = the ratio as %.2f) from elsewhere, e.g. torch.ops.xattn.estimate on the bench's
  // inputs; whatever is missing is generated here.
  const char* dir = std::getenv("MASK_DIR");
  auto load = [&](const std::string& name, void* dst, size_t bytes) {
    if (!dir) return false;
    FILE* f = std::fopen((std::string(dir) + "/" + name).c_str(), "rb");
    if (!f) return false;
    std::vector<char> buf(bytes);
    const bool ok = std::fread(buf.data(), 1, bytes, f) == bytes;
    std::fclose(f);
    if (ok) CK(cudaMemcpy(dst, buf.data(), bytes, cudaMemcpyHostToDevice));
    return ok;
  };
  if (!load("q.bin", q, nq * 2)) fill_normal<<<1024, 256>>>(q, nq, 1);
  if (!load("k.bin", k, nk * 2)) fill_normal<<<1024, 256>>>(k, nk, 2);
  if (!load("v.bin", v, nk * 2)) fill_normal<<<1024, 256>>>(v, nk, 3);
  std::vector<int32_t> idx(size_t(B) * Hq * qb * kb, 0), cnt(size_t(B) * Hq * qb, 0);
  int64_t kept = 0;
  char rname[32];
  std::snprintf(rname, sizeof(rname), "%.2f", ratio);
  bool from_file = false;
  if (dir) {
    FILE* fi = std::fopen((std::string(dir) + "/idx-" + rname + ".bin").c_str(), "rb");
    FILE* fc = std::fopen((std::string(dir) + "/cnt-" + rname + ".bin").c_str(), "rb");
    from_file = fi && fc && std::fread(idx.data(), 4, idx.size(), fi) == idx.size() &&
                std::fread(cnt.data(), 4, cnt.size(), fc) == cnt.size();
    if (fi) std::fclose(fi);
    if (fc) std::fclose(fc);
    if (from_file) std::printf("(mask from %s)\n", dir);
  }
  // UNIFORM=1: non-causal, and every row keeps `ratio` blocks (an integer here): block 0 and the
  // others at random. Rows of one length, without masked blocks: a fit of launch time against k
  // gives the per-row cost in blocks, free of the trace's own cost.
  const bool uniform = std::getenv("UNIFORM") && std::atoi(std::getenv("UNIFORM")) != 0;
  if (from_file) {
    for (int32_t c : cnt) kept += c;
  } else {  // causal: ceil(ratio x causal blocks) per row, block 0, the diagonal, the others at random;
            // UNIFORM: as above
    std::mt19937 rng(uniform ? 11 : 7);
    for (int h = 0; h < Hq; ++h)
      for (int i = 0; i < qb; ++i) {
        const int n = uniform ? kb : i + 1;
        const int want = uniform ? std::min(kb, std::max(1, int(ratio))) : std::max(1, int(std::ceil(n * ratio - 1e-9)));
        std::vector<char> keep(n, 0);
        keep[0] = 1;
        if (!uniform) keep[i] = 1;
        int have = !uniform && i > 0 ? 2 : 1;
        while (have < want) {
          const int c = int(rng() % n);
          if (!keep[c]) keep[c] = 1, ++have;
        }
        int32_t* row = &idx[(size_t(h) * qb + i) * kb];
        int m = 0;
        for (int c = 0; c < n; ++c)
          if (keep[c]) row[m++] = c;
        cnt[size_t(h) * qb + i] = m;
        kept += m;
      }
  }
  int32_t *didx, *dcnt;
  CK(cudaMalloc(&didx, idx.size() * 4));
  CK(cudaMalloc(&dcnt, cnt.size() * 4));
  CK(cudaMemcpy(didx, idx.data(), idx.size() * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dcnt, cnt.data(), cnt.size() * 4, cudaMemcpyHostToDevice));

  const int ctas = std::min(ctas_cap, B * Hq * qb);  // the persistent launch (L <= 16K, see main)
#ifdef XATTN_ATTN_TRACE
  const size_t trace_n = size_t(ctas) * kTraceWarps * kTraceCap;
  TraceRec* tr;
  CK(cudaMalloc(&tr, trace_n * sizeof(TraceRec)));
  CK(cudaMemcpyToSymbol(g_attn_trace, &tr, sizeof(tr)));
#endif

  AttentionParams p;
  p.q = q, p.k = k, p.v = v, p.o = o;
  p.indices = didx, p.counts = dcnt;
  p.q_stride_l = int64_t(Hq) * D, p.q_stride_h = D, p.q_stride_b = int64_t(L) * Hq * D;
  p.k_stride_l = p.v_stride_l = int64_t(Hk) * D, p.k_stride_h = p.v_stride_h = D;
  p.k_stride_b = p.v_stride_b = int64_t(L) * Hk * D;
  p.o_stride_l = p.q_stride_l, p.o_stride_h = p.q_stride_h, p.o_stride_b = p.q_stride_b;
  p.batch = B, p.q_len = L, p.k_len = L, p.q_heads = Hq, p.kv_heads = Hk, p.head_dim = D;
  p.causal = !uniform, p.scale = 1.f / std::sqrt(float(D));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  const int warm = std::getenv("WARM") ? std::atoi(std::getenv("WARM")) : 20;
  for (int i = 0; i < warm; ++i) CK(block_sparse_attention_sm90(p, nullptr));
  const int reps = std::getenv("REPS") ? std::atoi(std::getenv("REPS")) : 200;
  // CHUNK=n: also the time of every n consecutive launches (how the rate moves within the run).
  const int chunk = std::getenv("CHUNK") ? std::atoi(std::getenv("CHUNK")) : 0;
  std::vector<cudaEvent_t> ce(chunk > 0 ? reps / chunk : 0);  // created before the timed launches
  for (cudaEvent_t& e : ce) CK(cudaEventCreate(&e));
  CK(cudaEventRecord(e0));
  for (int i = 0; i < reps; ++i) {
    CK(block_sparse_attention_sm90(p, nullptr));
    if (chunk > 0 && (i + 1) % chunk == 0) CK(cudaEventRecord(ce[(i + 1) / chunk - 1]));
  }
  CK(cudaEventRecord(e1));
  CK(cudaEventSynchronize(e1));
  if (!ce.empty()) {
    std::printf("chunks of %d launches, ms each:", chunk);
    cudaEvent_t prev = e0;
    for (cudaEvent_t e : ce) {
      float cms = 0;
      CK(cudaEventElapsedTime(&cms, prev, e));
      std::printf(" %.4f", cms / chunk);
      prev = e;
    }
    std::printf("\n");
    for (cudaEvent_t e : ce) CK(cudaEventDestroy(e));
  }
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, e0, e1));
  ms /= reps;
  {  // a checksum of the output, to compare kernel versions
    std::vector<uint16_t> ho(nq);
    CK(cudaMemcpy(ho.data(), o, nq * 2, cudaMemcpyDeviceToHost));
    double sum = 0, asum = 0;
    for (int64_t i = 0; i < nq; ++i) {
      uint32_t bits = uint32_t(ho[i]) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      sum += f * double(1 + i % 7), asum += std::fabs(f);
    }
    std::printf("checksum %.6e %.6e\n", sum, asum);
  }
  const double flops = 4.0 * 128 * 128 * 128 * double(kept);
  std::printf("\n== L %d, ratio %.2f: %lld kept blocks (density %.4f), %d CTAs, %.4f ms, %.1f TF/s (%s)\n", L, ratio,
              (long long)kept, double(kept) / (double(Hq) * qb * (uniform ? kb : (qb + 1) / 2.0)), ctas, ms, flops / ms / 1e9,
#ifndef XATTN_ATTN_TRACE
              "untraced build");
#else
              "traced build");
  CK(cudaMemset(tr, 0, trace_n * sizeof(TraceRec)));
  CK(block_sparse_attention_sm90(p, nullptr));
  CK(cudaDeviceSynchronize());
  std::vector<TraceRec> h(trace_n);
  CK(cudaMemcpy(h.data(), tr, trace_n * sizeof(TraceRec), cudaMemcpyDeviceToHost));
  for (size_t w = 0; w < size_t(ctas) * kTraceWarps; ++w)
    if (EV(h[(w + 1) * kTraceCap - 1]))
      std::printf("warning: CTA %zu warp %zu filled its %d records (the rest of its trace is lost)\n", w / kTraceWarps,
                  w % kTraceWarps, kTraceCap);
  const double rows = double(B) * Hq * qb;
  // Row fit on warp 4 (consumer warpgroup 0, warp 0) and warp 8 (warpgroup 1).
  for (int fw : {4, 8}) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0, n = 0;
    for (int c = 0; c < ctas; ++c) {
      const TraceRec* r = &h[(size_t(c) * kTraceWarps + fw) * kTraceCap];
      uint32_t prev_top = 0;
      int prev_count = -1;
      for (int i = 0; i < kTraceCap && EV(r[i]); ++i) {
        if (EV(r[i]) == 1) {
          if (prev_count >= 0) {
            const double y = double(uint32_t(r[i].t - prev_top)), x = prev_count;
            sx += x, sy += y, sxx += x * x, sxy += x * y, n += 1;
          }
          prev_top = r[i].t;
        }
        if (EV(r[i]) == 6) prev_count = ARG(r[i]) & 0xffff;
      }
    }
    const double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx), icpt = (sy - slope * sx) / n;
    std::printf("  row fit, warp %d: %.0f rows, mean %.2f blocks: %.0f cycles per block, %.0f per row (%.2f blocks)\n", fw, n,
                sx / n, slope, icpt, icpt / slope);
  }
  std::vector<double> cta_span(ctas, 0);
  for (int c = 0; c < ctas; ++c) {
    const uint32_t ref = h[(size_t(c) * kTraceWarps + 4) * kTraceCap].t;  // a consumer's first event
    int64_t t0 = INT64_MAX, t1 = INT64_MIN;
    for (int w = 0; w < kTraceWarps; ++w) {
      const TraceRec* r = &h[(size_t(c) * kTraceWarps + w) * kTraceCap];
      for (int i = 0; i < kTraceCap && EV(r[i]); ++i) {
        const int64_t t = int32_t(r[i].t - ref);  // the launch is far shorter than 2^31 cycles
        t0 = std::min(t0, t), t1 = std::max(t1, t);
      }
    }
    cta_span[c] = double(t1 - t0);
  }
  double mean = 0, mx = 0;
  for (double s : cta_span) mean += s / ctas, mx = std::max(mx, s);
  std::printf("  CTA span: mean %.0f cycles, busiest %.0f (+%.1f%%)\n", mean, mx, 100 * (mx / mean - 1));
  pair_table(h, ctas, 4, 12, rows, "consumer warps");
  pair_table(h, ctas, 0, 1, rows, "producer warp");
  pair_table(h, ctas, 1, 2, rows, "storer warp");
  cudaFree(tr);
#endif
  cudaFree(q), cudaFree(k), cudaFree(v), cudaFree(o), cudaFree(didx), cudaFree(dcnt);
  cudaEventDestroy(e0), cudaEventDestroy(e1);
}
}  // namespace attn_trace

using namespace attn_trace;
int main(int argc, char** argv) {
  const int L = argc > 1 ? std::atoi(argv[1]) : 8192;
  if (L % 128 != 0 || L < 128 || L > 16384) {
    std::fprintf(stderr, "L must be a multiple of 128 up to 16384 (the persistent kernel, one CTA per SM)\n");
    return 2;
  }
  std::vector<double> ratios;
  for (int i = 2; i < argc; ++i) ratios.push_back(std::atof(argv[i]));
  if (ratios.empty()) ratios = {1.0, 0.2, 0.25};
  int sms = 132;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  for (double r : ratios) run(L, r, sms);
  return 0;
}
