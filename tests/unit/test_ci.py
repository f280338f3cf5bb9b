"""envkit ci init: the project workflow it writes, linted; and every workflow's actions on a
runtime GitHub still runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from envkit.cli import main

REPO = Path(__file__).resolve().parent.parent.parent
OWN_WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
TEMPLATE = REPO / "envkit" / "templates" / "github-workflow.yml"
CHECK_JSONSCHEMA = shutil.which("check-jsonschema") or shutil.which(
    "check-jsonschema", path=str(Path(sys.executable).parent)
)

# The oldest major of each action that runs on node24. GitHub scheduled the node20 actions for
# removal from its runners on 2026-09-23; the majors below moved to node24 in:
# actions/checkout v5 (actions/checkout#2248), actions/setup-python v6 (actions/setup-python#1164),
# docker/setup-buildx-action v4 and docker/login-action v4 (docker/setup-buildx-action#483,
# 2026-03-03, and its siblings), actions/upload-artifact v6 (its v6.0.0 release notes: "now runs
# on Node.js 24"; v5 only supported it). Anything older runs on node20 or earlier. An action missing
# here fails the test: look its runtime up before adding it.
NODE24_SINCE = {
    "actions/checkout": 5,
    "actions/setup-python": 6,
    "docker/setup-buildx-action": 4,
    "docker/login-action": 4,
    "actions/upload-artifact": 6,
}
USES = re.compile(r"uses:\s*([\w.-]+/[\w.-]+)@v(\d+)")


def project(tmp_path: Path, text: str = "entry: torch1.4-cuda10\n") -> Path:
    (tmp_path / "envkit.yaml").write_text(text)
    return tmp_path


def ci_init(folder: Path, *args: str):
    return CliRunner().invoke(main, ["ci", "init", str(folder), *args])


def workflow(folder: Path) -> dict:
    return yaml.safe_load((folder / ".github" / "workflows" / "envkit.yml").read_text())


def step(data: dict, name: str) -> dict:
    return next(s for s in data["jobs"]["stack"]["steps"] if s.get("name") == name)


def test_init_writes_a_matrix_over_the_declared_stacks(tmp_path):
    folder = project(tmp_path)
    result = ci_init(folder, "--stack", "torch2.13-cpu", "--stack", "torch1.4-cuda10", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["entries"] == ["torch1.4-cuda10", "torch2.13-cpu"]
    data = workflow(folder)
    job = data["jobs"]["stack"]
    assert job["strategy"]["matrix"]["entry"] == ["torch1.4-cuda10", "torch2.13-cpu"]
    assert job["strategy"]["fail-fast"] is False
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    for command in (
        'envkit bake "$ENTRY"',
        '--set "*.cache-from=type=registry,ref=$cache"',
        "docker buildx use default",
        "envkit build",
        'envkit doctor "$ENTRY" --allow-cpu',
        "envkit bench . --quick",
        "envkit run . -- python -m pytest",
    ):
        assert command in runs
    assert data["env"]["ENVKIT_INSTALL"].startswith("envkit==")
    # The GPU job is there for a self-hosted runner, commented out.
    text = (folder / ".github" / "workflows" / "envkit.yml").read_text()
    assert "#   runs-on: [self-hosted, gpu]" in text and "gpu" not in data["jobs"]


def test_the_test_command_comes_from_the_option_then_envkit_yaml(tmp_path):
    folder = project(tmp_path, 'entry: torch1.4-cpu\ntest: pytest -q -k "not slow"\n')
    assert ci_init(folder).exit_code == 0
    run = step(workflow(folder), "tests in the image")["run"]
    assert run.strip() == 'envkit run . -- pytest -q -k "not slow"'
    assert ci_init(folder, "--force", "--test", "make test # all").exit_code == 0
    assert step(workflow(folder), "tests in the image")["run"].strip().endswith("make test # all")


def test_init_refuses_to_overwrite_without_force(tmp_path):
    folder = project(tmp_path)
    assert ci_init(folder).exit_code == 0
    path = folder / ".github" / "workflows" / "envkit.yml"
    path.write_text("# mine\n")
    again = ci_init(folder)
    assert again.exit_code == 2 and "--force" in again.output
    assert path.read_text() == "# mine\n"
    assert ci_init(folder, "--force").exit_code == 0
    assert "envkit bake" in path.read_text()
    assert [p.name for p in path.parent.iterdir()] == ["envkit.yml"]  # no temp file left


def test_init_needs_a_project_and_known_stacks(tmp_path):
    none = ci_init(tmp_path)
    assert none.exit_code == 2 and "envkit init" in none.output
    folder = project(tmp_path)
    bad = ci_init(folder, "--stack", "torch9.9-cpu")
    assert bad.exit_code == 2 and "torch9.9-cpu" in bad.output
    assert not (folder / ".github").exists()


def test_the_stack_step_points_envkit_yaml_at_the_matrix_entry(tmp_path):
    folder = project(tmp_path, "# mine\nentry: torch1.4-cuda10\nrequirements: [tqdm]\n")
    assert ci_init(folder, "--stack", "torch2.13-cpu").exit_code == 0
    script = step(workflow(folder), "point envkit.yaml at this stack")["run"]
    env = {**os.environ, "ENTRY": "torch2.13-cpu"}
    subprocess.run(["bash", "-e", "-c", script], cwd=folder, env=env, check=True)
    assert (folder / "envkit.yaml").read_text() == (
        "# mine\nentry: torch2.13-cpu\nrequirements: [tqdm]\n"
    )


@pytest.mark.skipif(
    CHECK_JSONSCHEMA is None, reason="check-jsonschema is not installed (pip install -e .[dev])"
)
def test_workflows_pass_the_github_workflow_schema(tmp_path):
    folder = project(tmp_path)
    assert ci_init(folder, "--stack", "torch2.13-cpu").exit_code == 0
    files = [folder / ".github" / "workflows" / "envkit.yml", *OWN_WORKFLOWS]
    done = subprocess.run(
        [CHECK_JSONSCHEMA, "--builtin-schema", "vendor.github-workflows", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", [TEMPLATE, *OWN_WORKFLOWS], ids=lambda p: p.name)
def test_every_action_runs_on_node24(path):
    # Commented-out jobs count too: someone will uncomment them.
    used = USES.findall(path.read_text())
    assert used, f"{path} uses no versioned action"
    for action, major in used:
        assert action in NODE24_SINCE, f"{path}: {action} is not known to run on node24"
        assert int(major) >= NODE24_SINCE[action], (
            f"{path}: {action}@v{major} runs on node20 or older; use "
            f"@v{NODE24_SINCE[action]} or newer"
        )


def test_the_node24_check_catches_node20_majors(tmp_path):
    old = tmp_path / "old.yml"
    old.write_text("steps:\n  - uses: actions/checkout@v4\n  - uses: actions/setup-python@v5\n")
    with pytest.raises(AssertionError, match="actions/checkout@v4 runs on node20"):
        test_every_action_runs_on_node24(old)


@pytest.mark.skipif(
    subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0
    if shutil.which("docker")
    else True,
    reason="docker buildx is not installed",
)
def test_the_bake_step_options_are_accepted_by_buildx(tmp_path):
    # `bake --print` parses the file and the --set overrides without building anything.
    folder = project(tmp_path)
    assert ci_init(folder).exit_code == 0
    out = tmp_path / "bake" / "docker-bake.json"
    assert CliRunner().invoke(main, ["bake", "torch1.4-cuda10", "-o", str(out)]).exit_code == 0
    script = step(workflow(folder), "entry image (buildx bake, registry layer cache)")["run"]
    line = next(x for x in script.splitlines() if x.startswith("cache="))
    sets = re.findall(r'--set "([^"]+)"', script)
    env = {**os.environ, "GITHUB_REPOSITORY": "Someone/Project", "ENTRY": "torch1.4-cuda10"}
    command = f'{line}; docker buildx bake -f "{out}" --print ' + " ".join(
        f'--set "{s}"' for s in sets
    )
    done = subprocess.run(
        ["bash", "-c", command], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    target = json.loads(done.stdout)["target"]["torch1_4-cuda10"]
    ref = "ghcr.io/someone/project/envkit-cache:torch1.4-cuda10"
    assert any(ref in str(c) for c in target["cache-from"])
    assert any("ignore-error=true" in str(c) for c in target["cache-to"])
