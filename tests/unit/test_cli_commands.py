"""The command table: each command is imported only when used, every one answers --help, and
the decisions the commands hand to the services (what to build, bench's words and device)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from envkit import bench_run, matrix
from envkit import build as builder
from envkit.cli import COMMANDS, main
from envkit.errors import BadInput
from envkit.project import Project

HEAVY = ("docker", "torch", "envkit.doctor", "envkit.build", "envkit.engine")


def _imported_after(args: list[str]) -> list[str]:
    """The heavy modules and command modules that running `envkit ARGS` imported."""
    code = (
        "import sys; from click.testing import CliRunner; from envkit.cli import main; "
        f"r = CliRunner().invoke(main, {args!r}); assert r.exit_code == 0, r.output; "
        f"print(sorted(m for m in sys.modules if m in {HEAVY!r} or m.startswith('envkit.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.replace("'", '"'))


def test_help_imports_no_command_and_nothing_heavy():
    assert _imported_after(["--help"]) == ["envkit.cli.options"]


def test_a_command_imports_its_own_module_only():
    assert _imported_after(["list", "--cuda", "cpu"]) == [
        "envkit.cli.entries",
        "envkit.cli.options",
    ]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_answers_help(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f"Usage: main {name} " in result.output


def test_the_table_names_each_command_and_lists_it_as_click_would():
    ctx = click.Context(main)
    for name in COMMANDS:
        assert main.get_command(ctx, name).name == name
    for width in (50, 80, 120, 240):
        lazy, eager = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
        main.format_commands(ctx, lazy)
        click.Group.format_commands(main, ctx, eager)  # Click's own, from the loaded commands
        assert lazy.getvalue() == eager.getvalue(), width


def test_an_unknown_command_is_bad_usage():
    result = CliRunner().invoke(main, ["biuld"])
    assert result.exit_code == 2 and "No such command 'biuld'" in result.output


# ----------------------------------------------------------------------------- the services


def test_bench_words_are_read_as_before():
    assert bench_run.read_request(["compare", "a.json", "b.json"], on_host=False).compare == (
        "a.json",
        "b.json",
    )
    assert bench_run.read_request(["torch1.4-cpu"], on_host=False).entry == "torch1.4-cpu"
    on_host = bench_run.read_request([], on_host=True)
    assert on_host.entry is None and on_host.compare is None
    for args, host in (([], False), (["a"], True), (["a", "b"], False), (["compare"], False)):
        with pytest.raises(BadInput):
            bench_run.read_request(args, on_host=host)


def test_bench_compare_prints_both_reports_side_by_side(tmp_path):
    def report(images_per_s):
        row = {
            "model": "resnet18",
            "precision": "fp32",
            "channels_last": False,
            "batch": 8,
            "images_per_s": images_per_s,
            "ms_per_step": 1000 * 8 / images_per_s,
            "peak_mem_mb": 100.0,
            "oom": False,
        }
        return {"schema": 1, "status": "ok", "throughput": [row], "convergence": None}

    a, b = tmp_path / "slow.json", tmp_path / "fast.json"
    a.write_text(json.dumps(report(100.0)))
    b.write_text(json.dumps(report(200.0)))
    result = CliRunner().invoke(main, ["bench", "compare", str(a), str(b), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["images_per_s"] == {"a": 100.0, "b": 200.0, "ratio": 2.0}
    table = CliRunner().invoke(main, ["bench", "compare", str(a), str(b)])
    assert table.exit_code == 0 and "img/s slow.json" in table.output and "2.000x" in table.output


def test_gpus_given_to_a_cuda_build_must_be_used():
    entries = matrix.load()
    cuda, cpu = entries.get("torch1.4-cuda10"), entries.get("torch1.4-cpu")
    assert bench_run.devices_for("all", cuda) == ("all", "cuda", None)
    assert bench_run.devices_for("0,1", cuda).device == "cuda"
    assert bench_run.devices_for("none", cuda) == (None, "auto", None)
    assert bench_run.devices_for("all", cpu) == ("all", "auto", None)


def test_what_build_builds_without_names(tmp_path):
    with pytest.raises(BadInput, match="--all builds every entry"):
        builder.requested_project(("a",), True, False, tmp_path)
    with pytest.raises(BadInput, match="name an entry to build"):
        builder.requested_project((), False, False, tmp_path)
    assert builder.requested_project(("a",), False, False, tmp_path) is None
    assert builder.requested_project((), False, True, tmp_path) is None
    (tmp_path / "envkit.yaml").write_text("entry: torch1.4-cpu\n")
    assert builder.requested_project((), False, False, tmp_path).entry == "torch1.4-cpu"
    assert builder.requested_project((), True, False, tmp_path) is None


def test_build_requested_builds_the_locked_entry_or_the_project_or_all(monkeypatch, tmp_path):
    from envkit import lock

    calls, shown = [], []
    done = builder.BuildResult("x", "built", "envkit/x", "abc")

    def record(kind):
        return lambda *args, **kw: calls.append(kind) or [done]

    monkeypatch.setattr(builder, "build_many", record("many"))
    monkeypatch.setattr(builder, "build_project", record("project"))
    monkeypatch.setattr(lock, "read_lock", lambda path: calls.append(path))
    monkeypatch.setattr(lock, "build_locked", lambda *args: calls.append("locked") or done)
    monkeypatch.setattr(
        lock, "build_project_locked", lambda *args: calls.append("project locked") or [done]
    )
    monkeypatch.setattr(lock, "build_project_as_of", record("project as of"))
    entries = [matrix.load().get("torch1.4-cpu")]
    options = builder.BuildOptions()
    project = Project("envkit.yaml", "torch1.4-cpu", ("attrs",))
    dated = replace(project, as_of="2020-06-01")
    builder.build_requested(entries, options, on_result=shown.append)
    builder.build_requested(entries, options, project=project, on_result=shown.append)
    # With as_of the project's packages are resolved as of that day.
    builder.build_requested(entries, options, project=dated, on_result=shown.append)
    locked = tmp_path / "envkit.lock"
    builder.build_requested(entries, options, lock_path=locked, on_result=shown.append)
    # In a project folder --locked builds the project image from its lock, not the entry alone.
    builder.build_requested(
        entries, options, project=dated, lock_path=locked, on_result=shown.append
    )
    assert calls == ["many", "project", "project as of", locked, "locked", "project locked"]
    assert shown == [done, done, done, done]  # build_many reports each result itself
    with pytest.raises(BadInput, match="--locked builds exactly one entry"):
        builder.build_requested(entries * 2, options, lock_path=Path("envkit.lock"))
