"""Pure metric functions: means with standard errors, macro averages, pass@k, answer-letter extraction,
DROP F1 and the length-controlled win rate. Each one is small and tested against its reference."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence

import numpy as np


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
    """Sample mean and its standard error (ddof=1; 0 for fewer than two values)."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return float("nan"), float("nan")
    if arr.size == 1:
        return float(arr[0]), 0.0
    return float(arr.mean()), float(arr.std(ddof=1) / math.sqrt(arr.size))


def macro_mean_stderr(groups: dict[str, Sequence[float]]) -> tuple[float, float]:
    """Unweighted mean over groups of the per-group means (OLMES's "macro" aggregation); the error
    combines the group errors (independent groups: sqrt(sum se_g^2) / G). A group of one item has no
    variance estimate of its own: it borrows the variance of all items pooled (a limited run of MMLU has
    one or two items per subject, and a standard error of 0 would be wrong)."""
    groups = {k: list(v) for k, v in groups.items() if len(v)}
    if not groups:
        return float("nan"), float("nan")
    pooled = [x for v in groups.values() for x in v]
    pooled_var = float(np.var(pooled, ddof=1)) if len(pooled) > 1 else 0.0
    means, variances = [], []
    for v in groups.values():
        m, se = mean_stderr(v)
        means.append(m)
        variances.append(se * se if len(v) > 1 else pooled_var)
    g = len(means)
    return sum(means) / g, math.sqrt(sum(variances)) / g


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c pass (Chen et al. 2021): 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n:
        raise ValueError(f"pass_at_k: need 0 <= c <= n, got n={n} c={c}")
    if k > n:
        raise ValueError(f"pass_at_k: k={k} exceeds the number of samples n={n}")
    if n - c < k:
        return 1.0
    # product form avoids huge binomials
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


_COT_ANSWER = re.compile(r"answer is:?\s*\(?\s*([A-J])\b\s*\)?", re.IGNORECASE)
_PAREN_LETTER = re.compile(r"\(([A-J])\)")


def extract_choice_cot(response: str, n_choices: int = 4) -> str | None:
    """The letter of a chain-of-thought multiple-choice answer: the last "answer is (X)" phrase; failing
    that, the last parenthesised letter "(X)". Letters beyond ``n_choices`` do not count."""
    valid = set(string.ascii_uppercase[:n_choices])
    for pattern in (_COT_ANSWER, _PAREN_LETTER):
        hits = [m.group(1).upper() for m in pattern.finditer(response)]
        hits = [h for h in hits if h in valid]
        if hits:
            return hits[-1]
    return None


def extract_choice_first_line(response: str) -> str:
    """The first line of a direct multiple-choice answer, punctuation and surrounding space removed,
    upper-cased ("(b)." -> "B"). Scored by exact match against the gold letter."""
    first = response.strip().split("\n", 1)[0]
    first = first.translate(str.maketrans("", "", string.punctuation)).strip()
    return first.upper()


# ------------------------------------------------------------------ OLMES answer extraction

_NUMBER = re.compile(r"[-+]?\d*\.\d+|\d+")
_GSM_IGNORE = (re.compile(r","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))


def gsm8k_last_number(response: str) -> str:
    """OLMES's GSM8K answer: the last number of the response once thousands commas are dropped (the
    whole response when it has none)."""
    text = re.sub(r"(\d),(\d)", r"\1\2", response)
    nums = _NUMBER.findall(text)
    return nums[-1] if nums else text


def _gsm_norm(s: str) -> str:
    s = str(s).strip()
    for pat in _GSM_IGNORE:
        s = pat.sub("", s)
    return s.strip().lower()


def gsm8k_olmes_match(response: str, gold: str) -> float:
    """1.0 when the last number equals the gold answer after OLMES's normalisation (",", "$", a "#### "
    prefix and a final "." removed, case ignored)."""
    return float(_gsm_norm(gsm8k_last_number(response)) == _gsm_norm(gold))


def extract_choice_olmes(response: str, format_regex: str, n_choices: int = 4) -> tuple[str, float]:
    """OLMES's multiple-choice answer extraction for the 0-shot CoT tasks: the last match of the task's
    answer-format regex (format correct: 1.0); else the last "(X)" (0.5); else the last stand-alone
    capital letter among the choices (0.0). Returns (letter or "", answer_format_correct)."""
    valid = string.ascii_uppercase[:n_choices]
    hits = re.findall(format_regex, response)
    if hits:
        return hits[-1].strip("()").upper(), 1.0
    paren = [h for h in re.findall(r"\(([A-Z])\)", response) if h in valid]
    if paren:
        return paren[-1], 0.5
    bare = [h for h in re.findall(r"\b([A-Z])\b", response) if h in valid]
    return (bare[-1] if bare else ""), 0.0


# OLMES's MMLU CoT fall-backs, tried in order, the first match of the first pattern that matches
# ("(?i)" makes the letter class case-blind too; the last one is the last stand-alone letter on the first
# line that has one).
_MMLU_COT_FALLBACKS = (r"(?i)therefore,?\s*the\s*answer\s*is:?\s*\(?([A-D])\b", r"(?i)answer\s*is:?\s*\(?([A-D])\b",
                       r"(?i)([A-D])\)?\s+is\s+correct", r"\(([A-D])\)", r".*\b([A-D])\b")


def extract_mmlu_cot_olmes(response: str) -> tuple[str, float]:
    """OLMES's answer extraction for ``mmlu:cot::summarize`` (the config sets no answer-format regex): the
    first fall-back pattern that matches gives the letter (upper-cased, parentheses removed) and
    answer_format_correct 0.0; when none matches the answer is "" and answer_format_correct stays 1.0
    (OLMES's own bookkeeping, kept as is)."""
    for pattern in _MMLU_COT_FALLBACKS:
        m = re.search(pattern, response)
        if m:
            return re.sub(r"[()]", "", m.group(1).upper()), 0.0
    return "", 1.0


def mc2_score(true_logprobs: Sequence[float], false_logprobs: Sequence[float]) -> float:
    """TruthfulQA MC2: the probability mass of the true answers, normalised over all answers (each answer's
    probability is exp of its summed log-likelihood)."""
    lps = np.asarray(list(true_logprobs) + list(false_logprobs), dtype=float)
    if lps.size == 0 or not len(true_logprobs):
        raise ValueError("mc2_score: needs at least one true answer")
    p = np.exp(lps - lps.max())
    return float(p[: len(true_logprobs)].sum() / p.sum())


# ------------------------------------------------------------------ DROP F1 (bag-of-words, number-aware)

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def _norm_token(tok: str) -> str:
    tok = tok.lower()
    if not _is_number(tok):
        tok = "".join(ch for ch in tok if ch not in _PUNCT)
    if _is_number(tok):
        tok = str(float(tok))
    return " ".join(_ARTICLES.sub(" ", tok).split())


def drop_normalize(answer: str) -> str:
    """One span normalised token by token (split on spaces and hyphens): lower case, punctuation and
    articles removed, numbers rewritten as floats; empty tokens dropped."""
    toks = [_norm_token(t) for t in re.split(r" |-", answer)]
    return " ".join(t for t in toks if t).strip()


def drop_bag(answer: str) -> frozenset[str]:
    return frozenset(drop_normalize(answer).split())


def _f1(pred: frozenset[str], gold: frozenset[str]) -> float:
    inter = len(pred & gold)
    if not pred and not gold:
        return 1.0
    if inter == 0:
        return 0.0
    p, r = inter / len(pred), inter / len(gold)
    nums_p = {t for t in pred if _is_number(t)}
    nums_g = {t for t in gold if _is_number(t)}
    if nums_g and not (nums_g & nums_p):  # a number in the gold must be matched
        return 0.0
    return 2 * p * r / (p + r)


def _align(pred_spans: list[frozenset[str]], gold_spans: list[frozenset[str]]) -> float:
    """Best one-to-one matching of predicted and gold spans (greedy over an exhaustive score table is
    optimal only for small sets; DROP answers have at most a handful of spans, so try all assignments)."""
    from itertools import permutations

    if not pred_spans or not gold_spans:
        return 0.0
    scores = [[_f1(p, g) for p in pred_spans] for g in gold_spans]
    small, large = (len(gold_spans), len(pred_spans))
    best = 0.0
    if small <= large:
        for perm in permutations(range(large), small):
            best = max(best, sum(scores[i][j] for i, j in enumerate(perm)))
    else:
        for perm in permutations(range(small), large):
            best = max(best, sum(scores[i][j] for j, i in enumerate(perm)))
    return best / max(len(pred_spans), len(gold_spans))


def drop_em_f1(prediction: str | list[str], gold: list[str]) -> tuple[float, float]:
    """Exact match (same set of normalised spans) and F1 (best span alignment, averaged over the larger
    side, rounded to 2 places) of one prediction against one gold answer (a list of spans)."""
    pred_spans = [prediction] if isinstance(prediction, str) else list(prediction)
    p_norm = [drop_normalize(s) for s in pred_spans]
    g_norm = [drop_normalize(s) for s in gold]
    em = float(set(p_norm) == set(g_norm) and len(p_norm) == len(g_norm))
    f1 = _align([frozenset(s.split()) for s in p_norm], [frozenset(s.split()) for s in g_norm])
    return em, round(f1, 2)


def drop_max_em_f1(prediction: str | list[str], golds: list[list[str]]) -> tuple[float, float]:
    """Max EM and max F1 over the gold answers of one question (answers with an empty first span skipped)."""
    scores = [drop_em_f1(prediction, g) for g in golds if g and g[0].strip()] or [(0.0, 0.0)]
    return max(s[0] for s in scores), max(s[1] for s in scores)


# ------------------------------------------------------------------ length-controlled win rate

def length_controlled_win_rate(prefs: Sequence[float], model_lens: Sequence[int], ref_lens: Sequence[int],
                               l2: float = 1e-3, steps: int = 500) -> tuple[float, float]:
    """Raw and length-controlled win rate (both in %) against a reference.

    ``prefs[i]`` is the judge's probability that the model's answer beats the reference on instruction i.
    A logistic model p_i = sigmoid(a + b * tanh(d_i)), d_i = (len_model - len_ref) / std(len diff), is fit
    to the soft preferences by Newton steps; the controlled rate is sigmoid(a)*100: the win rate the model
    would have if its answers were as long as the reference's. (AlpacaEval 2's own GLM also has a
    per-instruction difficulty term fitted across many models; with one model that term is not
    identifiable, so it is left out.)"""
    y = np.asarray(prefs, dtype=float)
    if y.size == 0:
        return float("nan"), float("nan")
    diff = np.asarray(model_lens, dtype=float) - np.asarray(ref_lens, dtype=float)
    sd = diff.std()
    x = np.tanh(diff / sd) if sd > 0 else np.zeros_like(diff)
    X = np.stack([np.ones_like(x), x], axis=1)
    w = np.zeros(2)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-X @ w))
        grad = X.T @ (p - y) / y.size + l2 * w
        hess = (X.T * (p * (1 - p))) @ X / y.size + l2 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return float(y.mean() * 100), float(100.0 / (1.0 + math.exp(-w[0])))
