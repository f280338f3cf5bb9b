"""bench --host plumbing: live progress, time limit, an interpreter that cannot run."""

from __future__ import annotations

import pytest

from envkit import bench_run
from envkit.errors import BadInput, CheckFailed, ProgramTimedOut


def fake_python(tmp_path, body: str):
    """A stand-in interpreter: a shell script that ignores bench.py and does `body`."""
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_progress_lines_arrive_and_the_report_is_parsed(tmp_path):
    python = fake_python(
        tmp_path,
        "echo '[bench] epoch 1/2' >&2\necho '[bench] epoch 2/2' >&2\n"
        'echo \'{"status": "ok", "schema": 1}\'\n',
    )
    seen = []
    doc = bench_run.on_host(tmp_path / "out", quick=True, python=python, on_progress=seen.append)
    assert doc == {"status": "ok", "schema": 1}
    assert seen == ["[bench] epoch 1/2", "[bench] epoch 2/2"]


def test_a_benchmark_past_its_limit_is_stopped(tmp_path):
    python = fake_python(tmp_path, "echo started >&2\nexec sleep 60\n")
    with pytest.raises(ProgramTimedOut, match="did not finish within 1s"):
        bench_run.on_host(tmp_path / "out", quick=True, python=python, timeout=1)


def test_an_interpreter_that_cannot_run_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="cannot run"):
        bench_run.on_host(tmp_path / "out", quick=True, python=str(tmp_path / "no-python"))


def test_no_report_shows_the_end_of_stderr(tmp_path):
    python = fake_python(tmp_path, "echo 'Traceback: boom' >&2\nexit 1\n")
    with pytest.raises(CheckFailed, match="Traceback: boom"):
        bench_run.on_host(tmp_path / "out", quick=True, python=python)


def test_missing_torch_is_named(tmp_path):
    python = fake_python(
        tmp_path, "echo \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n"
    )
    with pytest.raises(CheckFailed, match="torch is not importable"):
        bench_run.on_host(tmp_path / "out", quick=True, python=python)


def test_a_failing_progress_printer_does_not_stall_the_benchmark(tmp_path):
    # 20,000 lines overflow any pipe buffer: if the reader stopped, the benchmark would block.
    python = fake_python(
        tmp_path,
        'i=0; while [ $i -lt 20000 ]; do echo "[bench] line $i" >&2; i=$((i+1)); done\n'
        'echo \'{"status": "ok"}\'\n',
    )

    def broken(line):
        raise BrokenPipeError("stderr is closed")

    doc = bench_run.on_host(
        tmp_path / "out", quick=True, python=python, on_progress=broken, timeout=60
    )
    assert doc == {"status": "ok"}


def test_an_out_folder_that_cannot_be_made_is_bad_input(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(BadInput, match="cannot make folder"):
        bench_run.on_host(blocker / "sub", quick=True, python=fake_python(tmp_path, "exit 0\n"))
