// Shared by decode.cpp and sampling.cpp: eight-float vector helpers on GCC vector types (AVX2/NEON
// without -ffast-math) and an input check.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace {

// ---------------------------------------------------------------------------------------------------
// Elementwise pieces, written on GCC vector types so that they compile to AVX2 (or NEON) without
// -ffast-math.

typedef float v8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));

inline v8 load8(const float* p) {
  v8 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

inline void store8(float* p, v8 v) { std::memcpy(p, &v, sizeof(v)); }

// Eight bf16 values (the upper halves of fp32 bit patterns) widened to fp32, exactly: zero-extend each u16
// to u32 and shift it left by 16: two AVX2 instructions (vpmovzxwd, vpslld), no AVX-512 needed. (GCC
// turns the portable __builtin_convertvector form into five, measurably slower in the panel kernel.)
inline v8 load8(const uint16_t* p) {
#if defined(__AVX2__)
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
#else
  typedef uint16_t vh8 __attribute__((vector_size(16)));
  typedef uint32_t vu8 __attribute__((vector_size(32)));
  vh8 h;
  std::memcpy(&h, p, sizeof(h));
  const vu8 u = __builtin_convertvector(h, vu8) << 16;
  v8 v;
  std::memcpy(&v, &u, sizeof(v));
  return v;
#endif
}

inline v8 splat(float x) { return v8{x, x, x, x, x, x, x, x}; }  // (not v8{} + x: an add the compiler must keep)

// a * b + c with one rounding, always: left to the compiler, `a * b + c` was contracted into an FMA in some
// template instances and not in others, so the same row came out differently at 1 and at 2+ rows.
inline v8 fma8(v8 a, v8 b, v8 c) {
#if defined(__FMA__)
  return _mm256_fmadd_ps(a, b, c);
#else
  v8 out;
  for (int i = 0; i < 8; ++i) out[i] = std::fma(a[i], b[i], c[i]);
  return out;
#endif
}

// exp(x), eight at a time: Cody-Waite range reduction and Cephes' degree-6 polynomial (~1 ulp on the
// range used here: softmax arguments <= 0, SiLU arguments of moderate size); inputs clamped to
// [-87, 88], where exp stays a normal float.
inline v8 exp8(v8 x) {
  const v8 lo = splat(-87.0f), hi = splat(88.0f);
  x = x < lo ? lo : x;
  x = x > hi ? hi : x;
  const v8 magic = splat(12582912.0f);  // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer
  const v8 n = (x * 1.44269504088896341f + magic) - magic;
  v8 r = x - n * 0.693359375f;
  r = r + n * 2.12194440e-4f;
  v8 p = splat(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const v8 y = p * r * r + r + 1.0f;
  const vi8 bits = (__builtin_convertvector(n, vi8) + 127) << 23;
  v8 scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

// f applied to n floats, eight at a time; the tail goes through a padded copy.
template <typename F>
inline void map8(float* out, const float* in, int64_t n, F f) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) store8(out + i, f(load8(in + i), i));
  if (i < n) {
    float tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(tmp, in + i, (n - i) * sizeof(float));
    const v8 v = f(load8(tmp), i);
    std::memcpy(out + i, &v, (n - i) * sizeof(float));
  }
}

void check_f32(const at::Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(), op, ": ", name,
              " must be a contiguous CPU float32 tensor");
}

}  // namespace
