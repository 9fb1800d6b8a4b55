"""Procedural training data for the embedded recipe: no download, deterministic under a seed.

Two families, both verifiable (so the same prompts serve SFT, preference pairs and RLVR):

* **math**: arithmetic word problems from ``reasoning-gym`` (``basic_arithmetic``, ``chain_sum``,
  ``leg_counting``); the assistant shows the computation and ends with "The answer is N." Verifier:
  ``gsm8k`` (ground truth ``#### N``).
* **constraints**: IFEval-style instructions generated here (lowercase, no commas, end phrase, bullet
  count, quotation, title, word count, capitals) on a topic; the response is built to comply.
  Verifier: ``ifeval`` (ground truth in IFEval's ``instruction_id_list``/``kwargs`` form).

* **ifeval**: the RLVR constraint prompts of :mod:`tulu.data.ifeval_prompts` (all 25 IFEval instruction
  types, 1-3 per prompt, train split) with the compliant and violating responses the generator checked
  with the ``ifeval`` verifier.

Preference pairs take the compliant/correct response as ``chosen`` and a violating/wrong one as
``rejected``. Mixture source names: ``synthetic:math``, ``synthetic:constraints``, ``synthetic:ifeval``.
"""

from __future__ import annotations

import random
from typing import Literal

from tulu.data.ifeval_vocab import FACTS, TOPICS

END_PHRASES = ["Is there anything else I can help with?", "Let me know if you have additional questions.",
               "Any other questions?"]
TASKS = ["Write a short paragraph about {t}.", "Describe {t} for a curious child.",
         "Explain why {t} matters.", "Give a brief overview of {t}."]

Family = Literal["math", "constraints", "ifeval"]


def _sentences(rng: random.Random, topic: str, k: int) -> list[str]:
    picks = rng.sample(FACTS, k)
    return [s.format(t=topic, T=topic[0].upper() + topic[1:]) for s in picks]


def _constraint_example(rng: random.Random) -> dict:
    """One instruction-following example: prompt, compliant response, violating response, ground truth."""
    topic = rng.choice(TOPICS)
    task = rng.choice(TASKS).format(t=topic)
    kind = rng.choice(["lowercase", "no_comma", "end_phrase", "bullets", "quotation", "title", "words", "capital"])
    body = " ".join(_sentences(rng, topic, 3))
    if kind == "lowercase":
        instr = "Your entire response should be in English, and in all lowercase letters. No capital letters are allowed."
        good, bad = body.lower(), body
        gt = {"instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]}
    elif kind == "capital":
        instr = "Your entire response should be in English, and in all capital letters."
        good, bad = body.upper(), body
        gt = {"instruction_id_list": ["change_case:english_capital"], "kwargs": [{}]}
    elif kind == "no_comma":
        instr = "In your entire response, refrain from the use of any commas."
        good = body.replace(",", "")
        bad = good.rstrip(".") + ", and more."
        gt = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    elif kind == "end_phrase":
        phrase = rng.choice(END_PHRASES)
        instr = f"Finish your response with this exact phrase {phrase} No other words should follow this phrase."
        good, bad = f"{body} {phrase}", body
        gt = {"instruction_id_list": ["startend:end_checker"], "kwargs": [{"end_phrase": phrase}]}
    elif kind == "bullets":
        n = rng.randint(2, 4)
        instr = (f"Your answer must contain exactly {n} bullet points. Use the markdown bullet points such as:\n"
                 "* This is point 1.\n* This is point 2")
        points = _sentences(rng, topic, n + 1)
        good = "\n".join(f"* {p}" for p in points[:n])
        bad = "\n".join(f"* {p}" for p in points)
        gt = {"instruction_id_list": ["detectable_format:number_bullet_lists"], "kwargs": [{"num_bullets": n}]}
    elif kind == "quotation":
        instr = "Wrap your entire response with double quotation marks."
        good, bad = f'"{body}"', body
        gt = {"instruction_id_list": ["startend:quotation"], "kwargs": [{}]}
    elif kind == "title":
        instr = "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>."
        good, bad = f"<<{topic.title()}>>\n{body}", body
        gt = {"instruction_id_list": ["detectable_format:title"], "kwargs": [{}]}
    else:  # words
        n = rng.choice([20, 30])
        instr = f"Answer with less than {n} words."
        good = " ".join(_sentences(rng, topic, 1))
        bad = " ".join(_sentences(rng, topic, 5))
        gt = {"instruction_id_list": ["length_constraints:number_words"],
              "kwargs": [{"relation": "less than", "num_words": n}]}
    prompt = f"{task} {instr}"
    gt = {**gt, "prompt": prompt}
    return {"prompt": prompt, "good": good, "bad": bad, "ground_truth": gt, "verifier": "ifeval"}


def _math_example(rng: random.Random, item: dict) -> dict:
    answer = str(item["answer"]).strip()
    q = item["question"].strip()
    expr = item.get("metadata", {}).get("expression")
    work = f"{expr} = {answer}. " if expr else ""
    good = f"{work}The answer is {answer}."
    try:
        wrong = str(int(answer) + rng.choice([-3, -2, -1, 1, 2, 3, 10]))
    except ValueError:
        wrong = answer + "0"
    bad = f"{expr} = {wrong}. The answer is {wrong}." if expr else f"The answer is {wrong}."
    return {"prompt": q, "good": good, "bad": bad, "ground_truth": f"#### {answer}", "verifier": "gsm8k"}


def _math_items(n: int, seed: int) -> list[dict]:
    import reasoning_gym as rg

    # Small numbers: a 135M model can learn 2-3 term sums of 1-2 digit numbers, not 12-digit products.
    tasks = {"basic_arithmetic": dict(min_terms=2, max_terms=3, min_digits=1, max_digits=2),
             "chain_sum": dict(min_terms=2, max_terms=3, min_digits=1, max_digits=2),
             "leg_counting": dict(min_animals=2, max_animals=3, max_instances=5)}
    per = -(-n // len(tasks))
    items = []
    for j, (name, kw) in enumerate(tasks.items()):
        ds = rg.create_dataset(name, size=per, seed=seed * 31 + j, **kw)
        items.extend(ds[i] for i in range(per))
    random.Random(seed).shuffle(items)
    return items[:n]


def examples(family: Family, n: int, seed: int = 0) -> list[dict]:
    """``n`` raw examples with prompt/good/bad/ground_truth/verifier."""
    rng = random.Random(f"{family}-{seed}")
    if family == "math":
        return [_math_example(rng, it) for it in _math_items(n, seed)]
    if family == "constraints":
        return [_constraint_example(rng) for _ in range(n)]
    if family == "ifeval":
        from tulu.data.rlvr_sources import constraint_examples

        return [{"prompt": ex.prompt, "good": ex.good, "bad": ex.bad, "ground_truth": ex.ground_truth,
                 "verifier": "ifeval"} for _, ex in constraint_examples(n, seed, "train")]
    raise ValueError(f"unknown synthetic family {family!r} (expected math, constraints or ifeval)")


def records(family: Family, n: int, kind: Literal["sft", "preference", "rl"] = "sft", seed: int = 0) -> list[dict]:
    """Canonical records of ``kind`` from ``family``."""
    out = []
    for i, ex in enumerate(examples(family, n, seed)):
        user = [{"role": "user", "content": ex["prompt"]}]
        rid = f"synthetic:{family}:{seed}:{i}"
        if kind == "sft":
            out.append({"messages": user + [{"role": "assistant", "content": ex["good"]}], "id": rid})
        elif kind == "preference":
            out.append({"messages": user, "chosen": [{"role": "assistant", "content": ex["good"]}],
                        "rejected": [{"role": "assistant", "content": ex["bad"]}], "id": rid})
        elif kind == "rl":
            out.append({"messages": user, "ground_truth": ex["ground_truth"], "verifier": ex["verifier"], "id": rid})
        else:
            raise ValueError(f"unknown record kind {kind!r}")
    return out
