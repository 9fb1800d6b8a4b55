"""Generation workers as Ray actors, for distributed RLVR rollouts and large evaluations.

Each :class:`GenerationWorker` actor loads the model from a path and wraps a local backend (``fast`` by
default, ``hf`` or ``vllm`` on GPU nodes). :class:`RayBackend` splits the prompts into contiguous shards,
one per worker, gathers the results in prompt order, and broadcasts weight updates through the object
store. With a seed, shard ``s`` starting at prompt ``start`` samples with seed ``hash(seed, start)``, so
results are reproducible for a fixed number of workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from tulu.rollout.base import GenerationBackend, Prompt, RequestOutput, SamplingParams
from tulu.rollout.common import sample_seed


class _Worker:
    """The actor body (wrapped by ``ray.remote`` on first use so importing this module needs no Ray)."""

    def __init__(self, model_path: str, backend: str, kwargs: dict, threads: int):
        import torch

        from tulu.rollout import get_backend

        torch.set_num_threads(threads)
        self.backend = get_backend(backend, model_path, None, **kwargs)

    def generate(self, prompts: list, params: SamplingParams) -> list[RequestOutput]:
        return self.backend.generate(prompts, params)

    def update_weights(self, state_dict) -> bool:
        self.backend.update_weights(state_dict)
        return True

    def ping(self) -> str:
        return self.backend.name


def shards(n: int, parts: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into at most ``parts`` contiguous, balanced ``(start, stop)`` pieces."""
    parts = max(1, min(parts, n))
    base, extra = divmod(n, parts)
    out, start = [], 0
    for i in range(parts):
        stop = start + base + (1 if i < extra else 0)
        out.append((start, stop))
        start = stop
    return out


class RayBackend(GenerationBackend):
    """``get_backend("ray", "path/to/model", num_workers=2, worker_backend="fast", worker_kwargs={},
    num_cpus_per_worker=1, num_gpus_per_worker=0, init_kwargs=None)``. Starts a local Ray instance when
    none is running (and shuts it down on :meth:`close`)."""

    name = "ray"

    def __init__(self, model, tokenizer=None, *, num_workers: int = 2, worker_backend: str = "fast",
                 worker_kwargs: dict | None = None, num_cpus_per_worker: int = 1, num_gpus_per_worker: float = 0,
                 init_kwargs: dict | None = None):
        import ray

        if not isinstance(model, str):
            raise TypeError("backend 'ray' takes the model as a path or hub id (workers load it themselves)")
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(**(init_kwargs or {"num_cpus": num_workers * num_cpus_per_worker, "include_dashboard": False,
                                            "log_to_driver": False}))
        actor = ray.remote(_Worker).options(num_cpus=num_cpus_per_worker, num_gpus=num_gpus_per_worker)
        self.workers = [actor.remote(model, worker_backend, dict(worker_kwargs or {}), max(1, num_cpus_per_worker))
                        for _ in range(num_workers)]
        ray.get([w.ping.remote() for w in self.workers])  # surface load errors here, not at first generate

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, *, progress: bool = False) -> list[RequestOutput]:
        import ray

        prompts = list(prompts)
        if not prompts:
            return []
        jobs = []
        for w, (start, stop) in zip(self.workers, shards(len(prompts), len(self.workers))):
            p = params
            if params.seed is not None:
                p = dataclasses.replace(params, seed=sample_seed(params.seed, start, -1))
            jobs.append((start, w.generate.remote(prompts[start:stop], p)))
        results: list[RequestOutput] = []
        for start, ref in jobs:
            for out in ray.get(ref):
                results.append(RequestOutput(prompt_index=start + out.prompt_index, completions=out.completions))
        return results

    def update_weights(self, state_dict) -> None:
        import ray

        ref = ray.put({k: v.detach().cpu() for k, v in dict(state_dict).items()})
        ray.get([w.update_weights.remote(ref) for w in self.workers])

    def close(self) -> None:
        import ray

        for w in getattr(self, "workers", []):
            ray.kill(w)
        self.workers = []
        if getattr(self, "_owns_ray", False) and ray.is_initialized():
            ray.shutdown()
