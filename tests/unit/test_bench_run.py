"""bench --host plumbing: live progress, time limit, an interpreter that cannot run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from envkit import bench_run, engine
from envkit.cli import main
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


def _container_on_this_host(calls: list):
    """engine.run_program without Docker: bench.py runs here, where torch sees no GPU, as in a
    container whose GPUs were requested but do not reach torch (a GPU in a container is the
    one part these machines cannot have)."""

    def run_program(image, program, args=(), *, gpus=None, extra_files=(), out_dir=None, **_):
        calls.append({"image": image, "gpus": gpus, "args": list(args)})
        here = {"/out": str(out_dir), "/opt/envkit": str(Path(extra_files[0]).parent)}
        mapped = [
            here[a.rsplit("/", 1)[0]] + "/" + a.rsplit("/", 1)[1]
            if a.rsplit("/", 1)[0] in here
            else a
            for a in args
        ]
        done = subprocess.run(
            [sys.executable, str(program), *mapped], capture_output=True, text=True, timeout=600
        )
        return engine.ProgramResult(done.returncode, done.stdout, done.stderr)

    return run_program


@pytest.mark.torch
def test_bench_in_a_cuda_image_with_gpus_fails_instead_of_training_on_the_cpu(
    tmp_path, monkeypatch
):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("torch sees a GPU here: the stand-in container would train on it")
    calls = []
    monkeypatch.setattr(engine, "require_built", lambda ref, name: None)
    monkeypatch.setattr(engine, "run_program", _container_on_this_host(calls))
    result = CliRunner().invoke(
        main,
        ["bench", "torch1.4-cuda10", "--gpus", "all", "--quick", "--json", "--out", str(tmp_path)],
    )
    assert calls[0]["gpus"] == "all"
    assert calls[0]["args"][:2] == ["--device", "cuda"]
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["status"] == "no_gpu"
    assert "device.cuda" in report["failed_checks"]
    assert report["convergence"] is None and report["throughput"] == []  # nothing ran on a CPU
    assert json.loads((tmp_path / "bench-torch1.4-cuda10.json").read_text())["status"] == "no_gpu"


@pytest.mark.parametrize(
    "name, gpus",
    [("torch1.4-cpu", "all"), ("torch1.4-cuda10", "none")],
)
def test_bench_without_gpus_or_for_a_cpu_entry_lets_the_program_choose(
    tmp_path, monkeypatch, name, gpus
):
    calls = []

    def record(image, program, args=(), **settings):
        calls.append({"gpus": settings.get("gpus"), "args": list(args)})
        return engine.ProgramResult(0, "", "")  # no report: the CLI says so and exits 1

    monkeypatch.setattr(engine, "require_built", lambda ref, name: None)
    monkeypatch.setattr(engine, "run_program", record)
    result = CliRunner().invoke(main, ["bench", name, "--gpus", gpus, "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert calls[0]["args"][:2] == ["--device", "auto"]
    assert calls[0]["gpus"] == (None if gpus == "none" else gpus)
