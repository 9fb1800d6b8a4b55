"""2-process DDP on CPU (gloo, launched by torchrun through the real CLI) == 1 process with the same
effective batch, to float tolerance: the same losses at every step and the same final weights."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from sft_helpers import ENV, tiny_dir, write_recipe  # noqa: F401  (fixture)

pytest.importorskip("accelerate")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("reduction", ["sum", pytest.param("mean", marks=pytest.mark.slow)])
def test_two_process_ddp_equals_one_process(tiny_dir, tmp_path, reduction):  # noqa: F811
    kw = dict(effective_batch_size=8, per_device_batch_size=2, num_epochs=1, warmup_ratio=0.0)
    one, two = tmp_path / "one", tmp_path / "two"
    over = [f"loss_reduction={reduction}"]
    r1 = write_recipe(tmp_path / "one.yaml", tiny_dir, one, **kw)
    r2 = write_recipe(tmp_path / "two.yaml", tiny_dir, two, **kw)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
              "--master_port", str(_free_port()), "-m", "tulu.cli", "sft", str(r2), *over]
    p2 = subprocess.Popen(launch, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    p1 = subprocess.Popen([sys.executable, "-m", "tulu.cli", "sft", str(r1), *over], env=ENV,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err1, err2 = p1.communicate(timeout=600)[1], p2.communicate(timeout=600)[1]
    assert p1.returncode == 0, err1
    assert p2.returncode == 0, err2
    assert "1 processes x 4 accumulation x 2" in err1
    assert "2 processes x 2 accumulation x 2" in err2
    l1 = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    l2 = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert len(l1) == len(l2) == 4  # only the main process writes the log
    for a, b in zip(l1, l2):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["target_tokens"] == b["target_tokens"]
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    w1 = load_file(one / "model" / "model.safetensors")
    w2 = load_file(two / "model" / "model.safetensors")
    for k in w1:  # Adam amplifies float-order noise on near-zero gradients a little (see test_loop)
        assert torch.allclose(w1[k], w2[k], atol=3e-5, rtol=1e-5), (k, (w1[k] - w2[k]).abs().max().item())
