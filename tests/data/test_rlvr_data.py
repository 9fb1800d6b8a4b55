"""RLVR prompt data: record validation with file:line errors, generators, splits, the trainer's entry."""

from __future__ import annotations

import json
from collections import Counter
from fractions import Fraction

import pytest

from tulu.data.formats import DataError
from tulu.data.rlvr import (
    HELDOUT_SHARE,
    RLVRDataError,
    check_rlvr_file,
    load_rlvr_file,
    load_rlvr_prompts,
    prompt_split,
    resolve_verifier,
    validate_rlvr_record,
)
from tulu.data.rlvr_sources import (
    DENYLIST,
    MATH_TASKS,
    constraint_examples,
    constraint_prompts,
    math_prompts,
)
from tulu.verifiers.base import verify
from tulu.verifiers.ifeval_instructions import SPECS

USER = [{"role": "user", "content": "What is 9 + 9?"}]
IFEVAL_GT = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}


def _write_lines(path, lines):
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------ validation
def test_tulu3_records_and_names_are_accepted(tmp_path):
    p = _write_lines(tmp_path / "ok.jsonl", [
        {"messages": USER, "ground_truth": "18", "dataset": "gsm8k"},
        {"messages": USER, "ground_truth": "\\frac{1}{2}", "dataset": "MATH"},
        {"messages": USER, "ground_truth": json.dumps(IFEVAL_GT), "dataset": "ifeval",
         "constraint_type": "No Commas"},  # extra Tulu 3 columns are ignored
        {"messages": USER, "ground_truth": ["18"], "dataset": ["gsm8k"]},  # newer open-instruct lists
        {"prompt": "What is 9 + 9?", "ground_truth": "18", "verifier": "gsm8k"},  # prompt-only shape
    ])
    recs = load_rlvr_file(p)
    assert [r["verifier"] for r in recs] == ["gsm8k", "math", "ifeval", "gsm8k", "gsm8k"]
    assert [r["dataset"] for r in recs] == ["gsm8k", "MATH", "ifeval", "gsm8k", "gsm8k"]
    assert recs[3]["ground_truth"] == "18"
    assert recs[4]["messages"] == [{"role": "user", "content": "What is 9 + 9?"}]
    assert resolve_verifier("Math") == "math" and resolve_verifier("nope") is None


def test_every_bad_record_is_reported_with_file_line_and_field(tmp_path):
    p = tmp_path / "bad.jsonl"
    _write_lines(p, [
        {"messages": USER, "ground_truth": "18", "dataset": "gsm8k"},  # 1 ok
        {"messages": USER, "ground_truth": "18", "dataset": "nonsense"},  # 2
        {"messages": USER, "ground_truth": "eighteen", "dataset": "gsm8k"},  # 3
        {"messages": USER, "ground_truth": {"instruction_id_list": ["foo:bar"]}, "dataset": "ifeval"},  # 4
        '{"messages": [',  # 5
        {"messages": USER + [{"role": "assistant", "content": "18"}], "ground_truth": "18",
         "dataset": "gsm8k"},  # 6
        {"messages": USER, "ground_truth": "18"},  # 7
        "",  # 8: blank lines are skipped but counted
        {"messages": USER, "dataset": "math"},  # 9
        {"messages": USER, "dataset": "ifeval",
         "ground_truth": {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]}},  # 10
        {"messages": USER, "ground_truth": "not json {", "dataset": "code"},  # 11
    ])
    good, errors, total = check_rlvr_file(p)
    assert len(good) == 1 and total == 10
    assert errors == [
        f"{p}:2: dataset: 'nonsense' names no verifier (known: " + errors[0].split("(known: ")[1],
        f"{p}:3: ground_truth: the gsm8k verifier cannot parse it: "
        + "gsm8k ground_truth 'eighteen': no single number after '####'",
        f"{p}:4: ground_truth: the ifeval verifier cannot parse it: "
        + "instruction_id_list[0]: unknown instruction 'foo:bar'",
        f"{p}:5: invalid JSON (Expecting value at column 15)",
        f"{p}:6: messages: must end with a user turn",
        f"{p}:7: dataset: missing (the name of the verifier, e.g. gsm8k, math, ifeval)",
        f"{p}:9: ground_truth: missing (an RLVR prompt needs a ground truth for its verifier)",
        f"{p}:10: ground_truth: the ifeval verifier cannot parse it: "
        + "kwargs: expected a list with one dict per instruction (1), got [{}, {}]",
        errors[8],
    ]
    assert errors[8].startswith(f"{p}:11: ground_truth: the code verifier cannot parse it: ")
    with pytest.raises(RLVRDataError) as exc:
        load_rlvr_file(p, max_errors=3)
    assert exc.value.errors == errors
    msg = str(exc.value)
    assert msg.startswith(f"{p}: 9 of 10 RLVR records are invalid:\n  {p}:2: dataset:")
    assert f"{p}:4:" in msg and f"{p}:5:" not in msg and "... and 6 more" in msg


def test_record_validation_names_the_field():
    with pytest.raises(DataError, match=r"^x:7: dataset: 2 verifiers for one record are not supported$"):
        validate_rlvr_record({"messages": USER, "ground_truth": "1", "dataset": ["gsm8k", "math"]}, "x:7")
    with pytest.raises(DataError, match=r"^x:1: messages\[0\]\.content: empty content$"):
        validate_rlvr_record({"messages": [{"role": "user", "content": " "}], "ground_truth": "1",
                              "dataset": "gsm8k"}, "x:1")


def test_open_instruct_func_name_ground_truth_is_named_as_such():
    gt = json.dumps({"func_name": "validate_lowercase", "N": None, "quantifier": None})
    with pytest.raises(DataError, match=r"^f:3: ground_truth: the ifeval verifier cannot parse it: "
                                        r"instruction_id_list: .*'func_name' form"):
        validate_rlvr_record({"messages": USER, "ground_truth": gt, "dataset": "ifeval"}, "f:3")


def test_datasets_folder_in_rlvr_format_loads_and_reports_by_index(tmp_path):
    import datasets

    rows = [{"messages": USER, "ground_truth": "18", "dataset": "gsm8k"},
            {"messages": USER, "ground_truth": "x", "dataset": "gsm8k"}]
    datasets.Dataset.from_list(rows[:1]).save_to_disk(str(tmp_path / "ok"))
    assert load_rlvr_file(tmp_path / "ok")[0]["ground_truth"] == "18"
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "bad"))
    _, errors, _ = check_rlvr_file(tmp_path / "bad")
    assert len(errors) == 1 and errors[0].startswith(f"{tmp_path / 'bad'}[#1]: ground_truth: ")


def test_hub_source_offline_is_a_clear_error():
    with pytest.raises(DataError, match=r"^hf:allenai/no-such-rlvr-set: cannot load from the hub"):
        load_rlvr_prompts({"hf:allenai/no-such-rlvr-set": 1.0})


# ------------------------------------------------------------------------------------------ entry point
def test_mixture_validates_every_file_before_returning(tmp_path):
    a = _write_lines(tmp_path / "a.jsonl", [{"messages": USER, "ground_truth": "x", "dataset": "gsm8k"}])
    b = _write_lines(tmp_path / "b.jsonl", [{"messages": USER, "ground_truth": "1", "dataset": "gsm9k"}])
    with pytest.raises(RLVRDataError) as exc:
        load_rlvr_prompts({str(a): 1.0, "rlvr:arith": 4, str(b): 1.0})
    assert [e.split(": ")[0] for e in exc.value.errors] == [f"{a}:1", f"{b}:1"]


def test_mixture_counts_fractions_sources_and_determinism(tmp_path):
    f = _write_lines(tmp_path / "f.jsonl", [{"messages": [{"role": "user", "content": f"q{i}"}],
                                            "ground_truth": str(i), "dataset": "gsm8k"} for i in range(10)])
    mix = {str(f): 0.5, "rlvr:constraints": 6, "rlvr:math": 0.008}  # 0.008 of 1000 generated prompts = 8
    recs = load_rlvr_prompts(mix, seed=3)
    assert Counter(r["source"] for r in recs) == {str(f): 5, "rlvr:constraints": 6, "rlvr:math": 8}
    assert recs == load_rlvr_prompts(mix, seed=3)
    assert recs != load_rlvr_prompts(mix, seed=4)
    for r in recs:  # what the trainer needs on every record
        assert r["messages"][-1]["role"] == "user" and r["verifier"] in ("gsm8k", "math", "ifeval")
    with pytest.raises(DataError, match="count above 1 must be a whole number"):
        load_rlvr_prompts({"rlvr:math": 2.5})
    with pytest.raises(DataError, match="weight must be > 0"):
        load_rlvr_prompts({"rlvr:math": 0})
    with pytest.raises(DataError, match="no such file"):
        load_rlvr_prompts({str(tmp_path / "missing.jsonl"): 1.0})
    with pytest.raises(ValueError, match="split"):
        load_rlvr_prompts({"rlvr:math": 2}, split="test")


def test_generated_records_pass_validation_and_round_trip(tmp_path):
    recs = load_rlvr_prompts({"rlvr:constraints": 30, "rlvr:math": 30}, seed=0)
    p = tmp_path / "gen.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert load_rlvr_file(p) == recs


# ------------------------------------------------------------------------------------------ math
def test_gsm_symbolic_and_other_test_set_tasks_are_refused(monkeypatch):
    import reasoning_gym as rg

    assert "gsm_symbolic" in DENYLIST and not set(DENYLIST) & set(MATH_TASKS)
    created = []
    real = rg.create_dataset
    monkeypatch.setattr(rg, "create_dataset", lambda name, **kw: created.append(name) or real(name, **kw))
    with pytest.raises(DataError, match=r"^rlvr:gsm_symbolic: refused: .*GSM8K \*test\*"):
        load_rlvr_prompts({"rlvr:gsm_symbolic": 5})
    with pytest.raises(DataError, match="refused"):
        math_prompts(4, tasks=["basic_arithmetic", "gsm_symbolic"])  # refused before anything is generated
    with pytest.raises(DataError, match="refused"):
        math_prompts(4, tasks=["arc_agi"])
    with pytest.raises(DataError, match="not a known RLVR math task"):
        math_prompts(4, tasks=["sudoku"])
    assert created == []


def _wrong_answer(gt: str) -> str:
    value = Fraction(gt)
    return str(value + 1) if value.denominator == 1 else f"{value.numerator + 1}/{value.denominator}"


@pytest.mark.parametrize("split", ["train", "heldout"])
def test_every_math_prompt_passes_its_verifier_when_right_and_fails_when_wrong(split):
    recs = math_prompts(16 * len(MATH_TASKS), seed=0, split=split)
    assert Counter(r["provenance"]["task"] for r in recs) == dict.fromkeys(MATH_TASKS, 16)
    for r in recs:
        gt = r["ground_truth"]
        prov = r["provenance"]
        assert prov["generator"] == "reasoning_gym" and isinstance(prov["seed"], int) and prov["index"] >= 0
        if r["verifier"] == "math":
            right, wrong = f"So the answer is $\\boxed{{{gt}}}$.", f"$\\boxed{{{_wrong_answer(gt)}}}$"
        else:
            right, wrong = f"The answer is {gt}.", f"The answer is {_wrong_answer(gt)}."
        assert verify(r["verifier"], right, gt).score == 1.0, (r, right)
        assert verify(r["verifier"], wrong, gt).score == 0.0, (r, wrong)


def test_math_provenance_regenerates_the_item():
    import reasoning_gym as rg

    for r in math_prompts(8, seed=5, tasks=["leg_counting", "gcd"]):
        prov = r["provenance"]
        item = rg.create_dataset(prov["task"], size=10**9, seed=prov["seed"],
                                 **MATH_TASKS[prov["task"]].config)[prov["index"]]
        assert item["question"].strip() in r["messages"][0]["content"] and item["answer"] == r["ground_truth"]


# ------------------------------------------------------------------------------------------ constraints
def test_constraint_prompts_cover_the_taxonomy_and_check_out_with_the_verifier():
    pairs = constraint_examples(400, seed=0)
    seen = Counter(i for _, ex in pairs for i in ex.instruction_ids)
    assert set(seen) == set(SPECS)  # all 25 IFEval instruction types
    assert {len(ex.instruction_ids) for _, ex in pairs} == {1, 2, 3}
    for _, ex in pairs:
        gt = ex.ground_truth
        assert gt["prompt"] == ex.prompt and ex.prompt.startswith(ex.base)
        assert verify("ifeval", ex.good, gt).score == 1.0, (ex.prompt, ex.good)
        assert verify("ifeval", ex.bad, gt).score == 0.0, (ex.prompt, ex.bad)


def test_constraint_records_are_the_examples_and_deterministic():
    recs = constraint_prompts(20, seed=7)
    pairs = constraint_examples(20, seed=7)
    assert [r["ground_truth"] for r in recs] == [ex.ground_truth for _, ex in pairs]
    assert recs == constraint_prompts(20, seed=7) and recs != constraint_prompts(20, seed=8)
    assert all(r["dataset"] == "ifeval" and r["provenance"]["instruction_ids"] for r in recs)


def test_no_conflicting_pairs_are_drawn():
    from tulu.data.ifeval_prompts import conflicts

    for _, ex in constraint_examples(300, seed=1):
        ids = ex.instruction_ids
        assert not any(conflicts(a, b) for a in ids for b in ids if a != b), ids


def test_base_instructions_are_not_ifeval_test_prompts():
    from tulu.data.ifeval_vocab import BASES, YES_NO_BASES

    # IFEval's prompts are specific requests ("Write a 300+ word summary of the wikipedia page ..."); ours
    # are topic templates. Spot-check that none of our bases opens like a known IFEval test prompt.
    ifeval_openings = ["Write a 300+ word summary", "I am planning a trip to Japan",
                       "Write a resume for a fresher", "Write an essay about how aluminium cans are used"]
    for base in BASES + YES_NO_BASES:
        assert not any(base.startswith(o) for o in ifeval_openings)
        assert "," not in base  # repeat_prompt + no_comma stays satisfiable


# ------------------------------------------------------------------------------------------ splits
def test_train_and_heldout_never_share_a_prompt():
    mix = {"rlvr:math": 400, "rlvr:constraints": 120}
    train = load_rlvr_prompts(mix, seed=0, split="train")
    held = load_rlvr_prompts({"rlvr:math": 160, "rlvr:constraints": 40}, seed=0, split="heldout")
    other_seed = load_rlvr_prompts({"rlvr:math": 160}, seed=1, split="heldout")
    t = {r["messages"][0]["content"] for r in train}
    h = {r["messages"][0]["content"] for r in held} | {r["messages"][0]["content"] for r in other_seed}
    assert len(t) == len(train) and len({r["messages"][0]["content"] for r in held}) == len(held)  # distinct
    assert not t & h
    assert all(prompt_split(x) == "train" for x in t) and all(prompt_split(x) == "heldout" for x in h)
    assert {r["id"].split(":")[3] for r in train}.isdisjoint({r["id"].split(":")[3] for r in held})  # seeds


def test_prompt_split_is_a_stable_hash_bucket():
    texts = [f"Calculate {a} + {b}." for a in range(40) for b in range(40)]
    share = sum(prompt_split(x) == "heldout" for x in texts) / len(texts)
    assert abs(share - HELDOUT_SHARE) < 0.03
    assert prompt_split("Calculate 2 + 3.") == prompt_split("Calculate 2 + 3.")


# ------------------------------------------------------------------------------------------ CLI
def test_cli_validate_rlvr_and_prompts(tmp_path, capsys):
    from tulu.cli import main

    out = tmp_path / "p.jsonl"
    assert main(["data", "prompts", str(out), "rlvr:arith=5", "rlvr:constraints=4", "--seed", "2"]) == 0
    assert main(["data", "validate", "--kind", "rlvr", str(out)]) == 0
    assert f"{out}: 9 valid rlvr records, 0 rejected" in capsys.readouterr().out
    bad = _write_lines(tmp_path / "bad.jsonl", [{"messages": USER, "ground_truth": "1", "dataset": "x"},
                                                {"messages": USER, "ground_truth": "?", "dataset": "gsm8k"},
                                                {"messages": USER, "ground_truth": "1", "dataset": "gsm8k"}])
    assert main(["data", "validate", "--kind", "rlvr", "--max-errors", "1", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{bad}:1: dataset: 'x' names no verifier")
    assert lines[1:] == ["... and 1 more", f"{bad}: 1 valid rlvr records, 2 rejected"]
    assert main(["data", "prompts", str(out), "rlvr:math"]) != 0
    assert "rlvr:math: expected SOURCE=N" in capsys.readouterr().err


def test_synthetic_ifeval_family_reuses_the_checked_responses():
    from tulu.data.synthetic import records

    sft = records("ifeval", 5, kind="sft", seed=2)
    pref = records("ifeval", 5, kind="preference", seed=2)
    rl = records("ifeval", 5, kind="rl", seed=2)
    for s, p, r in zip(sft, pref, rl, strict=True):
        assert s["messages"][0] == p["messages"][0] == r["messages"][0]
        assert verify("ifeval", s["messages"][1]["content"], r["ground_truth"]).score == 1.0
        assert verify("ifeval", p["rejected"][0]["content"], r["ground_truth"]).score == 0.0
