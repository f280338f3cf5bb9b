"""The CLI as a user runs it: list, show, matrix, dockerfile, version, help, speed of start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from envkit import __version__
from envkit.cli import main

REQUIRED = {
    "name",
    "aliases",
    "torch",
    "torchvision",
    "cuda",
    "cudnn",
    "python",
    "flavour",
    "base_image",
}


def invoke(*args):
    return CliRunner().invoke(main, list(args))


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_help_documents_exit_codes_and_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for word in ("list", "build", "check", "dockerfile", "matrix", "show", "Exit codes"):
        assert word in result.output


def test_list_json_has_required_fields():
    result = invoke("list", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert rows and all(REQUIRED <= set(row) for row in rows)


def test_list_filters():
    rows = json.loads(invoke("list", "--json", "--torch", ">=1.4,<1.6").output)
    assert rows and {r["torch"][:3] for r in rows} <= {"1.4", "1.5"}
    rows = json.loads(invoke("list", "--json", "--cuda", "10").output)
    assert rows and all(r["cuda"].startswith("10.") for r in rows)
    table = invoke("list", "--cuda", "cpu")
    assert table.exit_code == 0 and "NAME" in table.output and "cpu" in table.output


def test_bad_filter_is_exit_2():
    result = invoke("list", "--torch", ">>1")
    assert result.exit_code == 2 and "not a version specifier" in result.output


def test_user_quoted_rows_exist_and_are_right():
    expect = {
        "torch1.1-cuda9": ("1.1.0", "0.3.0", "9.0"),
        "torch1.2-cuda10": ("1.2.0", "0.4.0", "10.0"),
        "torch1.3-cuda10": ("1.3.1", "0.4.2", "10.1"),
        "torch1.4-cuda10": ("1.4.0", "0.5.0", "10.1"),
    }
    for name, (torch, vision, cuda) in expect.items():
        data = json.loads(invoke("show", name, "--json").output)
        assert (data["torch"], data["torchvision"], data["cuda"]) == (torch, vision, cuda), name
    alias = json.loads(invoke("show", "torch1.4.0-cu101", "--json").output)
    assert alias["name"] == "torch1.4-cuda10" and alias["cudnn"].startswith("7.")


def test_show_unknown_suggests():
    result = invoke("show", "torch1.4-cuda01")
    assert result.exit_code == 2 and "did you mean" in result.output


def test_matrix_github_is_strategy_json():
    result = invoke("matrix", "--format", "github", "--cuda", "cpu")
    data = json.loads(result.output)
    assert result.exit_code == 0 and data["include"]
    assert all(row["cuda"] == "cpu" and row["name"] for row in data["include"])


def test_dockerfile_prints_the_rendering():
    result = invoke("dockerfile", "torch1.4-cuda10")
    assert result.exit_code == 0
    assert "ARG BASE_IMAGE=python:3." in result.output and "torch==1.4.0" in result.output


def test_shipped_matrix_is_clean():
    result = invoke("check")
    assert result.exit_code == 0, result.output


def test_start_does_not_import_torch_or_docker():
    code = (
        "import sys; from click.testing import CliRunner; from envkit.cli import main; "
        "r = CliRunner().invoke(main, ['list']); assert r.exit_code == 0, r.output; "
        "print(sorted(m for m in ('torch', 'docker') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_bench_usage_errors_are_exit_2(tmp_path):
    assert invoke("bench").exit_code == 2
    assert invoke("bench", "a", "--host").exit_code == 2
    result = invoke("bench", "compare", "only-one.json")
    assert result.exit_code == 2 and "two reports" in result.output
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    result = invoke("bench", "compare", str(bad), str(bad))
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_live_build_progress_redraws_one_line_on_a_terminal(capsys):
    """Build progress on a terminal: steps redrawn in place, result printed, no thread left."""
    from envkit.build import BuildResult
    from envkit.cli.building import BuildProgress
    from envkit.engine import BuildEvent

    progress = BuildProgress(live=True)
    progress.event("torch1.4-cuda10", BuildEvent("step", "RUN pip install torch", 3, 7))
    progress.event("torch1.4-cuda10", BuildEvent("log", "Collecting torch"))
    progress.done(
        BuildResult("torch1.4-cuda10", "built", "envkit/torch1.4-cuda10", "abc123", seconds=2.5)
    )
    progress.close()
    err = capsys.readouterr().err
    # click drops the erase-line escape when stderr is not a terminal; the carriage return stays
    assert "\rtorch1.4-cuda10 step 3/7: RUN pip install torch (0s)" in err
    assert "Collecting torch" not in err  # log lines go to the build log, not the status line
    assert "torch1.4-cuda10: built in 2.50s -> envkit/torch1.4-cuda10:latest" in err
    assert not progress.ticker.is_alive()


def test_blank_filters_are_bad_input_not_a_crash():
    for option in ("--torch", "--cuda", "--python"):
        for value in ("", "  "):
            result = invoke("list", option, value)
            assert result.exit_code == 2, (option, value, result.output)
            assert f"{option} is empty" in result.output
            assert "Traceback" not in result.output


def test_cuda_filter_spellings():
    def cudas(value):
        result = invoke("list", "--cuda", value, "--json")
        assert result.exit_code == 0, result.output
        return sorted({e["cuda"] for e in json.loads(result.output)})

    assert cudas("cu92") == cudas("92") == cudas("9.2") == ["9.2"]
    assert cudas("cu101") == cudas("101") == ["10.1"]
    assert cudas("10") == cudas("cuda10") == ["10.0", "10.1", "10.2"]


def test_filters_that_match_nothing_or_are_malformed_exit_2():
    for args in (["list", "--cuda", "99"], ["matrix", "--cuda", "8.0", "--python", "3.6"]):
        result = invoke(*args)
        assert result.exit_code == 2, result.output
        assert "no entry matches" in result.output and "--cuda" in result.output
    for value in ("3.x", "3.8.10", "three"):
        result = invoke("list", "--python", value)
        assert result.exit_code == 2 and "is not a version like 3.8" in result.output


def test_repeated_torch_filters_narrow_and_bare_versions_mean_release_lines():
    def torches(*args):
        result = invoke("list", *args, "--json")
        assert result.exit_code == 0, result.output
        return sorted({e["torch"] for e in json.loads(result.output)})

    assert torches("--torch", ">=1.4", "--torch", "<1.6") == ["1.4.0", "1.5.1"]
    assert torches("--torch", ">=1.4,<1.6") == ["1.4.0", "1.5.1"]
    assert torches("--torch", "1.4, >=1.4.0") == ["1.4.0"]
    assert invoke("list", "--torch", ",").exit_code == 2


def test_doctor_host_and_static_together_is_bad_usage():
    result = invoke("doctor", "--host", "--static")
    assert result.exit_code == 2 and "pick one" in result.output


def test_show_json_has_the_driver_and_arch_keys_for_cpu_entries_too():
    data = json.loads(invoke("show", "torch1.4-cpu", "--json").output)
    assert data["min_driver"] is None and data["arch_list"] is None
    assert data["min_driver_compat"] is None and data["libraries_max_capability"] is None
    data = json.loads(invoke("show", "torch1.4-cuda10", "--json").output)
    assert data["min_driver"] == "418.39" and "sm_75" in data["arch_list"]
    assert data["min_driver_compat"] is None  # no minor-version compatibility before CUDA 11
    assert data["libraries_max_capability"] == "7.5"  # cuBLAS/cuDNN linked in, no PTX
    data = json.loads(invoke("show", "torch2.14-cuda13", "--json").output)
    assert data["min_driver_compat"] == "580"
    assert data["libraries_max_capability"] is None  # separate nvidia-* packages


def test_build_refuses_names_with_all():
    result = invoke("build", "torch1.4-cuda10", "--all")
    assert result.exit_code == 2
    assert "--all builds every entry" in result.output


def test_build_warns_when_an_entry_breaks_a_matrix_rule(monkeypatch):
    from pathlib import Path

    from envkit import build as builder

    built = []
    monkeypatch.setattr(builder, "build_many", lambda entries, *rest: built.extend(entries) or [])
    bad = Path(__file__).resolve().parent.parent / "data" / "bad" / "rule-torchvision-pair.yaml"
    result = invoke("--matrix", str(bad), "build", "torch1.4-cuda10")
    assert [e.name for e in built] == ["torch1.4-cuda10"]  # warned, then built all the same
    assert result.exit_code == 0, result.output
    assert "warning: torch1.4-cuda10 breaks a matrix rule: " in result.output
    assert (
        "torchvision 0.6.0 does not pair with torch 1.4.0 — use torchvision 0.5.0" in result.output
    )
    shipped = invoke("build", "torch1.4-cuda10")  # the shipped matrix breaks no rule
    assert "breaks a matrix rule" not in shipped.output


BUILD_LOG = Path(__file__).resolve().parent.parent / "data" / "build-logs"


def test_a_build_says_when_a_large_wheel_downloads_and_when_the_image_is_exported():
    """From the plain BuildKit log of a real torch 1.4 build: torch's 753 MB download, pip's
    install and the export each become a phase; the small wheels do not."""
    import re

    from envkit.engine import build_phase

    text = (BUILD_LOG / "torch1.4-cuda10-pip-and-export.log").read_text()
    lines = [re.sub(r"^#\d+ (?:\d+\.\d+ )?", "", line) for line in text.splitlines()]
    phases = [p for p in map(build_phase, lines) if p]
    assert phases == [
        "downloading torch-1.4.0-cp38-cp38-manylinux1_x86_64.whl (753.4 MB)",
        "installing 3 packages",
        "installing 3 packages",
        "exporting the image",
    ]
    assert build_phase("  Downloading nvidia_cudnn_cu12-9.1.0.70-py3-none-any.whl (1.2 GB)")
    assert build_phase("  Downloading six-1.17.0-py2.py3-none-any.whl (11 kB)") is None


def test_build_progress_shows_phases_within_their_step(capsys):
    from envkit.cli.building import BuildProgress
    from envkit.engine import BuildEvent

    progress = BuildProgress(live=False)
    progress.event("torch1.4-cuda10", BuildEvent("step", "RUN pip install torch", 3, 5))
    progress.event("torch1.4-cuda10", BuildEvent("phase", "downloading torch-1.4.0.whl (753.4 MB)"))
    progress.event("torch1.4-cuda10", BuildEvent("step", "exporting to image", 5, 5))
    progress.event("torch1.4-cuda10", BuildEvent("phase", "exporting the image"))
    progress.close()
    err = capsys.readouterr().err.splitlines()
    assert err[1].startswith("[torch1.4-cuda10] step 3/5 (")
    assert err[1].endswith("downloading torch-1.4.0.whl (753.4 MB)")
    assert err[3].endswith("exporting the image") and "step 5/5" in err[3]
