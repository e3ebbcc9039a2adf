"""What a kill -9 between an atomic write's temp and its rename leaves, and its removal."""

from __future__ import annotations

from pathlib import Path

from demix.util.io import remove_orphaned_temps, write_json_atomic


def test_orphaned_temps_go_and_nothing_else(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "export" / "plan.json", {"a": 1})
    orphan_file = tmp_path / "export" / ".hf_interleave.py.ylkmctlx.tmp"
    orphan_file.write_text("half")
    orphan_dir = tmp_path / "models" / ".base.abc123.tmp"
    (orphan_dir / "sub").mkdir(parents=True)
    keep = [tmp_path / "models" / ".base.old", tmp_path / "export" / "notes.tmp", tmp_path / ".stages"]
    for p in keep:
        p.mkdir(parents=True) if p.suffix != ".tmp" else p.write_text("mine")
    gone = remove_orphaned_temps(tmp_path)
    assert sorted(gone) == sorted([orphan_file, orphan_dir])
    assert not orphan_file.exists() and not orphan_dir.exists()
    assert all(p.exists() for p in keep) and (tmp_path / "export" / "plan.json").read_text()
    assert remove_orphaned_temps(tmp_path) == []
