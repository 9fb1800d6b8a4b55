from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from tulu.config import ConfigError, format_help, load_config, option


@dataclass
class Inner:
    learning_rate: float = option(5e-6, "peak LR")
    schedule: Literal["linear", "cosine"] = option("linear", "LR schedule")


@dataclass
class Outer:
    model: str = option("embedded", "model")
    epochs: int = option(2, "epochs")
    bf16: bool = option(False, "bf16")
    mixture: dict[str, float] = option(default_factory=dict, help="dataset -> weight")
    tags: list[str] = option(default_factory=list, help="tags")
    train: Inner = field(default_factory=Inner, metadata={"help": "training"})


def test_yaml_plus_overrides(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("model: foo\ntrain:\n  learning_rate: 1e-5\nmixture:\n  a.jsonl: 0.5\n")
    cfg = load_config(Outer, p, ["epochs=3", "train.schedule=cosine", "tags=[x, y]", "bf16=true"])
    assert cfg.model == "foo" and cfg.epochs == 3 and cfg.bf16 is True
    assert cfg.train.learning_rate == 1e-5 and cfg.train.schedule == "cosine"
    assert cfg.mixture == {"a.jsonl": 0.5} and cfg.tags == ["x", "y"]


@pytest.mark.parametrize(
    "yaml_text, overrides, match",
    [
        ("modle: x\n", [], r"r\.yaml: unknown key 'modle' for Outer"),
        ("", ["train.lr=1"], r"unknown key 'train\.lr'"),
        ("epochs: two\n", [], r"r\.yaml: epochs: expected an integer, got 'two'"),
        ("", ["train.schedule=step"], r"train\.schedule: 'step' is not one of 'linear', 'cosine'"),
        ("", ["bf16=yes please"], r"bf16: expected true/false"),
        ("train: 3\n", [], r"train: expected a mapping of Inner fields"),
        ("", ["epochs"], r"expected key=value"),
        ("a: [1, 2\n", [], r"r\.yaml:\d+: invalid YAML"),
    ],
)
def test_errors_name_the_key_or_file(tmp_path, yaml_text, overrides, match):
    p = tmp_path / "r.yaml"
    p.write_text(yaml_text)
    with pytest.raises(ConfigError, match=match):
        load_config(Outer, p, overrides)


def test_missing_file():
    with pytest.raises(ConfigError, match="nope.yaml: recipe file not found"):
        load_config(Outer, "nope.yaml")


def test_help_lists_every_field():
    text = format_help(Outer)
    for key in ("model", "epochs", "train.learning_rate", "train.schedule", "mixture"):
        assert key in text
    assert "peak LR" in text


def test_a_nested_block_starts_from_its_owners_defaults(tmp_path):
    """DPO's train: block starts from DPO's defaults (lr 5e-7, warmup 0.1, gradient checkpointing), not from
    TrainConfig's SFT numbers; the keys a recipe gives replace those one by one."""
    from tulu.config import describe
    from tulu.train.dpo import DPOConfig

    recipe = tmp_path / "dpo.yaml"
    recipe.write_text("train: {learning_rate: 1.0e-6}\n")
    cfg = load_config(DPOConfig, recipe)
    assert cfg.train.learning_rate == 1e-6
    assert cfg.train.warmup_ratio == 0.1 and cfg.train.gradient_checkpointing is True
    assert load_config(DPOConfig, None, ["train.seed=7"]).train.warmup_ratio == 0.1
    assert load_config(DPOConfig, None, ["dpo.rpo_alpha=1.0"]).dpo.rpo_alpha == 1.0
    with pytest.raises((ValueError, ConfigError), match="dpo.rpo_alpha: must be >= 0"):
        load_config(DPOConfig, None, ["dpo.rpo_alpha=-1"])
    rows = {key: default for key, _, default, _ in describe(DPOConfig)}
    assert rows["train.learning_rate"] == "5e-07" and rows["train.warmup_ratio"] == "0.1"
