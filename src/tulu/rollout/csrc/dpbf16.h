// The bf16-product panel matmul of dpbf16.cpp, called by decode.cpp's panel_linear.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace tulu_dpbf16 {

// Output columns per panel, and bf16 values per panel row (16 columns x a pair of k).
constexpr int64_t kCols = 16;
constexpr int64_t kWidth = 2 * kCols;

// Whether this build has the kernel (compiled with AVX512-BF16 enabled, e.g. -march=native on such a CPU).
bool available();

// [N, K] fp32 -> [N / 16, ceil(K / 2), 32] bf16 (round to nearest even): panel p, pair k holds
// W[16p + c, 2k + j] at position 2c + j; an odd K is padded with a zero column.
at::Tensor pack(const at::Tensor& w);

// y[M, N] = bf16(x)[M, K] @ W^T (+ bias), fp32 accumulation; w from pack(), P = N / 16 panels.
void run(const float* x, int64_t M, int64_t K, const uint16_t* w, int64_t P, const float* bias, float* y);

}  // namespace tulu_dpbf16
