"""Hub-only benchmarks (BBH, PopQA, TruthfulQA, MMLU-Pro, AGIEval-en, DeepMind Math, GPQA main).

No installed package ships these, so they load with ``datasets.load_dataset`` when the hub may be used.
Offline, :func:`unavailable_reason` gives the one line that says so. The row converters are pure functions
(hub row -> item dict), tested on hand-written rows; the hub download itself is not exercised offline.
"""

from __future__ import annotations

import ast
import json
import random
import re
from dataclasses import dataclass
from typing import Any, Callable


def _letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def _choices_prompt(question: str, choices: list[str]) -> str:
    return "\n".join([question.strip()] + [f"{k}. {str(c).strip()}" for k, c in zip(_letters(len(choices)), choices)])


def gpqa_clean(text: str | None) -> str:
    """OLMES's GPQA text clean-up: strip, " [title]" -> ". ", bracketed spans removed, double spaces halved."""
    if text is None:
        return " "
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def gpqa_item(row: dict, subset: str, i: int, seed: int = 111) -> dict:
    """One GPQA row (main or Diamond: the same columns) with its options shuffled as OLMES shuffles them:
    ``random.Random(seed + row index)`` over (incorrect 1, incorrect 2, incorrect 3, correct)."""
    correct = gpqa_clean(row["Correct Answer"])
    choices = [gpqa_clean(row[f"Incorrect Answer {k}"]) for k in (1, 2, 3)] + [correct]
    random.Random(seed + i).shuffle(choices)
    return {"id": str(row["Record ID"]), "prompt": _choices_prompt(row["Question"], choices),
            "answer": _letters(4)[choices.index(correct)],
            "meta": {"question": row["Question"], "choices": choices, "correct": correct, "index": i,
                     "domain": row.get("High-level domain"), "subdomain": row.get("Subdomain")}}


def bbh_item(row: dict, subset: str, i: int) -> dict:
    return {"id": f"{subset}/{i}", "prompt": row["input"], "answer": row["target"], "meta": {"subset": subset}}


def popqa_item(row: dict, subset: str, i: int) -> dict:
    answers = row["possible_answers"]
    if isinstance(answers, str):
        answers = json.loads(answers)
    return {"id": str(row.get("id", i)), "prompt": row["question"], "answer": list(answers),
            "meta": {k: row.get(k) for k in ("subj", "prop", "obj", "s_pop")}}


def truthfulqa_item(row: dict, subset: str, i: int) -> dict:
    return {"id": str(i), "prompt": row["question"],
            "answer": {"mc1_targets": row["mc1_targets"], "mc2_targets": row["mc2_targets"]}, "meta": {}}


def mmlu_pro_item(row: dict, subset: str, i: int) -> dict:
    options = list(row["options"])
    return {"id": str(row.get("question_id", i)), "prompt": _choices_prompt(row["question"], options),
            "answer": _letters(len(options))[int(row["answer_index"])],
            "meta": {"subject": row.get("category"), "question": row["question"], "choices": options}}


def agieval_item(row: dict, subset: str, i: int) -> dict:
    gold = row["gold"]
    gold = gold[0] if isinstance(gold, list) else gold
    return {"id": f"{subset}/{i}", "prompt": row["query"], "answer": _letters(len(row["choices"]))[int(gold)],
            "meta": {"subset": subset, "choices": list(row["choices"])}}


def _unbytes(s: Any) -> str:
    """DeepMind Math stores Python bytes literals as text ("b'...\\n'"); return the plain string."""
    if isinstance(s, bytes):
        return s.decode().strip()
    s = str(s)
    if s.startswith(("b'", 'b"')):
        try:
            return ast.literal_eval(s).decode().strip()
        except (ValueError, SyntaxError):
            pass
    return s.strip()


def deepmind_math_item(row: dict, subset: str, i: int) -> dict:
    return {"id": f"{subset}/{i}", "prompt": _unbytes(row["question"]), "answer": _unbytes(row["answer"]),
            "meta": {"subset": subset}}


@dataclass(frozen=True)
class HubSpec:
    path: str  # hub dataset id; "{subset}" is filled per subset
    subsets: tuple[str, ...]  # configs (or "" for none)
    split: str
    convert: Callable[[dict, str, int], dict]
    config_is_subset: bool = True  # False: the subset is part of the path, not a config name


BBH_SUBSETS = (
    "boolean_expressions", "causal_judgement", "date_understanding", "disambiguation_qa", "dyck_languages",
    "formal_fallacies", "geometric_shapes", "hyperbaton", "logical_deduction_five_objects",
    "logical_deduction_seven_objects", "logical_deduction_three_objects", "movie_recommendation",
    "multistep_arithmetic_two", "navigate", "object_counting", "penguins_in_a_table",
    "reasoning_about_colored_objects", "ruin_names", "salient_translation_error_detection", "snarks",
    "sports_understanding", "temporal_sequences", "tracking_shuffled_objects_five_objects",
    "tracking_shuffled_objects_seven_objects", "tracking_shuffled_objects_three_objects", "web_of_lies",
    "word_sorting")
AGIEVAL_EN_SUBSETS = ("aqua-rat", "logiqa-en", "lsat-ar", "lsat-lr", "lsat-rc", "sat-en", "sat-en-without-passage",
                      "sat-math", "gaokao-english")
DEEPMIND_MATH_SUBSETS = tuple(
    f"{area}__{name}" for area, names in {
        "algebra": ("linear_1d", "linear_1d_composed", "linear_2d", "linear_2d_composed", "polynomial_roots",
                    "polynomial_roots_composed", "sequence_next_term", "sequence_nth_term"),
        "arithmetic": ("add_or_sub", "add_or_sub_in_base", "add_sub_multiple", "div", "mixed", "mul",
                       "mul_div_multiple", "nearest_integer_root", "simplify_surd"),
        "calculus": ("differentiate", "differentiate_composed"),
        "comparison": ("closest", "closest_composed", "kth_biggest", "kth_biggest_composed", "pair",
                       "pair_composed", "sort", "sort_composed"),
        "measurement": ("conversion", "time"),
        "numbers": ("base_conversion", "div_remainder", "div_remainder_composed", "gcd", "gcd_composed",
                    "is_factor", "is_factor_composed", "is_prime", "is_prime_composed", "lcm", "lcm_composed",
                    "list_prime_factors", "list_prime_factors_composed", "place_value", "place_value_composed",
                    "round_number", "round_number_composed"),
        "polynomials": ("add", "coefficient_named", "collect", "compose", "evaluate", "evaluate_composed",
                        "expand", "simplify_power"),
        "probability": ("swr_p_level_set", "swr_p_sequence"),
    }.items() for name in names)

HUB_SPECS: dict[str, HubSpec] = {
    "bbh": HubSpec("lukaemon/bbh", BBH_SUBSETS, "test", bbh_item),
    "popqa": HubSpec("akariasai/PopQA", ("",), "test", popqa_item),
    "truthfulqa": HubSpec("truthfulqa/truthful_qa", ("multiple_choice",), "validation", truthfulqa_item),
    "mmlu_pro": HubSpec("TIGER-Lab/MMLU-Pro", ("",), "test", mmlu_pro_item),
    "agieval": HubSpec("hails/agieval-{subset}", AGIEVAL_EN_SUBSETS, "test", agieval_item, config_is_subset=False),
    "deepmind_math": HubSpec("deepmind/math_dataset", DEEPMIND_MATH_SUBSETS, "test", deepmind_math_item),
    # GPQA main (448): the set OLMES scores; a gated hub dataset (needs an accepted licence and HF_TOKEN)
    "gpqa_main": HubSpec("Idavidrein/gpqa", ("gpqa_main",), "train", gpqa_item),
}


def unavailable_reason(name: str) -> str:
    spec = HUB_SPECS.get(name)
    where = spec.path.replace("{subset}", "*") if spec else "?"
    return (f"{name}: no offline copy ships in any installed package; it needs the Hugging Face hub ({where}), "
            "and HF_HUB_OFFLINE/HF_DATASETS_OFFLINE is set")


def load_hub(name: str, split: str = "test", load_dataset: Callable | None = None) -> list[dict]:
    """Rows of a hub-only benchmark converted to item dicts (``id``, ``prompt``, ``answer``, ``meta``).

    ``split="test"`` means the benchmark's evaluation split (TruthfulQA's is ``validation``)."""
    if load_dataset is None:
        from datasets import load_dataset
    spec = HUB_SPECS[name]
    hub_split = spec.split if split == "test" else split
    items: list[dict] = []
    for subset in spec.subsets:
        if spec.config_is_subset:
            ds = load_dataset(spec.path, subset or None, split=hub_split)
        else:
            ds = load_dataset(spec.path.format(subset=subset), split=hub_split)
        items += [spec.convert(dict(row), subset, i) for i, row in enumerate(ds)]
    return items
