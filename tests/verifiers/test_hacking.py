"""Reward hacks must earn nothing: several answers, every number, copying the prompt, empty and huge output."""

from __future__ import annotations

import time

import pytest

from tulu.verifiers.base import verify

MATH_VERIFIERS = ["math", "math_strict"]


def _minerva(x: str) -> str:
    return f"Final Answer: The final answer is ${x}$. I hope it is correct."


def test_several_boxed_answers_earn_nothing() -> None:
    assert verify("math", "\\boxed{3} or maybe \\boxed{5}", "5").score == 0
    assert verify("math", "\\boxed{5} \\boxed{3}", "5").score == 0  # Tulu 3 looks only at the last box
    assert verify("math", "\\boxed{3} ... so \\boxed{5}", "3").score == 0
    assert verify("math", "\\boxed{5}\n" + _minerva("4"), "5").score == 0  # box and phrase disagree
    assert verify("math_strict", _minerva("4") + "\n" + _minerva("5"), "5").score == 0
    assert verify("math", "\\boxed{5} and again \\boxed{5.0}", "5").score == 1  # the same answer twice is fine


def test_every_number_listed_earns_nothing() -> None:
    shotgun = ", ".join(str(i) for i in range(-50, 101))
    assert verify("math", f"\\boxed{{{shotgun}}}", "42").score == 0
    assert verify("math", " ".join(f"\\boxed{{{i}}}" for i in range(100)), "42").score == 0
    assert verify("math", "\\boxed{41 \\text{ or } 42}", "42").score == 0
    assert verify("math", _minerva("42 or 43"), "42").score == 0
    assert verify("gsm8k", "The answer is " + " or ".join(str(i) for i in range(100)), "42").score == 0
    assert verify("gsm8k", " ".join(f"\\boxed{{{i}}}" for i in range(100)), "42").score == 0


def test_answer_copied_from_prompt_earns_nothing() -> None:
    prompt = "Compute $\\dbinom{8}{4}$."
    assert verify("math", "The answer is $\\dbinom{8}{4}$.", "70", prompt=prompt).score == 0
    assert verify("math", "\\boxed{\\dbinom{8}{4}}", "70", prompt=prompt).score == 0
    assert verify("math", "\\boxed{70}", "70", prompt=prompt).score == 1
    q = "Tom had 3 apples and bought 2 more, so he now has some. Earlier he counted 5. How many now?"
    assert verify("gsm8k", q, "5", prompt=q).score == 0
    assert verify("gsm8k", "3 + 2 = 5", "5", prompt=q).score == 1


@pytest.mark.parametrize("name,gold", [("math", "5"), ("math_strict", "5"), ("gsm8k", "5")])
def test_empty_output_earns_nothing(name: str, gold: str) -> None:
    for resp in ["", " ", "\n\n", "\\boxed{}", "$$", _minerva("")]:
        assert verify(name, resp, gold).score == 0, repr(resp)


@pytest.mark.parametrize("name", ["math", "math_strict", "gsm8k"])
def test_gigantic_output_is_time_bounded(name: str) -> None:
    huge = [
        "7 " * 500_000 + "\\boxed{5}",  # 1 MB of filler before a correct-looking box
        "\\boxed{" + "1+" * 200_000 + "1}",  # a 400 kB expression for sympy
        "$" + "(" * 50_000 + "x" + ")" * 50_000 + "$",
        "{" * 300_000,  # unbalanced braces
        "Final Answer: The final answer is " * 20_000,
    ]
    for resp in huge:
        t0 = time.monotonic()
        r = verify(name, resp, "5", timeout_s=3)
        assert time.monotonic() - t0 < 6, (name, resp[:40])
        assert 0.0 <= r.score <= 1.0
    assert verify("math", "\\boxed{" + "1+" * 200_000 + "1}", "5", timeout_s=3).score == 0


def test_sympy_stall_does_not_stall_a_batch() -> None:
    from tulu.verifiers.base import verify_many

    stall = "\\boxed{" + "+".join(f"x^{{{i}}}" for i in range(120)) + "}"
    resps = ["\\boxed{5}", stall, "\\boxed{6}", "\\boxed{5}"]
    t0 = time.monotonic()
    out = verify_many("math", resps, ["5", "(x+1)^{120}", "5", "5"], timeout_s=2)
    assert [r.score for r in out] == [1, 0, 0, 1]
    assert time.monotonic() - t0 < 10
