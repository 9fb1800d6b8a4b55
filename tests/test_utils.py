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
