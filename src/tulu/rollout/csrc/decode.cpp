// The fast backend's decode step on CPU, fp32: all decoder layers of a Llama-family model for one new
// token per running sequence, in one call from Python.
//
// Why it exists (measured on the 2-core CPU, docs/rollout.md): the eager Python step spent ~14 ms of a
// 38 ms batch-8 step outside its matmuls - ~25 small ops per layer at 10-20 us of Python dispatch each,
// and SDPA at ~245 us per layer for a few MFLOP of work - and oneDNN's pre-packed matmuls streamed the
// weights at half the machine's read bandwidth. Here the matmuls run on our panel-packed kernel
// (panel_linear; oneDNN or at::linear for a weight it cannot pack), and everything between them runs as a
// few plain loops: RMSNorm fused with the residual add, RoPE + the KV-cache write + grouped-query
// attention in one pass per (row, kv head), and SiLU(gate) * up. (Sampling kernels: sampling.cpp.)
//
// Arithmetic is HF's (LlamaRMSNorm, rotate_half RoPE, softmax(q k^T * scale) v, SiLU MLP); only the
// order of floating-point sums differs, and it is the same for every row whatever the batch (batch
// invariance, tested). The panel-packed weights may also be bf16 (pack_panels_bf16): half the bytes a
// step streams; they are widened to fp32 as they are loaded, and everything else stays fp32 (activations,
// accumulators, norms, the KV cache); or, on AVX512-BF16 builds, bf16 pair panels multiplied in bf16 (dpbf16.cpp).
// Registered as torch.ops.tulu.*; built and loaded by tulu/rollout/kernels.py, which
// falls back to the Python step when no compiler is available.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "dpbf16.h"
#include "vec.h"

namespace {

constexpr int kPerLayer = 8;  // ln1, qkv_w, qkv_b, o_w, o_b, ln2, gate_up_w, down_w

// ---------------------------------------------------------------------------------------------------
// Small-M matmul over panel-packed weights: y[M, N] = x[M, K] @ W[N, K]^T (+ bias).
//
// W is stored as [N / 8, K, 8]: panel p holds output columns 8p..8p+7, k-major, so the weights are read
// once, front to back, as one sequential stream per thread (threads split the panels), while the next
// panel is prefetched. Decode (M <= 8): every row against one panel in a single pass, 8 x 8 outputs in
// registers. Larger M (batch 32, prefill): blocks of up to 6 rows against two adjacent panels (6 x 16
// outputs in registers). Measured on the 2-core EPYC (AVX2) on this model's shapes: at 8 rows a gate/up
// projection streams at ~21 GB/s (the machine's read bandwidth) against ~10 GB/s for oneDNN's
// pre-packed kernel; at 48 rows ~124 GFLOP/s (docs/rollout.md).

constexpr int64_t kPanel = 8;

// y[r, 8v + j] = bias[8v + j] (or 0) + sum_k x[r, k] w_v[k, j] for r < MR, v < NV, where w_v = w + v * K * 8
// is the v-th panel from w: one FMA chain over k per output, in the same order for any MR.
// W is float (fp32 panels) or uint16_t (bf16 panels, widened to fp32 as they are loaded: the FMA chains,
// accumulators and outputs are fp32 either way, and the fp32 instance is the code it always was).
template <int MR, int NV, bool PF, typename W>
inline void panel_block(const float* x, int64_t ldx, const W* w, int64_t K, float* y, int64_t ldy,
                        const float* bias) {
  v8 acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = bias != nullptr ? load8(bias + 8 * v) : v8{};
  for (int64_t k = 0; k < K; ++k) {
    v8 wv[NV];
    for (int v = 0; v < NV; ++v) {
      // the same line of the next panels, into L2: prefetching into L1 would evict the panels that the
      // following row blocks reuse (6-9% slower at 16-64 rows)
      if constexpr (PF) __builtin_prefetch(w + (NV + v) * K * kPanel + k * kPanel, 0, 2);
      wv[v] = load8(w + v * K * kPanel + k * kPanel);
    }
    for (int r = 0; r < MR; ++r) {
      const v8 xv = splat(x[r * ldx + k]);
      for (int v = 0; v < NV; ++v) acc[r][v] = fma8(xv, wv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) store8(y + r * ldy + 8 * v, acc[r][v]);
}

// panel_block<rows, NV, PF> for a runtime rows <= MR.
template <int MR, int NV, bool PF, typename W>
void panel_block_n(const float* x, int64_t ldx, const W* w, int64_t K, float* y, int64_t ldy, const float* bias,
                   int64_t rows) {
  if constexpr (MR > 1) {
    if (rows < MR) return panel_block_n<MR - 1, NV, PF, W>(x, ldx, w, K, y, ldy, bias, rows);
  }
  panel_block<MR, NV, PF, W>(x, ldx, w, K, y, ldy, bias);
}

// [N, K] -> [N / 8, K, 8] (N must be a multiple of 16: larger M reads the panels in pairs).
at::Tensor pack_panels(const at::Tensor& w) {
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kFloat && w.device().is_cpu(),
              "pack_panels: expected a 2-D CPU float32 weight");
  const int64_t N = w.size(0), K = w.size(1);
  TORCH_CHECK(N % (2 * kPanel) == 0, "pack_panels: ", N, " output features is not a multiple of ", 2 * kPanel);
  return w.reshape({N / kPanel, kPanel, K}).transpose(1, 2).contiguous();
}

// The same panels in bf16, each fp32 weight rounded to the nearest bf16 (ties to even; torch's conversion).
at::Tensor pack_panels_bf16(const at::Tensor& w) { return pack_panels(w).to(at::kBFloat16); }

template <typename W>
void panel_run(const float* xp, const W* wptr, const float* bp, float* yp, int64_t M, int64_t K, int64_t P);

// [N, K] -> bf16 pair panels for the AVX512-BF16 kernel (dpbf16.cpp), [N / 16, ceil(K / 2), 32].
at::Tensor pack_panels_dpbf16(const at::Tensor& w) { return tulu_dpbf16::pack(w); }

bool has_dpbf16() { return tulu_dpbf16::available(); }

at::Tensor panel_linear(const at::Tensor& x_in, const at::Tensor& wp, const std::optional<at::Tensor>& bias) {
  const bool dp = wp.dim() == 3 && wp.size(2) == tulu_dpbf16::kWidth && wp.scalar_type() == at::kBFloat16;
  TORCH_CHECK(wp.dim() == 3 && wp.is_contiguous() &&
                  (dp || (wp.size(2) == kPanel && wp.size(0) % 2 == 0 &&
                          (wp.scalar_type() == at::kFloat || wp.scalar_type() == at::kBFloat16))),
              "panel_linear: weight must come from pack_panels, pack_panels_bf16 or pack_panels_dpbf16");
  const at::Tensor x = x_in.contiguous();
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == at::kFloat &&
                  (dp ? (x.size(1) + 1) / 2 == wp.size(1) : x.size(1) == wp.size(1)),
              "panel_linear: x must be [M, ", dp ? 2 * wp.size(1) : wp.size(1), "] float32");
  const int64_t M = x.size(0), K = x.size(1), P = wp.size(0), N = P * (dp ? tulu_dpbf16::kCols : kPanel);
  at::Tensor b;
  if (bias.has_value() && bias->defined() && bias->numel() > 0) {
    b = bias->contiguous();
    TORCH_CHECK(b.numel() == N, "panel_linear: bias has ", b.numel(), " elements, expected ", N);
  }
  at::Tensor y = at::empty({M, N}, x.options());
  if (M == 0) return y;  // (the row blocks below assume at least one row)
  const float* xp = x.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  float* yp = y.data_ptr<float>();
  if (dp)
    tulu_dpbf16::run(xp, M, K, reinterpret_cast<const uint16_t*>(wp.data_ptr<at::BFloat16>()), P, bp, yp);
  else if (wp.scalar_type() == at::kBFloat16)
    panel_run(xp, reinterpret_cast<const uint16_t*>(wp.data_ptr<at::BFloat16>()), bp, yp, M, K, P);
  else
    panel_run(xp, wp.data_ptr<float>(), bp, yp, M, K, P);
  return y;
}

template <typename W>
void panel_run(const float* xp, const W* wptr, const float* bp, float* yp, int64_t M, int64_t K, int64_t P) {
  const int64_t N = P * kPanel;
  if (M <= 8) {  // decode: one pass per panel
    at::parallel_for(0, P, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p)
        panel_block_n<8, 1, true, W>(xp, K, wptr + p * K * kPanel, K, yp + p * kPanel, N,
                            bp != nullptr ? bp + p * kPanel : nullptr, M);
    });
    return;
  }
  constexpr int64_t kRowChunk = 48;  // rows of x kept hot in cache while the panels stream past
  for (int64_t m0 = 0; m0 < M; m0 += kRowChunk) {
    const int64_t rows = std::min(kRowChunk, M - m0);
    const int64_t blocks = (rows + 5) / 6;  // balanced blocks of <= 6 rows (32 rows: 6 6 5 5 5 5)
    at::parallel_for(0, P / 2, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> wide;  // bf16 panels, several row blocks: the pair widened once, not once per block
      for (int64_t pp = begin; pp < end; ++pp) {
        const int64_t col = 2 * pp * kPanel;
        const W* w = wptr + 2 * pp * K * kPanel;
        const float* bias_p = bp != nullptr ? bp + col : nullptr;
        int64_t r = m0;
        if constexpr (std::is_same_v<W, uint16_t>) {
          // (widening on the fly costs two vector ops per 8 weights next to 12 FMAs: ~0.7x fp32 here)
          if (blocks > 1) {
            wide.resize(2 * K * kPanel);
            for (int64_t i = 0; i < 2 * K * kPanel; i += 8) {
              __builtin_prefetch(w + 2 * K * kPanel + i, 0, 2);
              store8(wide.data() + i, load8(w + i));
            }
            for (int64_t i = 0; i < blocks; ++i) {
              const int64_t n = rows / blocks + (i < rows % blocks ? 1 : 0);
              panel_block_n<6, 2, false, float>(xp + r * K, K, wide.data(), K, yp + r * N + col, N, bias_p, n);
              r += n;
            }
            continue;
          }
        }
        for (int64_t i = 0; i < blocks; ++i) {
          const int64_t n = rows / blocks + (i < rows % blocks ? 1 : 0);
          if (i == 0)  // the first row block prefetches the next pair of panels
            panel_block_n<6, 2, true, W>(xp + r * K, K, w, K, yp + r * N + col, N, bias_p, n);
          else
            panel_block_n<6, 2, false, W>(xp + r * K, K, w, K, yp + r * N + col, N, bias_p, n);
          r += n;
        }
      }
    });
  }
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  std::optional<at::Tensor> bias;
  if (b.defined() && b.numel() > 0) bias = b;
  if (w.dim() == 3) return panel_linear(x, w, bias);
  if (w.is_mkldnn()) {
    static const auto op = c10::Dispatcher::singleton().findSchemaOrThrow("mkldnn::_linear_pointwise", "");
    std::vector<c10::IValue> stack;
    stack.reserve(6);
    stack.emplace_back(x);
    stack.emplace_back(w);
    stack.emplace_back(bias);
    stack.emplace_back(std::string("none"));
    stack.emplace_back(c10::List<std::optional<at::Scalar>>());
    stack.emplace_back(std::optional<std::string>(""));
    op.callBoxed(&stack);
    return stack[0].toTensor();
  }
  return at::linear(x, w, bias);
}

// x += add (when add is not null); h = w * (x / sqrt(mean(x^2) + eps)), row by row.
void add_rms_norm(float* x, const float* add, float* h, const float* w, int64_t rows, int64_t dim, float eps) {
  for (int64_t b = 0; b < rows; ++b) {
    float* xr = x + b * dim;
    if (add != nullptr) {
      const float* ar = add + b * dim;
#pragma omp simd
      for (int64_t i = 0; i < dim; ++i) xr[i] += ar[i];
    }
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < dim; ++i) ss += xr[i] * xr[i];
    const float r = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    float* hr = h + b * dim;
#pragma omp simd
    for (int64_t i = 0; i < dim; ++i) hr[i] = w[i] * (xr[i] * r);
  }
}

// out = x * cos + rotate_half(x) * sin, rotate_half(x) = (-x[half:], x[:half]).
inline void rope(const float* x, const float* cos, const float* sin, float* out, int64_t dim) {
  const int64_t half = dim / 2;
#pragma omp simd
  for (int64_t i = 0; i < half; ++i) out[i] = x[i] * cos[i] - x[i + half] * sin[i];
#pragma omp simd
  for (int64_t i = half; i < dim; ++i) out[i] = x[i] * cos[i] + x[i - half] * sin[i];
}

// [sum(a[0]), ..., sum(a[7])]: eight horizontal sums at once.
inline v8 hsum8(const v8* a) {
#if defined(__AVX__)
  const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a[0], a[1]), _mm256_hadd_ps(a[2], a[3]));
  const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a[4], a[5]), _mm256_hadd_ps(a[6], a[7]));
  return _mm256_permute2f128_ps(u0, u1, 0x20) + _mm256_permute2f128_ps(u0, u1, 0x31);
#else
  v8 out;
  for (int j = 0; j < 8; ++j) {
    const v8 v = a[j];
    out[j] = ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
  }
  return out;
#endif
}

// s[t] = scale * <q, K[t]> for t < len. With D % 8 == 0, eight keys at a time: eight independent
// accumulators hide the FMA latency that a single dot product of 64 would be bound by.
void qk_scores(const float* q, const float* K, int64_t len, int64_t D, float scale, float* s) {
  int64_t t = 0;
  if (D % 8 == 0) {
    for (; t + 8 <= len; t += 8) {
      v8 acc[8];
      for (int j = 0; j < 8; ++j) acc[j] = v8{};
      for (int64_t d = 0; d < D; d += 8) {
        const v8 qv = load8(q + d);
        for (int j = 0; j < 8; ++j) acc[j] += qv * load8(K + (t + j) * D + d);
      }
      store8(s + t, hsum8(acc) * scale);
    }
  }
  for (; t < len; ++t) {
    float dot = 0.0f;
    for (int64_t d = 0; d < D; ++d) dot += q[d] * K[t * D + d];
    s[t] = dot * scale;
  }
}

// out = sum_t p[t] V[t] (out overwritten). With D % 8 == 0: 64 outputs at a time in eight registers (a
// fixed count, so they stay in registers), then any remaining 8-wide pieces one at a time.
void pv_sum(const float* p, const float* V, int64_t len, int64_t D, float* out) {
  if (D % 8 == 0) {
    int64_t d0 = 0;
    for (; d0 + 64 <= D; d0 += 64) {
      v8 acc[8];
      for (int i = 0; i < 8; ++i) acc[i] = v8{};
      for (int64_t t = 0; t < len; ++t) {
        const float pt = p[t];
        const float* vt = V + t * D + d0;
        for (int i = 0; i < 8; ++i) acc[i] += pt * load8(vt + 8 * i);
      }
      for (int i = 0; i < 8; ++i) store8(out + d0 + 8 * i, acc[i]);
    }
    for (; d0 < D; d0 += 8) {
      v8 acc = v8{};
      for (int64_t t = 0; t < len; ++t) acc += p[t] * load8(V + t * D + d0);
      store8(out + d0, acc);
    }
    return;
  }
  std::fill(out, out + D, 0.0f);
  for (int64_t t = 0; t < len; ++t)
    for (int64_t d = 0; d < D; ++d) out[d] += p[t] * V[t * D + d];
}

struct AttnShape {
  int64_t rows, heads, kv_heads, dim, slots, max_len;
};

// For each (row b, kv head): rotate k and store k, v at position pos[b] of the layer's cache; rotate the
// group of query heads sharing that kv head; attend over positions 0..pos[b]. qkv: [B, (H + 2 KV) * D];
// kc/vc: [slots, KV, max_len, D]; out: [B, H * D].
void rope_cache_attend(const float* qkv, const float* cos, const float* sin, float* kc, float* vc,
                       const int64_t* pos, float* out, const AttnShape& s, float scale) {
  const int64_t D = s.dim, KV = s.kv_heads, group = s.heads / s.kv_heads;
  const int64_t width = (s.heads + 2 * KV) * D;
  at::parallel_for(0, s.rows * KV, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> q(D), scores;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / KV, kvh = task % KV, p = pos[b], len = p + 1;
      const float* row = qkv + b * width;
      const float* c = cos + b * D;
      const float* sn = sin + b * D;
      const int64_t base = ((b * KV + kvh) * s.max_len) * D;
      float* K = kc + base;
      float* V = vc + base;
      rope(row + (s.heads + kvh) * D, c, sn, K + p * D, D);
      std::memcpy(V + p * D, row + (s.heads + KV + kvh) * D, D * sizeof(float));
      scores.resize(len);
      float* sg = scores.data();
      for (int64_t g = 0; g < group; ++g) {
        const int64_t head = kvh * group + g;
        rope(row + head * D, c, sn, q.data(), D);
        qk_scores(q.data(), K, len, D, scale, sg);
        float mx = sg[0];
        for (int64_t t = 1; t < len; ++t) mx = std::max(mx, sg[t]);
        const v8 vmx = splat(mx);
        map8(sg, sg, len, [&](v8 v, int64_t) { return exp8(v - vmx); });
        float sum = 0.0f;
        for (int64_t t = 0; t < len; ++t) sum += sg[t];
        const v8 inv = splat(1.0f / sum);
        map8(sg, sg, len, [&](v8 v, int64_t) { return v * inv; });
        pv_sum(sg, V, len, D, out + (b * s.heads + head) * D);
      }
    }
  });
}

// silu(gate) * up, gate_up: [B, 2 I] -> out: [B, I]. silu(x) = x / (1 + exp(-x)).
void silu_mul(const float* gate_up, float* out, int64_t rows, int64_t inter) {
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const float* g = gate_up + b * 2 * inter;
      const float* u = g + inter;
      float* o = out + b * inter;
      int64_t i = 0;
      for (; i + 8 <= inter; i += 8) {
        const v8 gv = load8(g + i);
        store8(o + i, gv / (1.0f + exp8(-gv)) * load8(u + i));
      }
      for (; i < inter; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
    }
  });
}

// All layers of one decode step. x: [B, hidden] (embedded tokens; not modified); weights: 8 per layer
// (empty tensors for absent biases); cache: [layers, 2, slots, KV, max_len, D]; positions: [B] int64 (the
// new token's position = tokens already cached in that row); cos/sin: [B, D]. Returns the hidden state
// after the last layer (before the final norm).
at::Tensor decode_layers(const at::Tensor& x_in, const std::vector<at::Tensor>& weights, const at::Tensor& cache,
                         const at::Tensor& positions, const at::Tensor& cos, const at::Tensor& sin, int64_t heads,
                         int64_t kv_heads, double eps, double scale) {
  const char* op = "decode_layers";
  check_f32(x_in, op, "x");
  check_f32(cache, op, "cache");
  check_f32(cos, op, "cos");
  check_f32(sin, op, "sin");
  TORCH_CHECK(positions.scalar_type() == at::kLong && positions.is_contiguous() && positions.dim() == 1 &&
                  positions.size(0) == x_in.size(0),
              "decode_layers: positions must be int64 with one entry per row of x");
  TORCH_CHECK(heads > 0 && kv_heads > 0 && heads % kv_heads == 0, "decode_layers: ", heads,
              " query heads cannot be grouped over ", kv_heads, " kv heads");
  TORCH_CHECK(!weights.empty() && weights.size() % kPerLayer == 0, "decode_layers: expected ", kPerLayer,
              " tensors per layer, got ", weights.size());
  const int64_t layers = static_cast<int64_t>(weights.size()) / kPerLayer;
  TORCH_CHECK(cache.dim() == 6 && cache.size(0) == layers && cache.size(1) == 2 && cache.size(3) == kv_heads,
              "decode_layers: cache must be [layers, 2, slots, kv_heads, max_len, dim]");
  const int64_t B = x_in.size(0), hidden = x_in.size(1), D = cache.size(5);
  TORCH_CHECK(weights[0].numel() == hidden && cos.size(0) == B && cos.size(1) == D && sin.sizes() == cos.sizes(),
              "decode_layers: x is [", B, ", ", hidden, "] but the norm weight has ", weights[0].numel(),
              " elements, or cos/sin are not [", B, ", ", D, "]");
  const AttnShape shape{B, heads, kv_heads, D, cache.size(2), cache.size(4)};
  TORCH_CHECK(B <= shape.slots, "decode_layers: ", B, " rows but the cache has ", shape.slots, " slots");
  const int64_t* pos = positions.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b)
    TORCH_CHECK(pos[b] >= 0 && pos[b] < shape.max_len, "decode_layers: position ", pos[b], " of row ", b,
                " is outside the cache (max_len ", shape.max_len, ")");
  const int64_t layer_stride = 2 * shape.slots * kv_heads * shape.max_len * D;

  at::Tensor x = x_in.clone();
  at::Tensor h = at::empty_like(x);
  at::Tensor att = at::empty({B, heads * D}, x.options());
  at::Tensor act;
  at::Tensor pending;  // the previous layer's MLP output, added to x by the next norm
  float* cache_ptr = cache.data_ptr<float>();
  for (int64_t l = 0; l < layers; ++l) {
    const at::Tensor* w = weights.data() + l * kPerLayer;
    add_rms_norm(x.data_ptr<float>(), pending.defined() ? pending.data_ptr<float>() : nullptr, h.data_ptr<float>(),
                 w[0].data_ptr<float>(), B, hidden, static_cast<float>(eps));
    const at::Tensor qkv = linear(h, w[1], w[2]).contiguous();
    float* kc = cache_ptr + l * layer_stride;
    rope_cache_attend(qkv.data_ptr<float>(), cos.data_ptr<float>(), sin.data_ptr<float>(), kc, kc + layer_stride / 2,
                      pos, att.data_ptr<float>(), shape, static_cast<float>(scale));
    const at::Tensor o = linear(att, w[3], w[4]).contiguous();
    add_rms_norm(x.data_ptr<float>(), o.data_ptr<float>(), h.data_ptr<float>(), w[5].data_ptr<float>(), B, hidden,
                 static_cast<float>(eps));
    const at::Tensor gate_up = linear(h, w[6], at::Tensor()).contiguous();
    const int64_t inter = gate_up.size(1) / 2;
    if (!act.defined()) act = at::empty({B, inter}, x.options());
    silu_mul(gate_up.data_ptr<float>(), act.data_ptr<float>(), B, inter);
    pending = linear(act, w[7], at::Tensor()).contiguous();
  }
  if (pending.defined()) x.add_(pending);
  return x;
}

}  // namespace

TORCH_LIBRARY(tulu, m) {
  // Catch-all kernels: a weight the panels cannot take is a oneDNN tensor, whose dispatch key would
  // outrank CPU.
  m.def("decode_layers(Tensor x, Tensor[] weights, Tensor cache, Tensor positions, Tensor cos, Tensor sin, "
        "int heads, int kv_heads, float eps, float scale) -> Tensor",
        TORCH_FN(decode_layers));
  m.def("pack_panels(Tensor w) -> Tensor", TORCH_FN(pack_panels));
  m.def("pack_panels_bf16(Tensor w) -> Tensor", TORCH_FN(pack_panels_bf16));
  m.def("pack_panels_dpbf16(Tensor w) -> Tensor", TORCH_FN(pack_panels_dpbf16));
  m.def("has_dpbf16() -> bool", TORCH_FN(has_dpbf16));
  m.def("panel_linear(Tensor x, Tensor w, Tensor? bias) -> Tensor", TORCH_FN(panel_linear));
}
