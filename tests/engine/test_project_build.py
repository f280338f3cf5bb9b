"""Project images from envkit.yaml: built on the entry's image, cached, used by envkit run."""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import pytest
from conftest import CI_MATRIX, DOCKER, cpu_source, run_envkit

pytestmark = pytest.mark.docker


def test_project_image_builds_on_the_entry_and_runs(cpu_image, cpu_wheelhouse, tmp_path):
    # A fresh folder name each run: the project image's repository is named after it.
    name = f"proj-{uuid.uuid4().hex[:8]}"
    project = tmp_path / name
    project.mkdir()
    (project / "requirements.txt").write_text("tqdm==4.66.1\n")
    (project / "envkit.yaml").write_text(
        "entry: ci-cpu\nrequirements_file: requirements.txt\nenv: {PROJECT_FLAG: 'on'}\n"
    )
    source = cpu_source(cpu_wheelhouse)
    first = run_envkit("--matrix", str(CI_MATRIX), "build", *source, "--json", cwd=project)
    assert first.returncode == 0, first.stderr
    results = json.loads(first.stdout)
    assert [r["status"] for r in results] == ["up-to-date", "built"]
    # Named after the folder, plus a hash of its path: two `src` folders never share an image.
    assert re.fullmatch(rf"envkit-project/{name}-[0-9a-f]{{8}}:latest", results[1]["tags"][0])

    # The project image names what it was built FROM: the entry's image, by content tag.
    inspected = run_envkit("--matrix", str(CI_MATRIX), "inspect", ".", "--json", cwd=project)
    assert inspected.returncode == 0, inspected.stderr
    shown = json.loads(inspected.stdout)
    assert shown["image"] == results[1]["tags"][0]
    assert shown["labels"]["org.opencontainers.image.base.name"] == results[0]["tags"][1]

    again = run_envkit("--matrix", str(CI_MATRIX), "build", *source, "--json", cwd=project)
    assert [r["status"] for r in json.loads(again.stdout)] == ["up-to-date", "up-to-date"]

    ran = run_envkit(
        "--matrix",
        str(CI_MATRIX),
        "run",
        ".",
        "--",
        "python",
        "-c",
        "import os, tqdm, torch; print(tqdm.__version__, os.environ['PROJECT_FLAG'],"
        " torch.__version__)",
        cwd=project,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["4.66.1", "on", "2.13.0+cpu"]

    # a changed requirement is a new project image; the entry's image is untouched. Until it
    # is built, `envkit run .` refuses the old one instead of running it.
    (project / "requirements.txt").write_text("tqdm==4.66.2\n")
    stale = run_envkit("--matrix", str(CI_MATRIX), "run", ".", "--", "true", cwd=project)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert "is out of date: envkit.yaml or its requirements file changed" in stale.stderr
    assert "rebuild it: envkit build" in stale.stderr
    changed = run_envkit("--matrix", str(CI_MATRIX), "build", *source, "--json", cwd=project)
    statuses = [r["status"] for r in json.loads(changed.stdout)]
    try:
        assert statuses == ["up-to-date", "built"]
    finally:
        for result in json.loads(first.stdout)[1:] + json.loads(changed.stdout)[1:]:
            for tag in result["tags"]:
                subprocess.run([DOCKER, "rmi", tag], capture_output=True)


def test_build_without_name_or_project_is_bad_usage(tmp_path):
    out = run_envkit("build", cwd=tmp_path)
    assert out.returncode == 2 and "envkit.yaml" in out.stderr


def test_inspect_refuses_an_image_envkit_did_not_build(base_image):
    out = run_envkit("inspect", base_image)
    assert out.returncode == 2
    assert "is not an image envkit built" in out.stderr
