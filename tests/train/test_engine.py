"""The step engine as an RL loop drives it: batches it did not plan, two trainable modules, state the driver
registers, exact resume, and weights handed to a generation backend (LoRA merged)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from tulu.config import ConfigError, load_config
from tulu.train.common import TrainConfig
from tulu.train.engine import Engine, ResumeError, Task


class Regression(Task):
    """Items are (x, y) rows; the policy predicts y, the value head predicts y too (two modules, one loss)."""

    def collate(self, items):
        return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])

    def loss(self, model, batch):
        x, y = batch
        err_p = ((model["policy"](x).squeeze(-1) - y) ** 2).sum()
        err_v = ((model["value"](x).squeeze(-1) - y) ** 2).sum()
        return err_p + err_v, {"policy_err": err_p.detach(), "value_err": err_v.detach()}

    def summarize(self, sums, denominator):
        return {k: v / denominator for k, v in sums.items()}


class Cursor:
    """What an RL driver registers: a prompt cursor and its own RNG."""

    def __init__(self, seed: int):
        self.position = 0
        self.gen = torch.Generator().manual_seed(seed)

    def next_batch(self, n: int):
        self.position += n
        x = torch.randn(n, 3, generator=self.gen)
        return [(row, row.sum()) for row in x]

    def state_dict(self):
        return {"position": self.position, "rng": self.gen.get_state()}

    def load_state_dict(self, state):
        self.position = state["position"]
        self.gen.set_state(state["rng"])


def _modules(seed: int = 0):
    torch.manual_seed(seed)
    return {"policy": nn.Linear(3, 1), "value": nn.Linear(3, 1)}


def rl_like_run(out, batches: int, stop_after: int | None = None, **kw):
    """Generate a batch from the cursor, use it for 2 passes of 2 minibatches, checkpoint at batch boundaries."""
    cfg = TrainConfig(learning_rate=0.05, warmup_ratio=0.0, effective_batch_size=4, per_device_batch_size=2,
                      num_epochs=1, seed=3, checkpoint_every=4, keep_checkpoints=5, **kw)
    engine = Engine(cfg, out, desc="rl")
    mods = _modules()
    engine.prepare(mods, Regression(), lr_scales={"value": 2.0})
    cursor = Cursor(seed=11)
    engine.register_state("cursor", cursor)
    engine.plan(total_steps=batches * 4, fingerprint="rl-test")
    start = engine.begin()
    for b in range(start // 4, batches):
        if stop_after is not None and b == stop_after:
            break  # as if killed here, after the checkpoint of the previous batch
        rollouts = cursor.next_batch(8)
        for _ in range(2):
            for mb in (rollouts[:4], rollouts[4:]):
                engine.step([mb[:2], mb[2:]], denominator=4.0, tokens=4)
        engine.maybe_checkpoint()
    engine.end()
    return engine, mods, cursor, start


def test_two_modules_keep_their_learning_rate_scale(tmp_path):
    engine, _, _, _ = rl_like_run(tmp_path, batches=1)
    last = engine.lr_at(3)  # linear decay: 0.05 x 1/4 at the 4th step
    assert last == pytest.approx(0.0125)
    lrs = sorted({round(g["lr"], 8) for g in engine.optimizer.param_groups})
    assert lrs == pytest.approx([last, 2 * last])
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert rows[2]["policy_err"] < rows[0]["policy_err"] and rows[3]["policy_err"] < rows[1]["policy_err"]  # same data: learnt


def test_registered_state_and_weights_resume_exactly(tmp_path):
    full, full_mods, full_cursor, _ = rl_like_run(tmp_path / "full", batches=3)
    rl_like_run(tmp_path / "part", batches=3, stop_after=2)  # checkpoints after batches 1 and 2, then "dies"
    (tmp_path / "part" / "metrics.jsonl").open("a").write('{"step": 9, "loss": 0}\n{"step": 10')  # killed mid-write
    resumed, mods, cursor, start = rl_like_run(tmp_path / "part", batches=3)
    assert start == 8
    assert cursor.position == full_cursor.position == 24
    assert torch.equal(cursor.gen.get_state(), full_cursor.gen.get_state())
    for name in ("policy", "value"):
        for a, b in zip(resumed.unwrapped_model(name).parameters(), full.unwrapped_model(name).parameters()):
            assert torch.equal(a, b), name
    steps = [json.loads(x)["step"] for x in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))


def test_a_constant_schedule_run_resumes_with_another_length(tmp_path):
    """max_steps changed between the kill and the resume: with a constant learning rate (no warmup) the steps
    taken are the same, so a 2-batch plan continues a 3-batch run's checkpoint and ends with the weights of an
    uninterrupted 2-batch run; with the linear schedule the learning rates differ and the resume is refused."""
    short, short_mods, _, _ = rl_like_run(tmp_path / "short", batches=2, lr_scheduler="constant")
    rl_like_run(tmp_path / "cut", batches=3, stop_after=2, lr_scheduler="constant")  # checkpoint at step 8 of 12
    resumed, mods, _, start = rl_like_run(tmp_path / "cut", batches=2, lr_scheduler="constant")
    assert start == 8 and resumed.global_step == 8
    for name in ("policy", "value"):
        for a, b in zip(resumed.unwrapped_model(name).parameters(), short.unwrapped_model(name).parameters()):
            assert torch.equal(a, b), name
    rl_like_run(tmp_path / "lin", batches=3, stop_after=2)
    with pytest.raises(ResumeError, match="a run of 12 steps, this one plans 8"):
        rl_like_run(tmp_path / "lin", batches=2)
    with pytest.raises(ResumeError, match="not past the new end"):
        rl_like_run(tmp_path / "cut", batches=1, lr_scheduler="constant")  # step 8 > 4


def test_resume_refuses_a_checkpoint_without_the_registered_state(tmp_path):
    rl_like_run(tmp_path, batches=2)
    cfg = TrainConfig(learning_rate=0.05, effective_batch_size=4, per_device_batch_size=2, seed=3)
    engine = Engine(cfg, tmp_path)
    engine.prepare(_modules(), Regression())
    engine.register_state("cursor", Cursor(1))
    engine.register_state("other", Cursor(2))
    engine.plan(total_steps=8, fingerprint="rl-test")
    with pytest.raises(ResumeError, match="no state for 'other'"):
        engine.begin()


def test_step_before_begin_is_an_error(tmp_path):
    engine = Engine(TrainConfig(effective_batch_size=2, per_device_batch_size=2), tmp_path)
    engine.prepare(_modules(), Regression())
    with pytest.raises(RuntimeError, match="begin"):
        engine.step([[(torch.zeros(3), torch.zeros(()))]], 1.0)


def test_generation_state_merges_lora_without_touching_the_adapters(tiny, tmp_path):
    peft = pytest.importorskip("peft")
    model, _ = tiny
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    engine = Engine(TrainConfig(effective_batch_size=1, per_device_batch_size=1), tmp_path)
    engine.prepare(lora, Regression())
    before = {k: v.clone() for k, v in lora.state_dict().items()}
    state = engine.generation_state()

    class Backend:
        def update_weights(self, sd):
            self.sd = sd

    backend = Backend()
    assert engine.sync_weights(backend) >= 0.0
    assert all(torch.equal(v, lora.state_dict()[k]) for k, v in before.items())  # nothing merged in place
    merged = lora.merge_and_unload().state_dict()
    assert set(state) == set(merged) == set(backend.sd)
    for k in merged:
        torch.testing.assert_close(state[k], merged[k], atol=1e-6, rtol=1e-6)


def test_old_recipe_keys_name_the_new_ones(tmp_path):
    from tulu.train.dpo import DPOConfig
    from tulu.train.sft import SFTConfig

    recipe = tmp_path / "old.yaml"
    recipe.write_text("model: {name_or_path: embedded}\n")
    with pytest.raises(ConfigError, match=r"model.name_or_path: this key was renamed; write 'path'"):
        load_config(SFTConfig, recipe)
    with pytest.raises(ConfigError, match=r"override data.max_seq_length: this key was renamed; write 'max_length'"):
        load_config(SFTConfig, None, ["data.max_seq_length=512"])
    recipe.write_text("model: runs/sft/model\n")
    with pytest.raises(ConfigError, match=r"model: is a mapping now; write `model: \{path: runs/sft/model\}`"):
        load_config(DPOConfig, recipe)
    assert load_config(DPOConfig, None, ["model.path=runs/sft/model"]).model.path == "runs/sft/model"


def test_a_step_with_fewer_micro_batches_than_the_accumulation_still_steps(tmp_path):
    """An RL minibatch that lost groups to dynamic sampling hands the engine fewer micro-batches than
    train.effective_batch_size implies. The optimizer must still step, with the same update as an engine whose
    accumulation matches (accelerate counts micro-steps, and would otherwise skip the step silently)."""
    data = Cursor(5).next_batch(2)
    weights = []
    for eff in (4, 2):  # accumulation 2 (one micro-batch given) and accumulation 1
        engine = Engine(TrainConfig(learning_rate=0.1, warmup_ratio=0.0, effective_batch_size=eff,
                                    per_device_batch_size=2, seed=3, lr_scheduler="constant"), tmp_path / str(eff))
        engine.prepare(_modules(), Regression())
        engine.plan(total_steps=1)
        engine.begin()
        record = engine.step([data], denominator=2.0)
        engine.end()
        assert record["grad_norm"] > 0
        weights.append([p.detach().clone() for p in engine.unwrapped_model("policy").parameters()])
    start = list(_modules()["policy"].parameters())
    assert any(not torch.equal(a, s) for a, s in zip(weights[0], start))  # it stepped
    for a, b in zip(*weights):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="more than the 1"):
        engine.step([data[:1], data[1:]], denominator=2.0)
