"""bench.py --out: the report file is whole or absent, never written through a link, and a
report that cannot be saved still reaches stdout (the run's results are not lost)."""

from __future__ import annotations

import errno
import json
import os

import pytest

from envkit.inside import bench


@pytest.fixture
def finished_run(monkeypatch):
    """bench.main with the training replaced by a report that passed."""

    def run(args, report):
        report["status"] = "ok"

    monkeypatch.setattr(bench, "run", run)


def test_the_report_is_written_whole(tmp_path, finished_run, capsys):
    out = tmp_path / "bench-x.json"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["status"] == "ok"
    assert [p.name for p in tmp_path.iterdir()] == ["bench-x.json"]


def test_an_out_folder_that_cannot_be_written_still_prints_the_report(
    tmp_path, finished_run, capsys
):
    assert bench.main(["--quick", "--out", str(tmp_path / "gone" / "bench-x.json")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "ok"
    assert "could not write" in captured.err and "stdout only" in captured.err


def test_a_link_at_the_report_is_not_written_through(tmp_path, finished_run, capsys):
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched\n")
    out = tmp_path / "bench-x.json"
    out.symlink_to(outside)
    assert bench.main(["--quick", "--out", str(out)]) == 0
    assert outside.read_text() == "untouched\n"
    assert json.loads(capsys.readouterr().out)["status"] == "ok"


def test_a_full_disk_leaves_no_half_written_report(tmp_path, finished_run, monkeypatch, capsys):
    out = tmp_path / "bench-x.json"

    def no_space(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    assert bench.main(["--quick", "--out", str(out)]) == 0
    assert list(tmp_path.iterdir()) == []
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "ok"
    assert "No space left on device" in captured.err
