"""Samples: the same prompts answered by every stage's model, side by side, with the verifier's verdict.

Per task the report shows a few items that every stage answered. Items whose verdict differs between stages come
first (they show what a stage changed), then items in file order; the choice depends only on the files."""

from __future__ import annotations

from typing import Any

from tulu.report.rundata import RunData

MAX_CHARS = 700


def _clip(text: str, limit: int = MAX_CHARS) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit].rstrip() + f" … [{len(text) - limit} more characters]"


def _gold(gold: Any) -> str:
    if isinstance(gold, dict):
        if "instruction_id_list" in gold:
            return "constraints: " + ", ".join(gold["instruction_id_list"])
        gold = {k: v for k, v in gold.items() if k != "prompt"}
    return _clip(gold if isinstance(gold, str) else str(gold), 200)


def pick(run: RunData, task: str, per_task: int = 3) -> list[dict[str, Any]]:
    """Up to ``per_task`` items of ``task`` answered by every stage, with each stage's response and verdict."""
    evals = [e for e in run.evals if (e.results["tasks"].get(task) or {}).get("metrics")]
    if not evals:
        return []
    headline = evals[0].results["tasks"][task].get("headline") or ""
    gens = [e.generations(task) for e in evals]
    if not all(gens):
        return []
    common = [i for i in gens[0] if all(i in g for g in gens[1:])]

    def verdicts(i: str) -> list[float | None]:
        return [g[i]["scores"].get(headline) if isinstance(g[i].get("scores"), dict) else None for g in gens]

    differ = [i for i in common if len(set(verdicts(i))) > 1]
    chosen = differ[:per_task] + [i for i in common if i not in differ][:max(0, per_task - len(differ))]
    out = []
    for i in chosen:
        first = gens[0][i]
        answers = []
        for e, g, v in zip(evals, gens, verdicts(i)):
            rec = g[i]
            resp = (rec.get("responses") or [""])[0]
            finish = (rec.get("finish_reasons") or [None])[0]
            answers.append({"stage": e.stage, "response": _clip(resp), "verdict": v, "finish": finish})
        out.append({"task": task, "id": i, "metric": headline, "prompt": _clip(_last_turn(first.get("prompt", "")), 900),
                    "gold": _gold(first.get("gold")), "answers": answers, "differs": i in differ})
    return out


def _last_turn(prompt: Any) -> str:
    """The question itself: few-shot prompts are long, the last user turn is what was asked."""
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users else str(prompt)
    text = str(prompt)
    for marker in ("\nQuestion:", "Question:"):
        k = text.rfind(marker)
        if k > 0:
            return "… " + text[k:].strip()
    return text


def samples(run: RunData, per_task: int = 3) -> list[dict[str, Any]]:
    tasks = list(dict.fromkeys(t for e in run.evals for t in e.results["tasks"]))
    return [s for t in tasks for s in pick(run, t, per_task)]


def verdict_mark(v: float | None) -> str:
    if v is None:
        return "?"
    return "✔ pass" if v >= 1.0 else "✘ fail" if v <= 0.0 else f"{v:.2f}"
