"""IFEval checks on hand-made cases (each expected value is worked out from the IFEval definition)."""

from __future__ import annotations

import json
import random

import pytest

from tulu.verifiers import ifeval_instructions as I
from tulu.verifiers.base import verify
from tulu.verifiers.ifeval import (
    IFEvalGroundTruthError,
    aggregate,
    follow_instructions,
    loose_variants,
    parse_ground_truth,
)
from tulu.verifiers.punkt import count_sentences, sent_tokenize
from tulu.verifiers.treebank import word_tokenize


def gt(iid: str, **kw):
    return {"instruction_id_list": [iid], "kwargs": [kw], "prompt": "p"}


def strict(iid: str, response: str, **kw) -> bool:
    return follow_instructions(response, gt(iid, **kw)).strict[0]


def test_all_25_instructions_registered():
    assert len(I.SPECS) == 25
    assert "detectable_format:rephrase" not in I.SPECS


def test_sentences_punkt_abbreviations():
    assert sent_tokenize("Dr. Smith went home. He was tired.") == ["Dr. Smith went home.", "He was tired."]
    assert count_sentences("It costs $3.50 today. Really?! Yes.") == 3
    assert count_sentences("") == 0
    assert strict("length_constraints:number_sentences", "One. Two. Three.", num_sentences=3,
                  relation="at least")
    assert not strict("length_constraints:number_sentences", "One. Two. Three.", num_sentences=3,
                      relation="less than")


def test_word_tokenize_contractions_and_punctuation():
    assert word_tokenize("I CANNOT go, DON'T stop!") == ["I", "CAN", "NOT", "go", ",", "DO", "N'T", "stop", "!"]
    # DON'T -> DO + N'T: two capital words; "I" is one more.
    assert strict("change_case:capital_word_frequency", "I DON'T know", capital_frequency=3,
                  capital_relation="at least")


def test_keywords_and_frequency():
    assert strict("keywords:existence", "A Banana and an APPLE", keywords=["apple", "banana"])
    assert not strict("keywords:existence", "A banana", keywords=["apple", "banana"])
    assert strict("keywords:frequency", "cat cat dog", keyword="cat", frequency=2, relation="at least")
    assert not strict("keywords:frequency", "cat cat dog", keyword="cat", frequency=2, relation="less than")
    # Forbidden words match whole words only.
    assert strict("keywords:forbidden_words", "a category", forbidden_words=["cat"])
    assert not strict("keywords:forbidden_words", "a Cat!", forbidden_words=["cat"])
    # An invalid pattern is matched literally instead of crashing.
    assert strict("keywords:existence", "I like C++ a lot", keywords=["c++"])


def test_letter_frequency_counts_non_letters_as_given():
    assert strict("keywords:letter_frequency", "#a #b #c #d", letter="#", let_frequency=4, let_relation="at least")
    assert not strict("keywords:letter_frequency", "#a #b", letter="#", let_frequency=4, let_relation="at least")
    assert strict("keywords:letter_frequency", "Aaa", letter="A", let_frequency=3, let_relation="at least")


def test_paragraphs_and_first_word():
    ok = "First para.\n***\nSecond para."
    assert strict("length_constraints:number_paragraphs", ok, num_paragraphs=2)
    assert not strict("length_constraints:number_paragraphs", "A\n***\n***\nB", num_paragraphs=2)
    text = "Intro here.\n\n\"Summer, it was.\" More.\n\nEnd."
    assert strict("length_constraints:nth_paragraph_first_word", text, num_paragraphs=3, nth_paragraph=2,
                  first_word="summer")
    assert not strict("length_constraints:nth_paragraph_first_word", text, num_paragraphs=2,
                      nth_paragraph=2, first_word="summer")


def test_format_checks():
    assert strict("detectable_format:json_format", '```json\n{"a": 1}\n```')
    assert not strict("detectable_format:json_format", "{'a': 1}")
    assert not strict("detectable_format:json_format", "[" * 100000)  # too deep: not JSON, no crash
    assert strict("detectable_format:title", "<<My Title>>\nbody")
    assert not strict("detectable_format:title", "<<  >>\nbody")
    assert strict("detectable_format:number_bullet_lists", "* a\n- b\n**bold**", num_bullets=2)
    assert strict("detectable_format:number_highlighted_sections", "*one* and **two**", num_highlights=2)
    assert not strict("detectable_format:number_highlighted_sections", "** ** and *x*", num_highlights=2)
    assert strict("detectable_format:multiple_sections", "SECTION 1\na\nSECTION 2\nb", section_spliter="SECTION",
                  num_sections=2)
    assert strict("detectable_format:constrained_response", "  My answer is maybe. ")
    assert strict("combination:two_responses", "a\n******\nb")
    assert not strict("combination:two_responses", "a\n******\na")
    assert strict("detectable_content:number_placeholders", "[a] [b]", num_placeholders=2)
    assert strict("detectable_content:postscript", "Hi.\np. s. later", postscript_marker="P.S.")
    assert strict("startend:end_checker", '"Bye. Any other questions?"', end_phrase="Any other questions?")
    assert strict("startend:quotation", ' "quoted" ')
    assert not strict("punctuation:no_comma", "a, b")
    assert strict("combination:repeat_prompt", "  SAY HI then more", prompt_to_repeat="Say hi")


def test_case_and_language_are_deterministic():
    state = random.getstate()
    text = "the cat sleeps on the sofa while the rain falls softly outside the old house."
    results = {strict("change_case:english_lowercase", text) for _ in range(5)}
    assert results == {True}
    assert not strict("change_case:english_capital", text)
    assert strict("language:response_language", "Le chat dort sur le canapé pendant que la pluie tombe.",
                  language="fr")
    assert not strict("language:response_language", text, language="fr")
    # No letters at all: detection fails, which the reference counts as followed.
    assert strict("language:response_language", "12345 !!!", language="de")
    assert random.getstate() == state  # langdetect did not touch the global RNG


def test_empty_response_never_follows():
    res = follow_instructions("   ", gt("punctuation:no_comma"))
    assert res.strict == (False,) and res.loose == (False,)


def test_loose_variants_and_scores():
    assert len(loose_variants("a\nb\nc")) == 8
    g = {"instruction_id_list": ["startend:quotation", "punctuation:no_comma"], "kwargs": [{}, {}]}
    resp = 'Sure, here you go\n"A quoted answer"'
    res = follow_instructions(resp, g)
    assert res.strict == (False, False)  # the comma in the first line breaks no_comma too
    assert res.loose == (True, True)  # both follow once the first line is removed
    assert verify("ifeval", resp, g).score == 0.0
    assert verify("ifeval", resp, g, mode="loose").score == 1.0
    r = verify("ifeval_fraction", '"A quoted, answer"', g)
    assert r.score == 0.5 and "punctuation:no_comma" in r.reason
    assert verify("ifeval", '"A quoted, answer"', json.dumps(g), level="fraction").score == 0.5
    m = aggregate([res, follow_instructions('"x"', g)])
    assert m == {"prompt_level_strict_acc": 0.5, "inst_level_strict_acc": 0.5,
                 "prompt_level_loose_acc": 1.0, "inst_level_loose_acc": 1.0}


def test_ground_truth_errors_name_the_field():
    with pytest.raises(IFEvalGroundTruthError, match=r"kwargs\[0\].*num_words"):
        parse_ground_truth(gt("length_constraints:number_words", relation="at least"))
    with pytest.raises(IFEvalGroundTruthError, match=r"relation"):
        parse_ground_truth(gt("length_constraints:number_words", num_words=3, relation="exactly"))
    with pytest.raises(IFEvalGroundTruthError, match=r"instruction_id_list\[0\].*unknown"):
        parse_ground_truth(gt("nope:nothing"))
    with pytest.raises(IFEvalGroundTruthError, match="kwargs"):
        parse_ground_truth({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]})
    with pytest.raises(IFEvalGroundTruthError, match="JSON"):
        parse_ground_truth("{not json")
    # open-instruct's spelling and None-valued kwargs are accepted.
    ins = parse_ground_truth({"instruction_id": ["punctuation:no_comma"], "kwargs": [{"num_words": None}]})
    assert ins[0].id == "punctuation:no_comma"
    with pytest.raises(ValueError, match="mode"):
        verify("ifeval", "x", gt("punctuation:no_comma"), mode="lenient")
