"""Build evaluation tasks by name with a run's overrides (the eval CLI and the pipeline share this)."""

from __future__ import annotations

import dataclasses

from tulu.eval.tasks import get_task


def build_tasks(names: list[str], *, max_new_tokens: int | None = None, samples: int | None = None,
                judge_url: str | None = None, judge_name: str = "gpt-4o-mini", judge_model: str | None = None,
                backend: str = "auto", device: str | None = None, dtype: str = "auto") -> list:
    """Tasks by name. ``max_new_tokens`` caps every task's generation length (a CPU shortcut that changes
    scores); ``samples`` sets HumanEval's samples per problem; the AlpacaEval judge is an OpenAI-compatible
    endpoint (``judge_url``) or a local model (``judge_model``, run through ``backend``)."""
    tasks = []
    for name in names:
        task = get_task(name)
        if max_new_tokens is not None:
            task.sampling = dataclasses.replace(task.sampling,
                                                max_new_tokens=min(task.sampling.max_new_tokens, max_new_tokens))
        if name == "humaneval" and samples is not None:
            task.sampling = dataclasses.replace(task.sampling, n=samples)
            task.k = tuple(k for k in task.k if k <= samples) or (1,)
        if name == "alpaca_eval":
            from tulu.eval.tasks.alpaca_eval import LocalJudge, OpenAIJudge

            if judge_url:
                task.judge = OpenAIJudge(judge_url, model=judge_name)
            elif judge_model:
                from tulu.rollout import load_backend

                task.judge = LocalJudge(load_backend(judge_model, backend, device, dtype))
        tasks.append(task)
    return tasks
