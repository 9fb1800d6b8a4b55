from __future__ import annotations

import os

import pytest

from tulu.utils import atomic_path, atomic_write_json, stable_hash


def test_atomic_write_replaces_and_uses_normal_permissions(tmp_path):
    p = tmp_path / "out.json"
    atomic_write_json(p, {"a": 1})
    umask = os.umask(0)
    os.umask(umask)
    assert p.read_text().strip() == '{\n  "a": 1\n}'
    assert (p.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_failed_write_leaves_old_file_and_no_temp(tmp_path):
    p = tmp_path / "out.txt"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["out.txt"]


def test_stable_hash_is_order_insensitive_for_dict_keys():
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1}) != stable_hash({"a": 2, "b": 1})


def test_hidden_progress_logs_every_tenth_with_rate_and_eta(monkeypatch, caplog):
    import logging

    from tulu.utils import progress

    monkeypatch.setenv("TULU_PROGRESS", "0")
    with caplog.at_level(logging.INFO, logger="tulu.progress"):
        bar = progress(total=50, desc="gsm8k", unit="item")
        for _ in range(25):
            bar.update(2)
        bar.close()
        items = list(progress(range(7), desc="records", unit="rec"))
    lines = [r.getMessage() for r in caplog.records if r.name == "tulu.progress"]
    assert items == list(range(7))
    gsm = [m for m in lines if m.startswith("gsm8k:")]
    assert len(gsm) == 10 and gsm[-1].startswith("gsm8k: 50/50 item (100%)") and "ETA" in gsm[0]
    assert [m for m in lines if m.startswith("records:")][-1].startswith("records: 7/7 rec (100%)")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tulu.progress"):
        quiet = progress(total=10, desc="train", log_hidden=False)
        quiet.update(10)
    assert not [r for r in caplog.records if r.name == "tulu.progress"] and quiet.disable
