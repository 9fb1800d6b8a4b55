// bf16 products with fp32 accumulation for the fast backend's panel matmul, on AVX512-BF16 (vdpbf16ps).
//
// y[M, N] = bf16(x) @ W^T (+ bias): W packed as 16-column panels of bf16 pairs along K (pack()), so one
// 512-bit load holds 16 output columns x 2 consecutive k; each row of x is rounded to bf16 once per call
// (round to nearest even; vcvtneps2bf16, which also flushes fp32 denormals to zero) and each pair of its
// values is broadcast as one 32-bit lane. One vdpbf16ps then adds x[2k] W[c, 2k] + x[2k+1] W[c, 2k+1] to the
// fp32 accumulator of column c, for 16 columns: 32 multiply-adds where the fp32 kernel's FMA does 8 (256-bit)
// or 16 (512-bit). The products of two bf16 values are exact in fp32; only the accumulation rounds.
//
// Blocking mirrors decode.cpp's fp32 kernel: at <= 8 rows (decode) every row against one panel in a single
// pass, the weights streamed once front to back per thread with the next panel prefetched; at
// more rows, chunks of 48 rows in blocks of <= kBlockRows rows against a pair of panels (2 x kBlockRows
// accumulators). Every row's sums run in the same order whatever the batch (batch invariance).
//
// Built only where the compiler targets AVX512-BF16 (__AVX512BF16__, from -march=native on such a CPU);
// elsewhere available() is false and the engine keeps the bf16-storage path (bf16 widened to fp32).

#include "dpbf16.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#if defined(__AVX512BF16__)
#include <immintrin.h>
#endif

namespace tulu_dpbf16 {

at::Tensor pack(const at::Tensor& w) {
  TORCH_CHECK(w.dim() == 2 && w.scalar_type() == at::kFloat && w.device().is_cpu(),
              "pack_panels_dpbf16: expected a 2-D CPU float32 weight");
  const int64_t N = w.size(0), K = w.size(1), K2 = (K + 1) / 2;
  TORCH_CHECK(N % kCols == 0, "pack_panels_dpbf16: ", N, " output features is not a multiple of ", kCols);
  at::Tensor padded = K % 2 ? at::constant_pad_nd(w, {0, 1}) : w;
  return padded.to(at::kBFloat16).reshape({N / kCols, kCols, K2, 2}).permute({0, 2, 1, 3}).contiguous().reshape(
      {N / kCols, K2, kWidth});
}

#if defined(__AVX512BF16__)

bool available() { return true; }

namespace {

constexpr int kBlockRows = 8;  // rows per block at > 8 rows: 2 x 8 accumulators + 2 weight registers

inline __m512bh as_bh(__m512i v) { return (__m512bh)v; }

// acc[r][v] over rows r < MR and panels v < NV (w_v = w + v * K2 * 32), all k pairs; xb: rows of bf16
// pairs as uint32 (ldx pairs apart).
template <int MR, int NV, bool PF>
inline void block(const uint32_t* xb, int64_t ldx, const uint16_t* w, int64_t K2, float* y, int64_t ldy,
                  const float* bias) {
  __m512 acc[MR][NV];
  for (int v = 0; v < NV; ++v) {
    const __m512 b0 = bias != nullptr ? _mm512_loadu_ps(bias + kCols * v) : _mm512_setzero_ps();
    for (int r = 0; r < MR; ++r) acc[r][v] = b0;
  }
  for (int64_t k = 0; k < K2; ++k) {
    __m512bh wv[NV];
    for (int v = 0; v < NV; ++v) {
      const uint16_t* p = w + (v * K2 + k) * kWidth;
      if constexpr (PF) __builtin_prefetch(p + NV * K2 * kWidth, 0, 2);  // the next panels, into L2
      wv[v] = as_bh(_mm512_loadu_si512(p));
    }
    for (int r = 0; r < MR; ++r) {
      const __m512bh xv = as_bh(_mm512_set1_epi32(static_cast<int>(xb[r * ldx + k])));
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], xv, wv[v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(y + r * ldy + kCols * v, acc[r][v]);
}

template <int MR, int NV, bool PF>
void block_n(const uint32_t* xb, int64_t ldx, const uint16_t* w, int64_t K2, float* y, int64_t ldy,
             const float* bias, int64_t rows) {
  if constexpr (MR > 1) {
    if (rows < MR) return block_n<MR - 1, NV, PF>(xb, ldx, w, K2, y, ldy, bias, rows);
  }
  block<MR, NV, PF>(xb, ldx, w, K2, y, ldy, bias);
}

// Rows of x rounded to bf16 (nearest even), ldx pairs apart; an odd K's last pair gets a zero.
void round_rows(const float* x, int64_t M, int64_t K, uint32_t* xb, int64_t ldx) {
  for (int64_t r = 0; r < M; ++r) {
    uint16_t* out = reinterpret_cast<uint16_t*>(xb + r * ldx);
    for (int64_t k = 0; k < K; k += 16) {
      const __mmask16 m = K - k >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (K - k)) - 1);
      const __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + r * K + k));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + k), (__m256i)h);
    }
  }
}

}  // namespace

void run(const float* x, int64_t M, int64_t K, const uint16_t* w, int64_t P, const float* bias, float* y) {
  const int64_t K2 = (K + 1) / 2, N = P * kCols;
  const int64_t ldx = (K + 15) / 16 * 8;  // pairs per row, whole 16-value groups (the rounding writes 16 at a time)
  std::vector<uint32_t> xbuf(M * ldx);
  round_rows(x, M, K, xbuf.data(), ldx);
  const uint32_t* xb = xbuf.data();
  if (M <= 8) {  // decode: one pass per panel (one pair of panels per pass measured no faster, and slower
                 // on weights streamed from memory: the LM head)
    at::parallel_for(0, P, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p)
        block_n<8, 1, true>(xb, ldx, w + p * K2 * kWidth, K2, y + p * kCols, N,
                            bias != nullptr ? bias + p * kCols : nullptr, M);
    });
    return;
  }
  // more rows: panel pairs (an odd last panel alone)
  const int64_t pairs = (P + 1) / 2;
  auto panels = [&](int64_t pp) { return std::min<int64_t>(2, P - 2 * pp); };
  constexpr int64_t kRowChunk = 48;  // rows of x kept hot in cache while the panels stream past
  for (int64_t m0 = 0; m0 < M; m0 += kRowChunk) {
    const int64_t rows = std::min(kRowChunk, M - m0);
    const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;  // balanced blocks (32 rows: 8 8 8 8)
    at::parallel_for(0, pairs, 1, [&](int64_t begin, int64_t end) {
      for (int64_t pp = begin; pp < end; ++pp) {
        const int64_t col = 2 * pp * kCols;
        const uint16_t* wp = w + 2 * pp * K2 * kWidth;
        const float* bp = bias != nullptr ? bias + col : nullptr;
        int64_t r = m0;
        for (int64_t i = 0; i < blocks; ++i) {
          const int64_t n = rows / blocks + (i < rows % blocks ? 1 : 0);
          const uint32_t* xr = xb + r * ldx;
          float* yr = y + r * N + col;
          if (panels(pp) == 1)
            block_n<kBlockRows, 1, false>(xr, ldx, wp, K2, yr, N, bp, n);
          else if (i == 0)  // the first row block prefetches the next pair of panels
            block_n<kBlockRows, 2, true>(xr, ldx, wp, K2, yr, N, bp, n);
          else
            block_n<kBlockRows, 2, false>(xr, ldx, wp, K2, yr, N, bp, n);
          r += n;
        }
      }
    });
  }
}

#else  // no AVX512-BF16 in this build

bool available() { return false; }

void run(const float*, int64_t, int64_t, const uint16_t*, int64_t, const float*, float*) {
  TORCH_CHECK(false, "panel_linear: this build has no AVX512-BF16 kernel (pack with pack_panels_bf16 instead)");
}

#endif

}  // namespace tulu_dpbf16
