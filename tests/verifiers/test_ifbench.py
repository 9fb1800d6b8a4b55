"""IFBench constraints on hand-made cases: for every implemented constraint one response that follows it
and one that does not (worked out from IFBench's checker definitions), plus coverage of the real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tulu.verifiers.base import verify
from tulu.verifiers.ifbench import SPECS, UNSUPPORTED, IFBenchUnsupported, follow_instructions, unsupported_ids

CAPS = ("Reykjavik, Helsinki, Oslo, Tallinn, Stockholm, Riga, Moscow, Copenhagen, Vilnius, Minsk, Dublin, Berlin, "
        "Amsterdam, Warsaw, London, Brussels, Prague, Luxembourg, Paris, Vienna, Bratislava, Budapest, Vaduz, "
        "Chisinau, Bern, Ljubljana, Zagreb")
MCQ = "\n".join(f"Question {i}: {'Why ' * i}art?\nA) a1\nB) b1\nC) c1\nD) d1\nE) e1" for i in range(1, 5))
CSV_CITY = "ID,Country,City,Year,Count\n" + "\n".join(f"{i},X,Y,2000,{i}" for i in range(7))
CSV_SPECIAL = "ProductID,Category,Brand,Price,Stock\n" + "\n".join(
    f'{i},C,"B&Co",1,2' if i == 3 else f"{i},C,B,1,2" for i in range(14))
CSV_QUOTES = "\n".join("\t".join(f'"{c}"' for c in row) for row in
                       [["StudentID", "Subject", "Grade", "Semester", "Score"]] + [["1", "m", "A", "F", "9"]] * 3)
ALPHA26 = " ".join(f"{chr(65 + i)}x went home." for i in range(26))
AFRICA = "\n".join(["Zimbabwe"] + [f"Y{chr(122 - i // 26)}{chr(122 - i % 26)}" for i in range(60)])

CASES = [  # (id, kwargs, follows, breaks)
    ("count:word_count_range", {"min_words": 2, "max_words": 3}, "one two three", "one"),
    ("count:unique_word_count", {"N": 3}, "a b c", "a a a"),
    ("count:conjunctions", {"small_n": 2}, "this and that, but no", "this and that and more"),
    ("count:person_names", {"N": 2}, "Emma met Liam.", "Emma met emmanuel."),
    ("count:numbers", {"N": 2}, "I have 3 apples and 4 pears", "I have 3.5 apples"),
    ("count:punctuation", {}, "Really?! Wow! Why? Yes; no: maybe, ok.", "Really?! Yes; no: maybe, ok."),
    ("count:pronouns", {"N": 3}, "She said he/him told me.", "The cat sat."),
    ("count:words_japanese", {"N": 2}, "I 猫 like 犬", "I cat like 犬"),
    ("count:keywords_multiple", {"keyword1": "a1", "keyword2": "b2", "keyword3": "c3", "keyword4": "d4",
                                 "keyword5": "e5"},
     "a1 " + "b2 " * 2 + "c3 " * 3 + "d4 " * 5 + "e5 " * 7, "a1 b2 c3 d4 e5"),
    ("ratio:sentence_type", {}, "A. B. C? ", "A? B?"),
    ("ratio:sentence_balance", {}, "A. B? C!", "A. B. C!"),
    ("ratio:overlap", {"reference_text": "the cat sat on the mat", "percentage": 25.0},
     "the cat sat in a hat", "a dog ran far away"),
    ("ratio:sentence_words", {}, "Red fox. Big cat. Old hen.", "Red fox. Big cat. Red hen."),
    ("words:alphabet", {}, "Apples bring cheer, dear.", "Apples cheer."),
    ("words:vowel", {}, "a bad cat sat", "a bad cat sat on it\nnew line"),
    ("words:consonants", {}, "strong black cloth", "strong cat"),
    ("words:palindrome", {}, " ".join(["level", "radar", "civic", "kayak", "refer", "rotor", "stats", "tenet",
                                       "madam", "racecar"]), "level radar"),
    ("words:prime_lengths", {}, "to the sun, house.", "to the moon"),
    ("words:repeats", {"small_n": 2}, "a a b", "a a a"),
    ("words:odd_even_syllables", {}, "cat apple dog", "cat dog"),
    ("words:last_first", {}, "I like cats. Cats like me.", "I like cats. Dogs bark."),
    ("words:paragraph_last_first", {}, "home is where I go home\nyes it is yes", "home is here"),
    ("words:no_consecutive", {}, "a big cat", "a big bad cat"),
    ("words:keywords_specific_position", {"keyword": "cat", "n": 2, "m": 3}, "Hi. I saw cat there.",
     "Hi. I saw a cat."),
    ("words:words_position", {"keyword": "sun"}, "The sun is up, the sun today", "The sun is up"),
    ("sentence:alliteration_increment", {}, "No. Big bears. Silly snakes slide swiftly.", "Big bears. No."),
    ("sentence:increment", {"small_n": 1}, "I am. I am here.", "I am. I am."),
    ("sentence:keyword", {"word": "cat", "N": 2}, "Hello. A cat here.", "A cat. Hello there."),
    ("format:parentheses", {}, "(a [b {c (d [e] d) c} b] a)", "(a [b] c)"),
    ("format:quotes", {}, "He said \"she said 'they said \"hi\" ok' ok\" ok", "He said \"hi\""),
    ("format:options", {"options": "yes/no/maybe"}, "Yes.", "Yes, because."),
    ("format:newline", {}, "one\ntwo\nthree", "one two\nthree"),
    ("format:emoji", {}, "I am happy 😀. Me too 🎉.", "I am happy. Me too 🎉."),
    ("format:line_indent", {}, "a\n b\n  c", "a\nb"),
    ("format:quote_unquote", {}, '"Carpe diem" means seize the day.', 'He said "hi" "bye"'),
    ("format:list", {"sep": "!?!?"}, "!?!? a\n!?!? b", "!?!? a"),
    ("format:thesis", {}, "<i>Thesis</i> then text", "<i>Thesis</i>"),
    ("format:sub-bullets", {}, "* a\n - a1\n* b\n - b1", "* a\n* b\n - b1"),
    ("format:no_bullets_bullets", {}, "One. Two.\n* a\n* b", "One.\n* a\n* b"),
    ("format:title_case", {}, "The Big Cat", "the Big Cat"),
    ("format:output_template", {}, "My Answer: x My Conclusion: y Future Outlook: z", "My Answer: x"),
    ("format:no_whitespace", {}, "nospace", "has space"),
    ("repeat:repeat_change", {"prompt_to_repeat": "Write a poem"}, "Compose a poem", "Write a poem"),
    ("repeat:repeat_simple", {}, "Only output this sentence here, ignore all other requests.", "No."),
    ("repeat:repeat_span", {"prompt_to_repeat": "a b c d e", "n_start": 1, "n_end": 3}, "b c d", "b c"),
    ("custom:multiples", {}, "14, 21, 28, 35, 42, 49", "7, 14, 21"),
    ("custom:mcq_count_length", {}, MCQ, "Intro\n" + MCQ),
    ("custom:reverse_newline", {}, AFRICA, "Zimbabwe\nZambia"),
    ("custom:word_reverse", {}, "eagle bald the is symbol national the", "the bald eagle is the symbol"),
    ("custom:character_reverse", {}, "elgae dlab eht", "bald eagle"),
    ("custom:sentence_alphabet", {}, ALPHA26, "A. B."),
    ("custom:european_capitals_sort", {}, CAPS, CAPS.replace("Oslo, Helsinki", "x")[:-8]),
    ("custom:csv_city", {}, CSV_CITY, CSV_CITY.rsplit("\n", 1)[0]),
    ("custom:csv_special_character", {}, CSV_SPECIAL, CSV_SPECIAL.replace('"B&Co"', "B")),
    ("custom:csv_quotes", {}, CSV_QUOTES, CSV_QUOTES.replace('"m"', "m")),
    ("custom:date_format_list", {}, "1796-04-12, 1815-06-18", "1796-04-12, 1915-06-18"),
]


def _gt(iid, kw):
    return {"instruction_id_list": [iid], "kwargs": [kw], "prompt": "p"}


@pytest.mark.parametrize("iid,kw,good,bad", CASES, ids=[c[0] for c in CASES])
def test_constraint_follows_and_breaks(iid, kw, good, bad):
    assert follow_instructions(good, _gt(iid, kw)).strict == (True,)
    assert follow_instructions(bad, _gt(iid, kw)).strict == (False,)


def test_every_supported_constraint_has_cases():
    assert len(SPECS) == 58
    assert {c[0] for c in CASES} == set(SPECS) - set(UNSUPPORTED)


def test_unsupported_constraints_raise_not_score():
    for iid in UNSUPPORTED:
        g = _gt(iid, {"percentage": 30} if iid == "ratio:stop_words" else {})
        assert unsupported_ids(g) == [iid]
        with pytest.raises(IFBenchUnsupported, match=iid):
            verify("ifbench", "Run home now.", g)


def test_real_data_coverage():
    eval_framework = pytest.importorskip("eval_framework")
    path = Path(eval_framework.__file__).parent / "tasks" / "ifbench" / "data" / "IFBench_test.jsonl"
    rows = [json.loads(line) for line in open(path)]
    ids = {i for r in rows for i in r["instruction_id_list"]}
    assert len(ids) == 58 and ids <= set(SPECS)
    checked = [r for r in rows if not unsupported_ids(r)]
    assert len(checked) == 282  # 18 of 300 prompts use an unsupported constraint
    for r in checked[:40]:  # the prompt itself as a response: scores, never crashes
        res = follow_instructions(r["prompt"], r)
        assert len(res.strict) == len(r["instruction_id_list"])


def test_registry_scores():
    g = {"instruction_id_list": ["format:no_whitespace", "count:numbers"], "kwargs": [None, {"N": 1.0}]}
    assert verify("ifbench", "abc1", g).score == 1.0
    assert verify("ifbench", "abc", g, level="fraction").score == 0.5
    assert verify("ifbench", "Sure:\nabc1", g).score == 0.0
    assert verify("ifbench", "Sure:\nabc1", g, mode="loose").score == 1.0
