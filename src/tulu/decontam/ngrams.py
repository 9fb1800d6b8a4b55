"""Tokenisation, the eval-side 8-gram index, and matching of training instances against it.

The rule (from the Tulu 3 report; docs/decontam.md): text is lowercased and split on punctuation and
whitespace; an eval instance is *contaminated by a training instance* when more than ``threshold`` (50%)
of the eval instance's tokens are covered by n-grams (n = 8) that it shares with that one training
instance.

How it is made fast:

* Every token of the eval side gets a small integer id (the index's vocabulary). A training token that is
  not in that vocabulary can never be part of a shared n-gram, so it becomes 0, a "gap" id; segment and
  instance boundaries are 0 too. An n-gram is *valid* only when it contains no 0.
* Each n-gram is hashed to a 64-bit integer with a polynomial over its ids, vectorised with numpy over a
  whole chunk of training instances at once. A bitmap prefilter then a binary search over the sorted eval
  hashes find the shared n-grams; each hit is checked id by id, so a hash collision can never produce a
  false match.
* Only the rare training instances that share an n-gram with the eval side go on to the exact coverage
  computation, which is vectorised over all candidate eval instances at once.

The rule implemented here is checked against a brute-force pairwise implementation in
``tests/decontam/test_ngrams.py`` on randomised corpora.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import repeat
from typing import Sequence

import numpy as np

TOKEN_RE = re.compile(r"[^\W_]+")
"""A token is a maximal run of letters and digits: underscores, punctuation and whitespace all split."""

_P = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit multiplier of the polynomial n-gram hash
_BITMAP_BITS = 26  # 2**26 bits = 8 MiB prefilter


def tokenize(text: str) -> list[str]:
    """Lowercase, then split on punctuation and whitespace."""
    return TOKEN_RE.findall(text.lower())


def gram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """64-bit polynomial hash of every window of ``n`` ids (length ``len(ids) - n + 1``, wrapping mod 2**64)."""
    m = len(ids) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=np.uint64)
    ids = ids.astype(np.uint64, copy=False)
    h = ids[:m].copy()
    for k in range(1, n):
        h *= _P
        h += ids[k:k + m]
    # final avalanche (xor-shift-multiply) so that the top bits used by the bitmap are well mixed
    h ^= h >> np.uint64(31)
    h *= np.uint64(0xBF58476D1CE4E5B9)
    h ^= h >> np.uint64(29)
    return h


def valid_windows(ids: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask over windows: True where the window of ``n`` ids contains no 0 (gap/boundary)."""
    m = len(ids) - n + 1
    if m <= 0:
        return np.zeros(0, dtype=bool)
    zeros = np.concatenate(([0], np.cumsum(ids == 0)))
    return zeros[n:] == zeros[:m]


@dataclass
class EvalIndex:
    """The n-gram index of the eval side. Built once by :func:`build_index`; picklable for worker processes.

    ``eval_grams`` holds, for each token position of each eval instance (CSR by ``eval_ptr``), the unique
    n-gram starting there (an index into ``gram_hash``), or -1 where no n-gram starts (the last n-1 tokens
    of a segment).
    """

    n: int
    vocab: dict[str, int]
    gram_hash: np.ndarray  # (G,) uint64, sorted, unique
    gram_ids: np.ndarray  # (G, n) int32 token ids of each unique n-gram (exact check against collisions)
    post_ptr: np.ndarray  # (G+1,) postings CSR: eval instances containing each n-gram
    post_eval: np.ndarray  # int32
    eval_ptr: np.ndarray  # (E+1,) int64
    eval_grams: np.ndarray  # int32, -1 where no n-gram starts
    eval_ntok: np.ndarray  # (E,) tokens per eval instance
    bitmap: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.uint8))

    @property
    def num_eval(self) -> int:
        return len(self.eval_ntok)

    def segment_ids(self, text: str) -> list[int]:
        get = self.vocab.get
        return list(map(get, tokenize(text), repeat(0)))


def _unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted unique values, index of each one's first occurrence, and the inverse (sort-based, fast)."""
    order = np.argsort(values, kind="stable")
    v = values[order]
    new = np.concatenate(([True], v[1:] != v[:-1])) if len(v) else np.zeros(0, dtype=bool)
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return v[new], order[new], inverse


def build_index(eval_segments: Sequence[Sequence[str]], n: int = 8) -> EvalIndex:
    """Index eval instances, each given as a list of text segments (n-grams never span two segments)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    tokens = [[tokenize(s) for s in segs] for segs in eval_segments]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(t for segs in tokens for toks in segs for t in toks), 1)}
    flat: list[int] = []  # all eval instances back to back, 0 after every segment
    starts = [0]
    ntok = np.zeros(len(eval_segments), dtype=np.int64)
    lookup = vocab.__getitem__
    for e, segs in enumerate(tokens):
        for toks in segs:
            ntok[e] += len(toks)
            flat.extend(map(lookup, toks))
            flat.append(0)
        starts.append(len(flat))
    ids = np.asarray(flat, dtype=np.int64)

    # every valid window, its owner and its token position within the owner (separators not counted)
    win = np.nonzero(valid_windows(ids, n))[0]
    all_h = gram_hashes(ids, n)[win]
    all_owner = np.searchsorted(np.asarray(starts), win, side="right") - 1
    zeros_before = np.concatenate(([0], np.cumsum(ids == 0)))[win]
    tok_start = np.concatenate(([0], np.cumsum(ntok)))
    all_pos = win - zeros_before - tok_start[all_owner]
    all_win = np.lib.stride_tricks.sliding_window_view(ids, n)[win] if len(win) else np.zeros((0, n), np.int64)

    gram_hash, first, inverse = _unique(all_h)
    gram_ids = all_win[first].astype(np.int32)
    if len(all_win) and not np.array_equal(all_win, gram_ids[inverse]):
        raise RuntimeError("64-bit n-gram hash collision on the eval side; change _P")  # never seen; checked

    # postings: unique (gram, eval) pairs, CSR by gram
    n_eval = max(len(eval_segments), 1)
    pairs = np.sort(inverse.astype(np.int64) * n_eval + all_owner)
    pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))] if len(pairs) else pairs
    post_ptr = np.concatenate(([0], np.cumsum(np.bincount(pairs // n_eval, minlength=len(gram_hash)))))
    post_eval = (pairs % n_eval).astype(np.int32)

    eval_ptr = np.concatenate(([0], np.cumsum(ntok))).astype(np.int64)
    eval_grams = np.full(int(eval_ptr[-1]), -1, dtype=np.int32)
    eval_grams[eval_ptr[all_owner] + all_pos] = inverse

    bitmap = np.zeros(1 << (_BITMAP_BITS - 3), dtype=np.uint8)
    if len(gram_hash):
        top = gram_hash >> np.uint64(64 - _BITMAP_BITS)
        np.bitwise_or.at(bitmap, (top >> np.uint64(3)).astype(np.int64),
                         (np.uint8(1) << (top & np.uint64(7)).astype(np.uint8)))
    return EvalIndex(n=n, vocab=vocab, gram_hash=gram_hash, gram_ids=gram_ids, post_ptr=post_ptr,
                     post_eval=post_eval, eval_ptr=eval_ptr, eval_grams=eval_grams, eval_ntok=ntok,
                     bitmap=bitmap)


def encode_chunk(index: EvalIndex, instances: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Flatten training instances (lists of segments) into one id array with 0 after every segment.

    Returns ``(ids, starts)``: ``starts[i]`` is the offset of instance ``i`` (length ``len(instances)+1``).
    """
    get = index.vocab.get
    flat: list[int] = []
    starts = [0]
    ext = flat.extend
    app = flat.append
    for segs in instances:
        for s in segs:
            ext(map(get, TOKEN_RE.findall(s.lower()), repeat(0)))
            app(0)
        starts.append(len(flat))
    return np.asarray(flat, dtype=np.int64), np.asarray(starts, dtype=np.int64)


def _lookup(index: EvalIndex, h: np.ndarray) -> np.ndarray:
    """For each hash, the unique-gram index with that hash, or -1."""
    out = np.full(len(h), -1, dtype=np.int64)
    if not len(h) or not len(index.gram_hash):
        return out
    top = h >> np.uint64(64 - _BITMAP_BITS)
    maybe = (index.bitmap[(top >> np.uint64(3)).astype(np.int64)] >> (top & np.uint64(7)).astype(np.uint8)) & 1
    cand = np.nonzero(maybe)[0]
    if not len(cand):
        return out
    pos = np.searchsorted(index.gram_hash, h[cand])
    pos[pos == len(index.gram_hash)] = 0
    found = index.gram_hash[pos] == h[cand]
    out[cand[found]] = pos[found]
    return out


def match_encoded(index: EvalIndex, ids: np.ndarray, starts: np.ndarray,
                  threshold: float = 0.5) -> list[tuple[int, int, int]]:
    """Contamination pairs ``(instance, eval_instance, covered_tokens)`` with ``covered/ntok > threshold``.

    Sorted by instance then eval instance.
    """
    n = index.n
    h = gram_hashes(ids, n)
    if not len(h):
        return []
    ok = valid_windows(ids, n)
    win = np.nonzero(ok)[0]
    g = _lookup(index, h[win])
    hit = g >= 0
    win, g = win[hit], g[hit]
    if not len(win):
        return []
    # exact check of the ids (a 64-bit collision must never make a match)
    exact = (np.lib.stride_tricks.sliding_window_view(ids, n)[win] == index.gram_ids[g]).all(axis=1)
    win, g = win[exact], g[exact]
    inst = np.searchsorted(starts, win, side="right") - 1
    out: list[tuple[int, int, int]] = []
    bounds = np.nonzero(np.diff(inst))[0] + 1
    for grp_inst, grp_g in zip(np.split(inst, bounds), np.split(g, bounds)):
        if not len(grp_inst):
            continue
        for e, cov in coverage(index, np.unique(grp_g), threshold):
            out.append((int(grp_inst[0]), e, cov))
    return out


def coverage(index: EvalIndex, grams: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Eval instances whose tokens are covered > threshold by the given set of unique n-grams (sorted)."""
    n = index.n
    lo, hi = index.post_ptr[grams], index.post_ptr[grams + 1]
    cand = np.unique(np.concatenate([index.post_eval[a:b] for a, b in zip(lo, hi)]))
    ntok = index.eval_ntok[cand]
    # cheap bound: k shared n-gram starts can cover at most k + n - 1 tokens (and at most k * n)
    shared_lo = index.eval_ptr[cand]
    # gather the candidates' gram arrays back to back; their last n-1 slots are -1, so the dilation below
    # never spills from one eval instance into the next
    total = int(ntok.sum())
    offs = np.concatenate(([0], np.cumsum(ntok)))
    gather = np.repeat(shared_lo - offs[:-1], ntok) + np.arange(total)
    mask = np.isin(index.eval_grams[gather], grams)
    csum = np.concatenate(([0], np.cumsum(mask)))
    # token t is covered when some n-gram starting in [t-n+1, t] is shared
    t = np.arange(total)
    seg_start = np.repeat(offs[:-1], ntok)
    left = np.maximum(t - n + 1, seg_start)
    covered_tok = (csum[t + 1] - csum[left]) > 0
    cov = np.add.reduceat(covered_tok, offs[:-1]) if total else np.zeros(0, dtype=np.int64)
    return [(int(e), int(c)) for e, c, k in zip(cand, cov, ntok) if k and c / k > threshold]


def match_instances(index: EvalIndex, instances: Sequence[Sequence[str]],
                    threshold: float = 0.5) -> list[tuple[int, int, int]]:
    """Tokenise and match a batch of training instances (each a list of text segments)."""
    ids, starts = encode_chunk(index, instances)
    return match_encoded(index, ids, starts, threshold)
