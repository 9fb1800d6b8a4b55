"""`tulu data persona` (persona prompts), `tulu data ifpairs` (relaxed-constraint pairs), and
`tulu data validate` listing every bad record."""

from __future__ import annotations

import json
import random

import pytest

from tulu.cli import main
from tulu.curate import parse_model_spec
from tulu.data.formats import DataError, load_records
from tulu.data.if_pairs import relax
from tulu.data.personas import (
    IF_SEEDS,
    TEMPLATES,
    clean_prompt,
    generator_messages,
    load_personas,
    normalize,
)
from tulu.curate.persona import PersonaOptions, run_persona


def test_shipped_personas_and_persona_hub_files(tmp_path):
    shipped = load_personas()
    assert len(shipped) >= 40 and len(set(shipped)) == len(shipped)
    assert not any(p.startswith("#") for p in shipped)
    hub = tmp_path / "persona.jsonl"
    hub.write_text('{"persona": "A tide-pool biologist."}\n{"input persona": "A kite maker."}\n'
                   '{"persona": "A tide-pool biologist."}\n')
    assert load_personas(hub) == ["A tide-pool biologist.", "A kite maker."]
    hub.write_text('{"persona": "ok"}\n{"name": "x"}\n')
    with pytest.raises(DataError, match=r"persona.jsonl:2: persona: missing"):
        load_personas(hub)


def test_generator_messages_per_template():
    rng = random.Random(0)
    msgs, seeds = generator_messages("A beekeeper.", "if", rng)
    assert len(seeds) == 3 and all(s in IF_SEEDS for s in seeds)
    assert all(s in msgs[0]["content"] for s in seeds) and "A beekeeper." in msgs[0]["content"]
    for t in ("math", "code"):
        msgs, seeds = generator_messages("A beekeeper.", t, rng)
        assert seeds == [] and "A beekeeper." in msgs[0]["content"]
    with pytest.raises(ValueError):
        generator_messages("x", "poetry", rng)


def test_clean_prompt_and_normalize():
    assert clean_prompt("Request: How many hives do I need for 40 kg of honey?") == \
        "How many hives do I need for 40 kg of honey?"
    assert clean_prompt('Here is the problem: "A train leaves at 9 and travels 120 km at 80 km/h."') == \
        "A train leaves at 9 and travels 120 km at 80 km/h."
    assert clean_prompt("Sure! Here you go:\n**Problem 1:** A hive holds 9 frames; how many frames fill 7 hives?") == \
        "A hive holds 9 frames; how many frames fill 7 hives?"
    assert clean_prompt("ok") is None and clean_prompt("x" * 5000) is None
    assert normalize("How   many HIVES?") == normalize("how many hives")


def test_persona_run_provenance_dedup_and_counts(canned, tmp_path):
    personas = tmp_path / "p.txt"
    personas.write_text("# comment\nA twin parent.\nAnother twin parent.\nA silent monk.\nA beekeeper.\n"
                        "A chess coach.\nA nurse.\n")
    out = tmp_path / "persona.jsonl"
    gen = parse_model_spec(f"generator={canned.endpoint('writer')}")
    summary = run_persona(PersonaOptions(out=out, generator=gen, n=8, personas=str(personas), seed=3, max_draws=60,
                                         batch_size=8))
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(recs) == summary["written"] == 8
    keys = [normalize(r["messages"][0]["content"]) for r in recs]
    assert len(set(keys)) == len(keys)  # no duplicates kept
    c = summary["counts"]
    assert c["draws"] == c["kept"] + c["duplicate"] + c["unusable"] + c["failed"]
    assert c["duplicate"] > 0 and c["unusable"] > 0  # the two twins collide; the monk says "ok"
    for r in recs:
        prov = r["provenance"]
        assert set(prov) >= {"persona", "template", "generator", "seed"}
        assert prov["template"] in TEMPLATES and prov["generator"] == gen.label
        if "twin" not in prov["persona"]:  # the prompt was written from this persona and template
            assert r["messages"][0]["content"] == \
                f"As {prov['persona'].lower().rstrip('.')}, give me a {prov['template']} task about my day."
        assert r["source"] == f"persona:{prov['template']}" and r["id"].startswith("persona:")
        assert ("if_seeds" in prov) == (prov["template"] == "if")
    # rerun: every generator answer comes from OUT.cache.jsonl
    calls = canned.calls["writer"]
    run_persona(PersonaOptions(out=out, generator=gen, n=8, personas=str(personas), seed=3, max_draws=60,
                               batch_size=8))
    assert canned.calls["writer"] == calls
    assert [json.loads(x) for x in out.read_text().splitlines()] == recs


def test_persona_respond_writes_sft_records(canned, tmp_path):
    out = tmp_path / "sft.jsonl"
    run_persona(PersonaOptions(out=out, generator=parse_model_spec(f"g={canned.endpoint('writer')}"), n=4,
                               templates=["math"], responder=parse_model_spec(f"r={canned.endpoint('solver')}")))
    recs = load_records(out, "sft")
    assert len(recs) == 4 and all(r["messages"][-1]["role"] == "assistant" for r in recs)
    raw = [json.loads(x) for x in out.read_text().splitlines()]
    assert all(r["provenance"]["responder"].startswith("r (openai:solver@") for r in raw)


def test_relax_cuts_exactly_one_constraint():
    from tulu.data.rlvr_sources import constraint_prompts

    for rec in constraint_prompts(60, seed=5):
        gt = rec["ground_truth"]
        r = relax(gt, random.Random(0))
        assert r is not None and r.dropped in gt["instruction_id_list"]
        assert len(r.kept) == len(gt["instruction_id_list"]) - 1
        assert len(r.prompt) < len(gt["prompt"]) and r.prompt.split()[0] == gt["prompt"].split()[0]
    assert relax({"prompt": "Write a poem. Rhyme a lot.", "instruction_id_list": ["punctuation:no_comma"],
                  "kwargs": [{}]}, random.Random(0)) is None


def test_ifpairs_chosen_answers_original_rejected_answers_relaxed(canned, tmp_path):
    from tulu.curate.prefs import run_ifpairs

    s = run_ifpairs(tmp_path / "if", ["rlvr:constraints=12"], parse_model_spec(f"m={canned.endpoint('relaxer')}"))
    pairs = [json.loads(x) for x in (tmp_path / "if" / "pairs.jsonl").read_text().splitlines()]
    assert s["pairs"] == len(pairs) == 12
    for p in pairs:
        prov = p["provenance"]
        assert p["chosen"][0]["content"] == f"answer to: {p['messages'][0]['content']}"
        assert p["rejected"][0]["content"] == f"answer to: {prov['relaxed_prompt']}"
        assert prov["dropped"] not in prov["kept"] and prov["chosen_follows"] in (True, False)
    assert len(load_records(tmp_path / "if" / "pairs.jsonl", "preference")) == 12
    v = run_ifpairs(tmp_path / "if", ["rlvr:constraints=12"], parse_model_spec(f"m={canned.endpoint('relaxer')}"),
                    keep="verified")
    assert v["generations"]["cached"] == 24 and v["pairs"] + v["outcomes"].get("unverified", 0) == 12


def test_validate_lists_every_bad_record_with_file_and_line(tmp_path, capsys):
    p = tmp_path / "d.jsonl"
    good = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    bad_role = {"messages": [{"role": "user", "content": "q"}, {"role": "critic", "content": "a"}]}
    p.write_text(json.dumps(good) + "\n" + json.dumps(bad_role) + "\n" + '{"messages": [\n' + "[1, 2]\n"
                 + json.dumps({"messages": []}) + "\n" + json.dumps(good) + "\n")
    assert main(["data", "validate", str(p)]) == 1
    out = capsys.readouterr().out
    assert f"{p}:2: messages[1].role: unknown role 'critic'" in out
    assert f"{p}:3: invalid JSON" in out
    assert f"{p}:4: expected a JSON object per line, got list" in out
    assert f"{p}:5: messages: expected a non-empty list" in out
    assert "2 valid sft records, 4 rejected" in out
    assert main(["data", "validate", str(p), "--max-errors", "1"]) == 1
    out = capsys.readouterr().out
    assert "... and 3 more" in out and f"{p}:3:" not in out
