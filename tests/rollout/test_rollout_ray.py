"""Generation workers as Ray actors on a local 2-CPU Ray instance, with the tiny model."""

from __future__ import annotations

import pytest

from tulu.rollout import SamplingParams, get_backend
from tulu.rollout.ray import shards

ray = pytest.importorskip("ray")


def test_shards_are_balanced_and_contiguous():
    assert shards(5, 2) == [(0, 3), (3, 5)]
    assert shards(2, 4) == [(0, 1), (1, 2)]
    assert shards(0, 3) == [(0, 0)]


def test_ray_workers_match_local_backend_and_take_weight_updates(tmp_path, tokenizer):
    from tulu.models import save_model, tiny_model

    m0, tok = tiny_model(seed=0, tokenizer=tokenizer)
    m1, _ = tiny_model(seed=1, tokenizer=tokenizer)
    path = save_model(m0, tok, tmp_path / "tiny")
    prompts = [[{"role": "user", "content": f"question {i}"}] for i in range(5)]
    params = SamplingParams(max_new_tokens=6)
    local0 = get_backend("fast", m0, tok).generate(prompts, params)
    local1 = get_backend("fast", m1, tok).generate(prompts, params)
    be = get_backend("ray", str(path), num_workers=2, worker_kwargs={"max_batch_size": 4},
                     init_kwargs={"num_cpus": 2, "include_dashboard": False, "log_to_driver": False})
    try:
        outs = be.generate(prompts, params)
        assert [o.prompt_index for o in outs] == list(range(5))
        assert [o.completions[0].token_ids for o in outs] == [o.completions[0].token_ids for o in local0]
        be.update_weights(m1.state_dict())
        outs = be.generate(prompts, params)
        got = [x for o in outs for x in o.completions[0].logprobs]
        assert got == pytest.approx([x for o in local1 for x in o.completions[0].logprobs], abs=1e-5)
    finally:
        be.close()
    assert not ray.is_initialized()
