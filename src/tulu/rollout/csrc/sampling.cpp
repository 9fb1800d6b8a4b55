// The fast backend's sampling kernels on CPU: the top-p nucleus without sorting the vocabulary, and the
// greedy token with its log-sum-exp in one pass. Registered into torch.ops.tulu with decode.cpp's ops;
// built with it by tulu/rollout/kernels.py.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>
#include <utility>
#include <vector>

#include "vec.h"

namespace {

// ---------------------------------------------------------------------------------------------------
// Top-p (nucleus) candidates without sorting the vocabulary: tulu.rollout.sampling.candidates(z, top_k=0,
// top_p) for each row of temperature-scaled logits z [B, V]. Returns (probs [B, K], ids [B, K]): each
// row's tokens by descending logit (ties: lower id first), probabilities over the full vocabulary, zero
// past the nucleus (a token is kept while the mass strictly before it is < top_p; the first always) and
// on padding. One pass buckets every token by log2 of its probability relative to the most likely one;
// only the tokens of the buckets that reach top_p between them are sorted (the nucleus cannot reach
// below them). torch.topk of 256-4096 candidates per row measured ~19% of a sampled step at 32 rows.
std::tuple<at::Tensor, at::Tensor> nucleus(const at::Tensor& z_in, double top_p) {
  check_f32(z_in, "nucleus", "z");
  TORCH_CHECK(z_in.dim() == 2 && z_in.size(1) > 0, "nucleus: z must be [rows, vocab]");
  TORCH_CHECK(top_p > 0.0 && top_p <= 1.0, "nucleus: top_p must be in (0, 1], got ", top_p);
  const int64_t B = z_in.size(0), V = z_in.size(1);
  const float* z = z_in.data_ptr<float>();
  constexpr int kBuckets = 64;
  constexpr size_t kMaxPad = 1 << 16;
  std::vector<std::vector<std::pair<float, int64_t>>> picked(B);  // (prob, id) per row, nucleus order
  std::vector<int64_t> kept(B);
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> e(V);
    std::vector<uint8_t> bucket(V);
    std::vector<int64_t> cand;
    for (int64_t b = begin; b < end; ++b) {
      const float* zr = z + b * V;
      float mx = zr[0];
      for (int64_t i = 1; i < V; ++i) mx = std::max(mx, zr[i]);
      const v8 vmx = splat(mx);
      map8(e.data(), zr, V, [&](v8 v, int64_t) { return exp8(v - vmx); });
      double total = 0.0, mass[kBuckets] = {};
      for (int64_t i = 0; i < V; ++i) {
        const float gap = (mx - zr[i]) * 1.44269504088896341f;  // -log2 of the probability relative to the max
        const int k = gap < static_cast<float>(kBuckets - 1) ? static_cast<int>(gap) : kBuckets - 1;
        bucket[i] = static_cast<uint8_t>(k);
        mass[k] += e[i];
        total += e[i];
      }
      int last = 0;
      for (double cum = mass[0]; cum < top_p * total && last < kBuckets - 1;) cum += mass[++last];
      cand.clear();
      for (int64_t i = 0; i < V; ++i)
        if (bucket[i] <= last) cand.push_back(i);
      std::sort(cand.begin(), cand.end(), [&](int64_t a, int64_t c) { return zr[a] > zr[c] || (zr[a] == zr[c] && a < c); });
      // the mass before each token in double: near top_p = 0.999 a float running sum drifts by ~1e-6,
      // enough to move the nucleus boundary by a token
      // (the 1e-12 absorbs the rounding of exact ties: 5000 equal logits at top_p 0.9 keep 4500)
      const double inv = 1.0 / total;
      double cum = 0.0;
      auto& out = picked[b];
      out.clear();
      for (const int64_t i : cand) {
        if (!out.empty() && cum >= top_p - 1e-12) break;
        const double p = e[i] * inv;
        out.emplace_back(static_cast<float>(p), i);
        cum += p;
      }
      kept[b] = static_cast<int64_t>(out.size());
      // padding (probability 0) continues down the sorted candidates, so a row's ids stay distinct
      for (size_t j = out.size(); j < cand.size() && j < kMaxPad; ++j) out.emplace_back(0.0f, cand[j]);
    }
  });
  int64_t K = 1;
  for (const int64_t k : kept) K = std::max(K, k);
  at::Tensor probs = at::zeros({B, K}, z_in.options());
  at::Tensor ids = at::empty({B, K}, z_in.options().dtype(at::kLong));
  float* pp = probs.data_ptr<float>();
  int64_t* ip = ids.data_ptr<int64_t>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& row = picked[b];
    const int64_t have = std::min<int64_t>(K, static_cast<int64_t>(row.size()));
    for (int64_t j = 0; j < have; ++j) {
      pp[b * K + j] = row[j].first;
      ip[b * K + j] = row[j].second;
    }
    if (have == K) continue;
    std::vector<bool> used(V, false);  // past the candidates: the lowest ids not used yet
    for (int64_t j = 0; j < have; ++j) used[row[j].second] = true;
    int64_t next = 0;
    for (int64_t j = have; j < K; ++j) {
      while (used[next]) ++next;
      ip[b * K + j] = next++;
    }
  }
  return {probs, ids};
}

// ---------------------------------------------------------------------------------------------------
// argmax and log-sum-exp of each row of z [B, V] in two passes over the row (max, then the sum of exp in
// eight float lanes flushed to double every 512 tokens): what a greedy step needs for its token and that
// token's log-prob, and what a sampled step needs for its log-probs. torch.argmax + torch.logsumexp
// measured ~4.5 ms a step at 32 rows of this model's 49,152 logits. Semantics are torch's: the first
// index of the maximum; a row with a NaN gives the first NaN's index and NaN; a row of -inf gives
// (0, -inf); a +inf gives +inf.
std::tuple<at::Tensor, at::Tensor> argmax_logsumexp(const at::Tensor& z_in) {
  check_f32(z_in, "argmax_logsumexp", "z");
  TORCH_CHECK(z_in.dim() == 2 && z_in.size(1) > 0, "argmax_logsumexp: z must be [rows, vocab]");
  const int64_t B = z_in.size(0), V = z_in.size(1);
  const at::Tensor zc = z_in.contiguous();
  const float* z = zc.data_ptr<float>();
  at::Tensor ids = at::empty({B}, zc.options().dtype(at::kLong));
  at::Tensor lse = at::empty({B}, zc.options());
  int64_t* ip = ids.data_ptr<int64_t>();
  float* lp = lse.data_ptr<float>();
  at::parallel_for(0, B, 1, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const float* zr = z + b * V;
      v8 vm = splat(-INFINITY);
      vi8 nan{};
      int64_t i = 0;
      for (; i + 8 <= V; i += 8) {
        const v8 v = load8(zr + i);
        nan |= (v != v);
        vm = v > vm ? v : vm;
      }
      float mx = vm[0];
      bool has_nan = false;
      for (int j = 0; j < 8; ++j) {
        mx = std::max(mx, vm[j]);
        has_nan |= nan[j] != 0;
      }
      for (; i < V; ++i) {
        has_nan |= std::isnan(zr[i]);
        mx = std::max(mx, zr[i]);
      }
      if (has_nan) {
        int64_t k = 0;
        while (!std::isnan(zr[k])) ++k;
        ip[b] = k;
        lp[b] = NAN;
        continue;
      }
      int64_t k = 0;
      while (zr[k] != mx) ++k;
      ip[b] = k;
      if (std::isinf(mx)) {  // all -inf, or a +inf
        lp[b] = mx;
        continue;
      }
      const v8 vmx = splat(mx);
      double total = 0.0;
      i = 0;
      while (i + 8 <= V) {
        v8 acc{};
        for (const int64_t stop = std::min(V - V % 8, i + 512); i < stop; i += 8) acc += exp8(load8(zr + i) - vmx);
        for (int j = 0; j < 8; ++j) total += acc[j];
      }
      for (; i < V; ++i) total += std::exp(zr[i] - mx);
      lp[b] = static_cast<float>(mx + std::log(total));
    }
  });
  return {ids, lse};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(tulu, m) {
  m.def("nucleus(Tensor z, float top_p) -> (Tensor, Tensor)", TORCH_FN(nucleus));
  m.def("argmax_logsumexp(Tensor z) -> (Tensor, Tensor)", TORCH_FN(argmax_logsumexp));
}
