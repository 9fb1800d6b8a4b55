"""The hard answer classes of GSM8K (issue 16), on real GSM8K test problems from the offline data.

Each case is (problem id, response, expected score) with the reason in a comment. The question is passed as
``prompt=`` as the eval task and RLVR do; the cases that do not need it are also run without it.
"""

from __future__ import annotations

from functools import lru_cache

import pytest

from tulu.data.benchmarks import BenchmarkItem, load_benchmark
from tulu.verifiers.base import verify
from tulu.verifiers.gsm8k import extract_answer, word_number


@lru_cache(maxsize=1)
def _items() -> dict[str, BenchmarkItem]:
    return {it.id: it for it in load_benchmark("gsm8k")}


def _score(pid: str, resp: str, with_prompt: bool = True) -> float:
    item = _items()[pid]
    res = verify("gsm8k", resp, item.answer, prompt=item.prompt if with_prompt else None, timeout_s=1)
    assert not res.reason.startswith("timeout"), (pid, resp)  # a 0 must be a verdict, not a time-out
    return res.score


def _check(cases: list[tuple[str, str, int]], with_prompt: bool = True) -> None:
    for pid, resp, want in cases:
        got = _score(pid, resp, with_prompt)
        assert got == want, (pid, _items()[pid].answer, resp, got, extract_answer(resp))


# --------------------------------------------------------------------------------------- reward hacks

CANDIDATE_LISTS = [
    # problem 0 (Janet's ducks), gold 18
    ("0", "Janet makes 16, 17 or 18 dollars a day.", 0),  # a list of guesses that ends with the gold
    ("0", "It could be 17 or 18.", 0),
    ("0", "She makes either $17 or $18.", 0),
    ("0", "The money is 16, 17, or 18 dollars", 0),
    ("0", "She sells 16 - 3 - 4 = 9 eggs, so she makes 9 * 2 = 18 dollars.", 1),  # one answer: fine
    # problem 3 (sprints), gold 540
    ("3", "He runs 500, 520 or 540 meters.", 0),
    ("3", "3 * 3 = 9 sprints, 9 * 60 = 540 meters.", 1),
]

RESTATEMENTS = [
    # problem 4, gold 20: the question's last number is 20 (the size of the flock)
    ("4", ("Wendi feeds each chicken three cups of feed in three meals. She gave 15 cups in the morning and "
           "25 cups in the afternoon. We need the cups for the final meal if the size of Wendi's flock is "
           "20 chickens."), 0),  # a restatement: no answer is given
    ("4", ("How many cups of feed does she need to give her chickens in the final meal of the day if the "
           "size of Wendi's flock is 20 chickens?"), 0),  # the question itself
    ("4", "20 chickens * 3 cups = 60 cups. 60 - 15 - 25 = 20 cups in the final meal.", 1),
    # problem 221, gold 90: "Celine used 90 liters"
    ("221", ("A water tank is filled with 120 liters of water, and Celine used 90 liters of water from "
             "the tank."), 0),
    ("221", "120 - 90 = 30 liters were left, she collected 2 * 30 = 60, so 30 + 60 = 90 liters.", 1),
    # problem 44, gold 20: "... if he makes and sells 20 candles?"
    ("44", "Charlie wants to know his net profit if he makes and sells 20 candles.", 0),
    ("44", ("20 candles sell for 20 * 2 = $40; he needs 2 pounds of beeswax, 2 * 10 = $20, so "
            "40 - 20 = $20."), 1),
]

# ------------------------------------------------------------------------------ rejected although right

AFTER_THE_ANSWER = [
    # the answer first, then an explanation with other numbers (problem 0, gold 18)
    ("0", "18\n\nExplanation: 16 - 3 - 4 = 9 eggs are sold at $2 each.", 1),
    ("0", "**$18**\n\nShe has 9 eggs left over and sells each for $2.", 1),
    ("0", "Janet makes $18 every day. Explanation: she sells 16 - 3 - 4 = 9 eggs for $2 each.", 1),
    ("0", "Answer: Janet makes $18 per day. She keeps 3 + 4 = 7 of the 16 eggs.", 1),
    ("0", "17\n\nExplanation: 16 - 3 - 4 = 9 eggs are sold at $2 each, 18 dollars.", 0),  # first answer wrong
    # a year in parentheses (problem 3, gold 540)
    ("3", "He runs 3 * 3 * 60 = 540 meters a week (as of 2023).", 1),
    ("3", "James runs 540 meters per week (his plan for 2024).", 1),
    ("3", "James runs 450 meters per week (his plan for 2024).", 0),
    # a quantity restated from the question (problem 2, gold 70000; problem 3, gold 540)
    ("2", ("The house is worth 80,000 * 2.5 = 200,000, so the profit is 200,000 - 130,000 = $70,000 on his "
          "$80,000 house."), 1),
    ("3", "So James runs 540 meters in total from his 3 sprints.", 1),
    ("3", "So James runs 450 meters in total from his 3 sprints.", 0),
    # a derived count after "The answer is N" (problem 0, gold 18)
    ("0", "The answer is 18. That is 9 eggs at $2 each.", 1),
    ("0", "The answer is $18, which is 9 eggs times 2.", 1),
    ("0", "The answer is 18, from 9 eggs sold.", 1),
    # an expression after the marker: its result
    ("0", "The answer is 16 - 3 - 4 = 9 eggs, times $2 = 18.", 1),
    ("13", "The answer is 18 vacuum cleaners, of which 6 went to the green house.", 1),
    ("0", "The answer is 9 eggs times $2 = $18.", 1),  # an expression in words: its result
    # real GSM8K solutions without their "#### N" line, where the last number is the answer although the
    # question holds the same number or number words follow: never restated / quoted, never "the two ..."
    # "4 pounds of candy" is in the question, but computed here
    ("670", ("Aaron had 4 pounds, 3 + 5 + 4 = 12 pounds of candy. They divide it into 3 equal portions. "
             "12/3 = 4 pounds of candy"), 1),
    # 2 days is not the question's "2 inches"
    ("1176", ("That will leave him with 2.2 - .44 = 1.76 inches of chalk. Since 1.76 is less than 2 inches, "
              "he will recycle this stick in 2 days."), 1),
    # "the two baskets" is not an answer
    ("1308", ("We multiply 10*2=20 eggs in the second basket. To find the total between the two baskets, "
              "simply add 10+20=30 eggs between the two baskets."), 1),
    ("0", "The answer is 9 * 2 = 17.", 0),
]

RUN_ONS = [
    # the model writes the next few-shot "Question:" itself (problem 0, gold 18)
    ("0", ("She sells 16 - 3 - 4 = 9 eggs for 9 * 2 = $18.\n\nQuestion: A farmer has 20 cows and buys 5 "
           "more. How many cows?\nAnswer: 20 + 5 = 25. The answer is 25."), 1),
    ("0", "16 - 3 - 4 = 9, 9 * 2 = 18. The answer is 18.\nQuestion: Tom has 4 apples. How many? 4", 1),
    ("0", ("She sells 9 eggs for $2 each: 9 * 2 = 17.\n\nQuestion: What is 9 + 9?\n"
           "Answer: The answer is 18."), 0),
    # problem 1 (robe), gold 3
    ("1", "2 / 2 = 1 bolt of white, 2 + 1 = 3 bolts.\nQuestion: How many legs do 2 dogs have? 2 * 4 = 8.", 1),
]

NUMBER_FORMS = [
    ("0", "She makes eighteen dollars every day.", 1),  # a number in words
    ("0", "The answer is eighteen.", 1),
    ("0", "16 - 3 - 4 = 9 eggs, sold at $2 each, so she makes eighteen dollars.", 1),
    ("0", "She makes seventeen dollars every day.", 0),
    ("3", "He runs five hundred forty meters a week.", 1),  # gold 540
    ("2", "He made a profit of 70 000 dollars.", 1),  # a space as the thousands separator
    ("2", "The answer is $70 000.", 1),
    ("2", "He made a profit of 70k.", 1),  # a k suffix
    ("2", "The answer is $70K", 1),
    ("2", "He made a profit of 7k.", 0),
    ("2", "He made seventy thousand dollars.", 1),
    ("88", "Harald sold 8k copies.", 1),  # gold 8000
    ("88", "The answer is 8 000.", 1),
]


def test_candidate_lists_earn_nothing() -> None:
    _check(CANDIDATE_LISTS)
    _check(CANDIDATE_LISTS, with_prompt=False)


def test_restating_the_question_earns_nothing() -> None:
    _check(RESTATEMENTS)


def test_numbers_after_the_final_answer() -> None:
    _check(AFTER_THE_ANSWER)


def test_numbers_after_the_final_answer_without_prompt() -> None:
    # Everything but the "quantity restated from the question" rule works without the question.
    _check([c for c in AFTER_THE_ANSWER if "from his 3 sprints" not in c[1] and "$80,000 house" not in c[1]],
           with_prompt=False)


def test_few_shot_run_ons_are_cut() -> None:
    _check(RUN_ONS)
    _check(RUN_ONS, with_prompt=False)


def test_unusual_number_forms() -> None:
    _check(NUMBER_FORMS)
    _check(NUMBER_FORMS, with_prompt=False)


@pytest.mark.parametrize("words,value", [("eighteen", 18), ("twenty-one", 21), ("one hundred and five", 105),
                                         ("five hundred forty", 540), ("seventy thousand", 70000),
                                         ("two million three hundred thousand", 2_300_000), ("zero", 0)])
def test_word_numbers(words: str, value: int) -> None:
    assert word_number(words) == value


def test_reference_score_is_lm_eval_flexible_extract() -> None:
    """``gsm8k_ref`` (reported next to ours in the eval) gives lm-eval's flexible-extract score."""
    pytest.importorskip("lm_eval")
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter

    flex = RegexFilter(regex_pattern=r"(-?[$0-9.,]{2,})|(-?[0-9]+)", group_select=-1)
    ignore = [",", "\\$", "(?s).*#### ", "\\.$"]
    responses = [resp for cases in (CANDIDATE_LISTS, RESTATEMENTS, AFTER_THE_ANSWER, RUN_ONS, NUMBER_FORMS)
                 for _, resp, _ in cases] + ["", "no number", "$1,234.00", "It is 18.", "#### 18", "-3."]
    for gold in ("18", "3", "70000", "1234.00", "-3"):
        for r in responses:
            pred = next(iter(flex.apply([[r]], [{}])))[0]
            want = exact_match_hf_evaluate(predictions=[pred], references=[gold], regexes_to_ignore=ignore,
                                           ignore_case=True, ignore_punctuation=False)["exact_match"]
            assert verify("gsm8k_ref", r, gold).score == want, (r, gold)
