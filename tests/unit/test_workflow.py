"""The GitHub Actions matrix workflow: its fan-out wiring, and the command its first job runs."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from envkit.cli import main

REPO = Path(__file__).resolve().parent.parent.parent
WORKFLOW = REPO / ".github" / "workflows" / "envkit-matrix.yml"
INIT_MATRIX = REPO / "tests" / "data" / "matrix-init.yaml"
KEYS = {"name", "torch", "torchvision", "cuda", "python", "flavour"}


def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def matrix_step() -> dict:
    return next(s for s in workflow()["jobs"]["matrix"]["steps"] if s.get("id") == "matrix")


def step_command(inputs: dict[str, str]) -> list[str]:
    """The envkit arguments the matrix step runs for these workflow inputs."""
    script = matrix_step()["run"]
    env = matrix_step()["env"]
    line = next(x for x in script.splitlines() if "envkit matrix" in x)
    words = shlex.split(line.split("$(", 1)[1].split('"${args[@]}"')[0])
    assert words[0] == "envkit"
    for option, variable in re.findall(r'args\+=\((--[a-z]+) "\$(\w+)"\)', script):
        value = inputs.get(re.search(r"inputs\.(\w+)", env[variable]).group(1), "")
        if value:
            words += [option, value]
    return words[1:]


def test_triggers_and_inputs():
    # PyYAML reads the bare key `on` as the boolean true.
    triggers = workflow()[True]
    inputs = triggers["workflow_dispatch"]["inputs"]
    assert {"torch", "cuda", "python", "flavour", "gpu_runner"} <= set(inputs)
    assert all(not spec.get("required") for spec in inputs.values())


def test_jobs_fan_out_from_the_matrix_output():
    jobs = workflow()["jobs"]
    outputs = jobs["matrix"]["outputs"]
    assert outputs["all"] == "${{ steps.matrix.outputs.all }}"
    for name, output in (("entry", "all"), ("gpu", "gpu")):
        job = jobs[name]
        assert job["needs"] == "matrix"
        assert job["strategy"]["matrix"] == f"${{{{ fromJSON(needs.matrix.outputs.{output}) }}}}"
        assert job["strategy"]["fail-fast"] is False
        # An empty include list would fail the run; the job is skipped instead.
        assert f"fromJSON(needs.matrix.outputs.{output}).include[0] != null" in job["if"]
        runs = " ".join(step.get("run", "") for step in job["steps"])
        for command in (
            'envkit build "$ENTRY"',
            'envkit doctor "$ENTRY"',
            'envkit bench "$ENTRY" --quick',
        ):
            assert command in runs
    # CPU runners accept a CPU-only doctor result; the GPU job demands a usable GPU.
    cpu_runs = " ".join(step.get("run", "") for step in jobs["entry"]["steps"])
    gpu_runs = " ".join(step.get("run", "") for step in jobs["gpu"]["steps"])
    assert 'envkit doctor "$ENTRY" --allow-cpu' in cpu_runs
    assert "--allow-cpu" not in gpu_runs
    assert jobs["gpu"]["runs-on"] == "${{ inputs.gpu_runner }}"
    assert "inputs.gpu_runner != ''" in jobs["gpu"]["if"]


def test_inputs_reach_the_script_through_env_only():
    script = matrix_step()["run"]
    assert "${{" not in script
    assert "$GITHUB_OUTPUT" in script


def test_matrix_step_command_yields_include_json():
    args = step_command({"torch": ">=2.0"})
    assert args[:3] == ["matrix", "--format", "github"] and "--torch" in args
    result = CliRunner().invoke(main, ["--matrix", str(INIT_MATRIX), *args])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    names = [row["name"] for row in data["include"]]
    assert names == [
        "torch2.8-cuda12.9",
        "torch2.8-cuda12",
        "torch2.8-cpu",
        "torch2.0-cuda11.8",
        "torch2.0-cpu",
    ]
    assert all(set(row) == KEYS for row in data["include"])


def test_matrix_step_with_no_filters_covers_the_shipped_matrix():
    result = CliRunner().invoke(main, step_command({}))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["include"]


@pytest.mark.skipif(shutil.which("jq") is None, reason="jq not installed (GitHub runners have it)")
def test_matrix_step_script_writes_both_outputs(tmp_path):
    envkit = Path(sys.executable).with_name("envkit")
    if not envkit.exists():
        pytest.skip("the envkit console script is not installed beside this Python")
    output = tmp_path / "github_output"
    env = {
        **os.environ,
        "PATH": f"{envkit.parent}{os.pathsep}{os.environ['PATH']}",
        "GITHUB_OUTPUT": str(output),
        "ENVKIT_MATRIX": str(INIT_MATRIX),
        "TORCH": "1.13",
        "CUDA": "",
        "PYTHON": "",
        "FLAVOUR": "",
    }
    done = subprocess.run(
        ["bash", "-e", "-c", matrix_step()["run"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    values = dict(line.split("=", 1) for line in output.read_text().splitlines())
    assert [r["name"] for r in json.loads(values["all"])["include"]] == [
        "torch1.13-cuda11.7",
        "torch1.13-cuda11",
        "torch1.13-cpu",
    ]
    assert [r["cuda"] for r in json.loads(values["gpu"])["include"]] == ["11.7", "11.6"]
