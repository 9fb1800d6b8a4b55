"""Every offline task on real items: prompt format (few-shot turns from lm-eval's folders), and scoring of a
gold-style response (1) against a wrong one (0) through the verifiers."""

from __future__ import annotations

import pytest

from tulu.data.benchmarks import BenchmarkUnavailable, load_benchmark
from tulu.eval import fewshot
from tulu.eval.tasks import TASKS, get_task
from tulu.verifiers.base import available


def _need_verifier(name):
    if name not in available():
        pytest.skip(f"verifier {name!r} not registered yet")


def test_fewshot_exemplars_come_from_installed_packages():
    g = fewshot.gsm8k_cot()
    assert len(g) == 8 and all(a.rstrip().split()[-1].rstrip(".").isdigit() for _, a in g)
    m = fewshot.minerva_math_olmes()
    assert len(m) == 4 and all("Final Answer: The final answer is" in s for _, s in m)
    desc, shots = fewshot.bbh_cot("boolean_expressions")
    assert desc and len(shots) == 3


def test_gsm8k_prompt_and_score():
    _need_verifier("gsm8k")
    t = get_task("gsm8k")
    it = t.load()[0]
    msgs = t.messages(it)
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 8 + ["user"]
    assert msgs[-1]["content"] == f"Question: {it.prompt.strip()}\nAnswer:"
    both = {"exact_match": 1.0, "exact_match_ours": 1.0, "exact_match_ref": 1.0}
    assert t.score(it, [f"blah. So the answer is {it.answer}."]) == both
    assert t.score(it, ["The answer is 123456."]) == {k: 0.0 for k in both}
    # ours reads "The answer is 18" before a check; the last-number rules take the check's number
    check = f"The answer is {it.answer}. Check: {it.answer} / 2 = 9."
    assert t.score(it, [check]) == {"exact_match": 0.0, "exact_match_ours": 1.0, "exact_match_ref": 0.0}


def test_math_macro_over_subjects():
    _need_verifier("math")
    t = get_task("math")
    items = [i for i in t.load() if i.meta["subject"] in ("Algebra", "Geometry")]
    items = [i for i in items if i.meta["subject"] == "Algebra"][:3] + [i for i in items if i.meta["subject"] == "Geometry"][:1]
    assert len(t.messages(items[0])) == 9
    scores = [t.score(i, [f"Final Answer: The final answer is ${i.answer}$. I hope it is correct."]) for i in items[:3]]
    scores.append(t.score(items[3], ["I do not know."]))
    assert [s["exact_match"] for s in scores] == [1.0, 1.0, 1.0, 0.0]
    agg = t.aggregate(items, scores)
    assert agg["exact_match"].value == pytest.approx(50.0)  # macro: (100 + 0) / 2 subjects
    assert agg["exact_match_micro"].value == pytest.approx(75.0)
    assert agg["exact_match_ref"].value == pytest.approx(50.0)  # math-verify agrees on these four


def test_mmlu_cot_and_mc():
    cot, mc = get_task("mmlu"), get_task("mmlu_mc")
    it = cot.load()[0]
    assert "'Therefore, the answer is: X'" in cot.messages(it)[0]["content"]
    assert cot.score(it, [f"... Therefore, the answer is ({it.answer})."])["accuracy"] == 1.0
    wrong = next(x for x in "ABCD" if x != it.answer)
    assert cot.score(it, [f"Therefore, the answer is ({wrong})."])["accuracy"] == 0.0
    msgs = mc.messages(it)
    assert [m["role"] for m in msgs] == ["user", "assistant"] * 5 + ["user"]
    assert msgs[0]["content"].startswith("The following are multiple choice questions (with answers) about abstract algebra.")
    gold = "ABCD".index(it.answer)
    assert mc.score(it, [-1.0 if i == gold else -2.0 for i in range(4)])["accuracy"] == 1.0
    assert mc.score(it, [-2.0 if i == gold else -1.0 + 0.1 * i for i in range(4)])["accuracy"] == 0.0


def test_ifeval_four_metrics():
    _need_verifier("ifeval")
    t = get_task("ifeval")
    items = t.load()
    it = next(i for i in items if i.answer["instruction_id_list"] == ["change_case:english_lowercase"])
    good = t.score(it, ["all lower case here."])
    bad = t.score(it, ["Not Lower Case."])
    assert good["prompt_loose"] == 1.0 and bad["prompt_loose"] == 0.0
    agg = t.aggregate([it, it], [good, bad])
    assert agg["prompt_loose"].value == 50.0 and agg["inst_strict"].value == 50.0
    assert set(agg) == {"prompt_strict", "prompt_loose", "inst_strict", "inst_loose"}


def test_ifbench_uses_its_own_verifier_and_leaves_out_what_cannot_be_checked():
    """The 18 prompts whose constraints need NLTK data (not offline) are left out and named; every other
    prompt scores (a full `tulu eval --tasks ifbench` once stopped at scoring on the first of them)."""
    t = get_task("ifbench")
    items = t.load()
    assert t.verifier == "ifbench" and t.suite == "unseen" and len(items) == 282
    assert dict(t.left_out) == {"ratio:stop_words": 12, "words:start_verb": 6}
    assert "ratio:stop_words: 12 prompts" in t.not_comparable()
    scores = t.score_batch(items, [["A short answer."]] * len(items))
    assert len(scores) == 282 and all(s["prompt_loose"] in (0.0, 1.0) for s in scores)


def test_drop_and_gpqa():
    d = get_task("drop")
    it = d.load()[0]
    text = d.messages(it)
    assert isinstance(text, str) and text.count("\nAnswer:") == 4 and text.startswith("Passage:")
    assert d.score(it, ["Answer: swedish"])["f1"] == 1.0
    g = get_task("gpqa")
    gi = g.load()[0]
    assert g.score(gi, [f"Therefore, the answer is ({gi.answer})"])["accuracy"] == 1.0


def test_code_tasks_canonical_solutions_pass():
    _need_verifier("code")
    he = get_task("humaneval")
    items = he.load()[:2]
    for it in items:
        sol = it.prompt + it.meta["canonical_solution"]
        assert he.score(it, [f"```python\n{sol}\n```"] * 10 + ["```python\nbroken(\n```"] * 10)["pass@1"] == pytest.approx(0.5)
    mb = get_task("mbpp")
    it = mb.load()[0]
    assert mb.score(it, [f"```python\n{it.meta['code']}\n```"])["pass@1"] == 1.0
    assert mb.score(it, ["```python\ndef remove_Occ(s, ch):\n    return s\n```"])["pass@1"] == 0.0


def test_humaneval_program_assembly():
    from tulu.eval.tasks.code import extract_code, humaneval_program

    it = load_benchmark("humaneval")[0]
    body = "    return False\n"
    assert humaneval_program(it, body).startswith(it.prompt)
    full = f"```python\ndef {it.answer['entry_point']}(numbers, threshold):\n    return False\n```"
    prog = humaneval_program(it, full)
    assert prog.startswith("from typing import List") and "def has_close_elements(numbers, threshold)" in prog
    assert extract_code("text\n```py\nx = 1\n") == "x = 1"


def test_alpaca_eval_needs_a_judge_and_parses_verdicts():
    from tulu.eval.tasks.alpaca_eval import _combine, parse_verdict

    t = get_task("alpaca_eval")
    assert "judge" in t.unavailable()
    assert parse_verdict("a") == 1.0 and parse_verdict("(b)") == 0.0 and parse_verdict("Answer (b) is better") == 0.0
    assert parse_verdict("both") is None
    assert _combine([1.0, None], [0.0, 1.0]) == [1.0, 0.25]


@pytest.mark.parametrize("name", ["bbh", "popqa", "mmlu_pro", "agieval", "deepmind_math", "truthfulqa"])
def test_hub_only_tasks_skip_offline(name):
    t = get_task(name)
    if t.unavailable():
        assert "log-likelihood" in t.unavailable()
        return
    with pytest.raises(BenchmarkUnavailable, match="hub"):
        t.load()


def test_hub_only_scoring_on_handwritten_items():
    from tulu.data.benchmarks import BenchmarkItem
    from tulu.eval.tasks.hub_only import bbh_answer

    assert bbh_answer("Step 1... So the answer is False.") == "False"
    t = get_task("mmlu_pro")
    it = BenchmarkItem("1", "Q?\nA. x\nB. y", "B", {"choices": ["x", "y"], "subject": "math"})
    assert t.score(it, ["Therefore, the answer is (B)."])["accuracy"] == 1.0


def test_every_task_declares_suite_and_headline():
    for name, cls in TASKS.items():
        assert cls.suite in ("dev", "unseen", "extra") and cls.headline, name
