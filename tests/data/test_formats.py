"""Readers, converters and validation: every bad file gives one line naming file:line and field."""

from __future__ import annotations

import json

import pytest

from tulu.data.formats import DataError, load_records, read_records, to_canonical, validate


def write_jsonl(tmp_path, rows, name="d.jsonl"):
    p = tmp_path / name
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return p


GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def one_line_error(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    "bad, field, words",
    [
        ('{"messages": [{"role": "user", "content": "hi"}, {"role": "assis', None, "invalid JSON"),
        ({"messages": [{"content": "hi"}, {"role": "assistant", "content": "x"}]}, "messages[0].role", "missing"),
        ({"messages": [{"role": "bot", "content": "hi"}]}, "messages[0].role", "unknown role 'bot'"),
        ({"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "x"}]},
         "messages[0].content", "empty content"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
                       {"role": "assistant", "content": "c"}]}, "messages[1].role", "does not alternate"),
        ({"messages": [{"role": "user", "content": "a"}]}, "messages", "must end with an assistant turn"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": 3}]},
         "messages[1].content", "expected a string"),
        ({"text": "hello"}, None, "unrecognised record shape"),
    ],
)
def test_bad_records_name_file_line_and_field(tmp_path, bad, field, words):
    path = write_jsonl(tmp_path, [GOOD, GOOD, bad])
    with pytest.raises(DataError) as exc:
        load_records(path)
    msg = one_line_error(exc)
    assert msg.startswith(f"{path}:3: "), msg
    if field:
        assert f": {field}: " in msg
    assert words in msg


def test_truncated_json_file_names_line(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps([GOOD, GOOD], indent=1)[:-20])
    with pytest.raises(DataError) as exc:
        load_records(p)
    assert one_line_error(exc).startswith(f"{p}:") and "invalid JSON" in str(exc.value)


def test_json_list_errors_point_at_record_start_line(tmp_path):
    p = tmp_path / "d.json"
    bad = {"messages": [{"role": "robot", "content": "x"}]}
    p.write_text(json.dumps([GOOD, bad], indent=2))
    with pytest.raises(DataError) as exc:
        load_records(p)
    line = int(str(exc.value).split(":")[1])
    assert p.read_text().splitlines()[line - 1].strip() == "{"
    assert "robot" in p.read_text().split("\n", line)[-1][:200]


def test_converters_alpaca_sharegpt_prompt_completion(tmp_path):
    rows = [
        {"instruction": "Add", "input": "2 and 3", "output": "5"},
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "yo"}]},
        {"prompt": "p", "completion": "c"},
        GOOD,
    ]
    recs = load_records(write_jsonl(tmp_path, rows))
    assert recs[0]["messages"] == [{"role": "user", "content": "Add\n\n2 and 3"}, {"role": "assistant", "content": "5"}]
    assert recs[1]["messages"][1] == {"role": "assistant", "content": "yo"}
    assert recs[2]["messages"] == [{"role": "user", "content": "p"}, {"role": "assistant", "content": "c"}]
    assert recs[3] == GOOD


def test_parquet_and_datasets_folder(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [GOOD, {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    assert load_records(tmp_path / "d.parquet") == rows
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    assert load_records(tmp_path / "ds") == rows
    bad = [GOOD, {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]}]
    pq.write_table(pa.Table.from_pylist(bad), tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"bad\.parquet\[#1\]: messages\[0\]\.content: empty content"):
        load_records(tmp_path / "bad.parquet")


def test_hh_strings_and_trl_pairs_become_prompt_plus_tails(tmp_path):
    hh = {"chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 4", "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 5"}
    trl = {"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
           "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]}
    recs = load_records(write_jsonl(tmp_path, [hh, trl]), "preference")
    assert recs[0] == {"messages": [{"role": "user", "content": "What is 2+2?"}],
                       "chosen": [{"role": "assistant", "content": "4"}],
                       "rejected": [{"role": "assistant", "content": "5"}]}
    assert recs[1]["messages"] == [{"role": "user", "content": "q"}]


def test_preference_pairs_identical_or_different_prompts_are_rejected(tmp_path):
    same = {"messages": [{"role": "user", "content": "q"}], "chosen": [{"role": "assistant", "content": "a"}],
            "rejected": [{"role": "assistant", "content": "a"}]}
    diff = {"chosen": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a"}],
            "rejected": [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "b"}]}
    with pytest.raises(DataError, match=r"d\.jsonl:1: rejected: identical to chosen"):
        load_records(write_jsonl(tmp_path, [same]), "preference")
    with pytest.raises(DataError, match=r"d\.jsonl:1: rejected: prompt differs"):
        load_records(write_jsonl(tmp_path, [diff]), "preference")


def test_rl_records_need_ground_truth_and_verifier(tmp_path):
    ok = {"messages": [{"role": "user", "content": "1+1?"}], "ground_truth": "2", "verifier": "gsm8k"}
    assert load_records(write_jsonl(tmp_path, [ok]), "rl")[0]["verifier"] == "gsm8k"
    with pytest.raises(DataError, match="ground_truth: missing"):
        validate({"messages": ok["messages"], "verifier": "gsm8k"}, "x:1", "rl")
    with pytest.raises(DataError, match="verifier: missing"):
        validate({"messages": ok["messages"], "ground_truth": "2"}, "x:1", "rl")


def test_skip_mode_collects_errors_and_keeps_good_records(tmp_path):
    path = write_jsonl(tmp_path, [GOOD, {"messages": []}, GOOD])
    errors: list[str] = []
    recs = load_records(path, on_error="skip", errors=errors)
    assert len(recs) == 2 and len(errors) == 1 and errors[0].startswith(f"{path}:2: messages:")


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unknown data format"):
        list(read_records(tmp_path / "d.csv"))
    with pytest.raises(DataError, match="no such file"):
        list(read_records(tmp_path / "nope.jsonl"))


def test_system_message_only_first():
    msgs = [{"role": "user", "content": "a"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "b"}]
    with pytest.raises(DataError, match=r"messages\[1\]\.role: a system message may only come first"):
        validate(to_canonical({"messages": msgs}, "f:1"), "f:1")
