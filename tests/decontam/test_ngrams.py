"""The fast matcher against the brute-force reference (tests/decontam/reference.py) and the rule's edges."""

from __future__ import annotations

import random

import numpy as np
import pytest
from decontam_reference import ref_matches

from tulu.decontam import ngrams
from tulu.decontam.ngrams import build_index, match_instances, tokenize


def test_tokenize_lowercases_and_splits_on_punctuation_and_whitespace():
    assert tokenize("Janet's ducks, 16-eggs/day!\tFOO_bar  x") == ["janet", "s", "ducks", "16", "eggs", "day",
                                                                   "foo", "bar", "x"]
    assert tokenize("Ünïcode ÉTÉ café") == ["ünïcode", "été", "café"]
    assert tokenize("  ...  ") == []


WORDS = "the a cat dog sat on mat x y z 1 2 3 über".split()


def _sentence(rng: random.Random, k: int) -> str:
    words = [rng.choice(WORDS) for _ in range(k)]
    return "".join(w + rng.choice([" ", " ", ", ", ". ", "-", "\n"]) for w in words)


def _corpora(rng: random.Random):
    evals = [[_sentence(rng, rng.randint(0, 16)) for _ in range(rng.randint(1, 3))] for _ in range(rng.randint(1, 10))]
    train = []
    for _ in range(rng.randint(1, 12)):
        r = rng.random()
        if r < 0.4:  # a (partly) copied eval instance, recased, with extra text and maybe cut
            src = rng.choice(evals)
            segs = [s.upper() if rng.random() < 0.3 else s for s in src]
            if rng.random() < 0.5:
                segs = [s[: rng.randint(0, len(s))] for s in segs]
            train.append(segs + [_sentence(rng, rng.randint(0, 10))])
        elif r < 0.6:  # several eval instances merged into one segment
            train.append([" ".join(" ".join(rng.choice(evals)) for _ in range(2))])
        else:
            train.append([_sentence(rng, rng.randint(0, 25)) for _ in range(rng.randint(0, 2))])
    return evals, train


@pytest.mark.parametrize("seed", range(40))
def test_fast_path_equals_brute_force_on_random_corpora(seed):
    rng = random.Random(seed)
    n = rng.choice([1, 2, 3, 5, 8])
    threshold = rng.choice([0.0, 0.3, 0.5, 0.8])
    evals, train = _corpora(rng)
    index = build_index(evals, n)
    assert match_instances(index, train, threshold) == ref_matches(evals, train, n, threshold)


def test_whole_copy_is_found_and_near_miss_is_not():
    ev = "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May."
    index = build_index([[ev], ["something else entirely with more than eight words in it here"]], 8)
    assert match_instances(index, [[ev.upper()]]) == [(0, 0, len(tokenize(ev)))]
    # every 7th word changed: no 8-gram survives
    words = ev.split()
    broken = " ".join(w if i % 7 else "zzz" for i, w in enumerate(words))
    assert match_instances(index, [[broken]]) == []


def test_threshold_is_strict_more_than_half():
    # eval: 16 tokens; the training instance shares exactly the first 8 tokens (one 8-gram) -> 50%, not > 50%
    ev = " ".join(f"w{i}" for i in range(16))
    index = build_index([[ev]], 8)
    first8 = " ".join(f"w{i}" for i in range(8))
    assert match_instances(index, [[first8]], 0.5) == []
    first9 = " ".join(f"w{i}" for i in range(9))
    assert match_instances(index, [[first9]], 0.5) == [(0, 0, 9)]


def test_ngrams_never_span_segments_or_instances():
    ev = "one two three four five six seven eight nine ten"
    index = build_index([[ev]], 8)
    # the eval text split across two turns of one instance shares no 8-gram
    assert match_instances(index, [["one two three four five", "six seven eight nine ten"]]) == []
    # nor across two consecutive instances
    assert match_instances(index, [["one two three four five"], ["six seven eight nine ten"]]) == []


def test_eval_instances_shorter_than_n_never_match():
    index = build_index([["What is two plus two?"]], 8)
    assert index.eval_ntok.tolist() == [5]
    assert match_instances(index, [["what is two plus two"]]) == []


def test_a_hash_collision_never_makes_a_match(monkeypatch):
    """With a deliberately weak hash (sum of ids), grams with equal sums must still be told apart."""

    def weak(ids, n):
        ids = ids.astype(np.uint64)
        m = len(ids) - n + 1
        return np.array([ids[i:i + n].sum() for i in range(max(m, 0))], dtype=np.uint64)

    monkeypatch.setattr(ngrams, "gram_hashes", weak)
    index = build_index([["a b c d"]], 2)  # ids a=1 b=2 c=3 d=4: gram sums 3, 5, 7 (distinct)
    assert match_instances(index, [["b a c b d c"]], 0.0) == []  # sums 3, 5, 5, 7, 7 but no shared gram
    assert match_instances(index, [["a b"]], 0.0) == [(0, 0, 2)]


def test_empty_inputs():
    index = build_index([[""], ["short"]], 8)
    assert len(index.gram_hash) == 0
    assert match_instances(index, [[], [""], ["short words only"]]) == []
    assert match_instances(build_index([["a b c d e f g h i"]], 8), []) == []
