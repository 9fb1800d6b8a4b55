"""The step engine: schedule and batching formulas, accumulation invariance, loss going down, exact resume."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from tulu.data import synthetic
from tulu.data.templates import encode_chat
from tulu.models import tiny_model
from tulu.train.common import TrainConfig
from tulu.train.engine import ResumeError, fit, list_checkpoints, param_groups
from tulu.train.plan import deal, epoch_order, lr_factor, make_plan, same_rates_so_far, step_items, warmup_steps_for
from tulu.train.sft import SFTTask



# One torch thread per test process: set for the whole suite in tests/conftest.py.

# ------------------------------------------------------------------------------------- pure pieces
@pytest.mark.parametrize("kind", ["linear", "cosine", "constant"])
def test_lr_factor_matches_transformers(kind):
    from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                              get_linear_schedule_with_warmup)

    total, ratio = 57, 0.03
    warm = warmup_steps_for(total, ratio)
    assert warm == 2  # ceil(57 * 0.03), as transformers' TrainingArguments.get_warmup_steps
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = {"linear": lambda: get_linear_schedule_with_warmup(opt, warm, total),
             "cosine": lambda: get_cosine_schedule_with_warmup(opt, warm, total),
             "constant": lambda: get_constant_schedule_with_warmup(opt, warm)}[kind]()
    for step in range(total):
        assert lr_factor(step, total, warm, kind) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12), step
        opt.step()
        sched.step()


def test_plan_accumulation_and_partial_last_step():
    cfg = TrainConfig(effective_batch_size=8, per_device_batch_size=2, num_epochs=3)
    p = make_plan(100, cfg, num_processes=1)
    assert (p.accumulation, p.slots) == (4, 4)
    assert p.steps_per_epoch == 13  # 12 full steps + a last one of 4 items (one per micro-batch slot)
    assert p.total_steps == 39
    assert make_plan(99, cfg, 1).steps_per_epoch == 12  # 3 left over cannot fill 4 slots: dropped
    p2 = make_plan(100, cfg, num_processes=2)
    assert (p2.accumulation, p2.slots) == (2, 4)
    assert make_plan(100, TrainConfig(effective_batch_size=8, per_device_batch_size=2, max_steps=5), 1).total_steps == 5
    with pytest.raises(ValueError, match="multiple of"):
        make_plan(100, TrainConfig(effective_batch_size=8, per_device_batch_size=2), num_processes=3)
    with pytest.raises(ValueError, match="cannot fill one step"):
        make_plan(3, cfg, 1)


def test_step_items_cover_each_epoch_once_and_depend_only_on_seed():
    cfg = TrainConfig(effective_batch_size=4, per_device_batch_size=1, num_epochs=2)
    p = make_plan(12, cfg, 1)
    e0 = sorted(i for s in range(3) for i in step_items(p, 7, s))
    assert e0 == list(range(12))
    assert step_items(p, 7, 3) != step_items(p, 7, 0)  # epoch 1 reshuffles
    assert step_items(p, 7, 4) == step_items(p, 7, 4)
    assert list(epoch_order(12, 7, 1)) == list(epoch_order(12, 7, 1))
    slots = deal(list(range(10)), 4)
    assert [len(s) for s in slots] == [3, 3, 2, 2] and sorted(sum(slots, [])) == list(range(10))


def test_param_groups_skip_decay_on_vectors(tiny):
    model, _ = tiny
    groups = param_groups(model, 0.1)
    assert groups[0]["weight_decay"] == 0.1 and all(p.ndim >= 2 for p in groups[0]["params"])
    assert groups[1]["weight_decay"] == 0.0 and all(p.ndim == 1 for p in groups[1]["params"])


# ----------------------------------------------------------------------------------------- training
@pytest.fixture(scope="module")
def items(tokenizer):
    recs = synthetic.records("math", 12, kind="sft", seed=0) + synthetic.records("constraints", 12, kind="sft", seed=0)
    return [encode_chat(r["messages"], tokenizer, max_length=192) for r in recs]


def _train(tokenizer, items, out, **kw):
    base = dict(learning_rate=3e-3, warmup_ratio=0.0, effective_batch_size=8, per_device_batch_size=4,
                num_epochs=1, seed=5)
    base.update(kw)
    reduction = base.pop("reduction", "sum")
    model, _ = tiny_model(seed=0, tokenizer=tokenizer)
    return fit(TrainConfig(**base), model, SFTTask(reduction), items, out)


def _weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.unwrapped_model().state_dict().items()}


def test_loss_goes_down(tokenizer, items, tmp_path):
    trainer, result = _train(tokenizer, items[:8], tmp_path, num_epochs=12, effective_batch_size=8)
    losses = [r["nll_per_token"] for r in result.history]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:3]) / 3, losses
    assert all(b < a for a, b in zip(losses, losses[1:])), losses  # same 8 examples every step
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == list(range(1, 13))
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "nll_per_token"} <= set(lines[0])


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_accumulation_does_not_change_the_update(tokenizer, items, tmp_path, reduction):
    """Same effective batch, 1 micro-batch of 8 vs 4 accumulated micro-batches of 2: same weights."""
    a, ra = _train(tokenizer, items, tmp_path / "a", per_device_batch_size=8, reduction=reduction)
    b, rb = _train(tokenizer, items, tmp_path / "b", per_device_batch_size=2, reduction=reduction)
    assert a.accumulation == 1 and b.accumulation == 4
    assert [r["loss"] for r in ra.history] == pytest.approx([r["loss"] for r in rb.history], rel=1e-5)
    # Adam divides by sqrt(v)+eps, so for rarely-seen embedding rows (gradients ~1e-8) float-level
    # differences in summation order move the update by up to ~1e-5 (0.3% of one lr=3e-3 step).
    wa, wb = _weights(a), _weights(b)
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=3e-5, rtol=1e-5), (k, (wa[k] - wb[k]).abs().max().item())


def test_sum_loss_is_per_sequence_and_mean_is_per_token(tokenizer, items, tmp_path):
    _, rs = _train(tokenizer, items, tmp_path / "s", max_steps=1, learning_rate=1e-9)
    _, rm = _train(tokenizer, items, tmp_path / "m", max_steps=1, learning_rate=1e-9, reduction="mean")
    s, m = rs.history[0], rm.history[0]
    assert s["loss"] == pytest.approx(s["nll_per_token"] * s["target_tokens"] / s["sequences"], rel=1e-6)
    assert m["loss"] == pytest.approx(m["nll_per_token"], rel=1e-6)


def test_resume_from_checkpoint_gives_identical_weights(tokenizer, items, tmp_path):
    kw = dict(num_epochs=2, checkpoint_every=2, keep_checkpoints=10, per_device_batch_size=2)
    full, _ = _train(tokenizer, items, tmp_path / "full", **kw)
    ckpts = list_checkpoints(tmp_path / "full" / "checkpoints")
    assert [c.name for c in ckpts] == ["checkpoint-2", "checkpoint-4"]
    # a second run directory that only has checkpoint-2 (as if killed during step 3)
    part = tmp_path / "part"
    shutil.copytree(ckpts[0], part / "checkpoints" / "checkpoint-2")
    (part / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "loss": 0.0}) + "\n" for s in (1, 2, 3)))  # step 3 was never saved
    resumed, res = _train(tokenizer, items, part, **kw)
    assert res.resumed_from == 2
    wf, wr = _weights(full), _weights(resumed)
    for k in wf:
        assert torch.equal(wf[k], wr[k]), k
    steps = [json.loads(x)["step"] for x in (part / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_resume_refuses_other_data(tokenizer, items, tmp_path):
    _train(tokenizer, items, tmp_path, checkpoint_every=2, num_epochs=2)
    with pytest.raises(ResumeError, match="other data"):
        _train(tokenizer, items[:16], tmp_path, checkpoint_every=1, num_epochs=2)
    _, r = _train(tokenizer, items[:16], tmp_path, checkpoint_every=1, num_epochs=2, resume="never")
    assert r.resumed_from == 0


def test_evaluation_model_gathers_zero3_partitions(tokenizer, items, tmp_path, monkeypatch):
    """Under ZeRO-3 the held-out pass after training needs the partitioned weights gathered on every process
    (seen failing on the H100 without it). DeepSpeed does not run on CPU, so its pieces are stand-ins here:
    the loop must enter deepspeed.zero.GatheredParameters over all parameters, and nothing when unpartitioned."""
    import contextlib
    import sys
    import types

    from accelerate.utils import DistributedType

    trainer, _ = _train(tokenizer, items[:4], tmp_path, max_steps=1)
    gathered = []

    @contextlib.contextmanager
    def fake_gather(params):
        gathered.append(len(params))
        yield

    import importlib.machinery

    fake = types.ModuleType("deepspeed")
    fake.__spec__ = importlib.machinery.ModuleSpec("deepspeed", None)
    fake.zero = types.SimpleNamespace(GatheredParameters=fake_gather)
    monkeypatch.setitem(sys.modules, "deepspeed", fake)
    with trainer.evaluation_model() as m:  # plain single process: nothing to gather
        assert m is trainer.unwrapped_model()
    assert gathered == []
    monkeypatch.setattr(type(trainer.accelerator), "distributed_type", property(lambda self: DistributedType.DEEPSPEED))
    params = list(trainer.unwrapped_model().parameters())
    for i, p in enumerate(params):
        p.ds_id = i
    with trainer.evaluation_model() as m:
        assert m is trainer.unwrapped_model()
    assert gathered == [len(params)]


def test_same_rates_so_far_allows_only_a_schedule_whose_prefix_is_unchanged():
    # constant, no warmup: any length, as long as the checkpoint is not past the new end
    assert same_rates_so_far(8, 12, 8, 0.0, "constant") and same_rates_so_far(8, 12, 40, 0.0, "constant")
    assert not same_rates_so_far(8, 12, 4, 0.0, "constant")
    # warmup as a ratio: 10% of 100 and of 120 steps are 10 and 12 warmup steps, so step 1 differs
    assert not same_rates_so_far(5, 100, 120, 0.1, "constant")
    assert same_rates_so_far(0, 100, 120, 0.1, "constant")  # nothing taken yet
    # linear decay depends on the total from the first step after warmup
    assert not same_rates_so_far(8, 12, 8, 0.0, "linear") and same_rates_so_far(8, 12, 12, 0.0, "linear")
