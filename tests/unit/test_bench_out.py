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


def _bench_cli(tmp_path, monkeypatch, saves: bool, *args: str):
    """`envkit bench --host` with the run replaced: it saves its report, or cannot."""
    from click.testing import CliRunner

    from envkit import bench_run, report
    from envkit.cli import main

    doc = {"status": "ok", "throughput": []}

    def on_host(out_dir, **kwargs):
        if saves:
            (out_dir / "bench-host.json").write_text(json.dumps(doc, indent=2) + "\n")
        return doc

    monkeypatch.setattr(bench_run, "on_host", on_host)
    monkeypatch.setattr(report, "plot_bench", lambda doc, out_dir, prefix: [])
    monkeypatch.setattr(report, "render_bench", lambda doc: "TABLE")
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    result = CliRunner().invoke(main, ["bench", "--host", "--out", str(out), *args])
    return result, out / "bench-host.json"


def test_the_cli_names_the_report_only_when_it_was_saved(tmp_path, monkeypatch):
    result, path = _bench_cli(tmp_path, monkeypatch, True)
    assert result.exit_code == 0, result.output
    assert f"report: {path}" in result.output and "TABLE" in result.output


def test_a_report_that_could_not_be_saved_goes_to_stdout_and_the_cli_says_so(tmp_path, monkeypatch):
    result, path = _bench_cli(tmp_path, monkeypatch, False)
    assert result.exit_code == 0, result.output
    assert f"report: {path}" not in result.output
    assert f"not saved to {path}" in result.output and "on stdout" in result.output
    assert json.loads(result.stdout)["status"] == "ok"  # the results are not lost


def test_a_stale_report_from_an_earlier_run_does_not_count_as_saved(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "bench-host.json").write_text('{"status": "failed"}\n')
    result, path = _bench_cli(tmp_path, monkeypatch, False)
    assert f"not saved to {path}" in result.output
