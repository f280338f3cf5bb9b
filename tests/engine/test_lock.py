"""envkit lock and build --locked against the real engine."""

from __future__ import annotations

import json

import pytest
from conftest import CI_MATRIX, DOCKER, cpu_source, run_envkit

pytestmark = pytest.mark.docker


def test_lock_then_locked_build_catches_a_changed_dependency(cpu_image, cpu_wheelhouse, tmp_path):
    source = cpu_source(cpu_wheelhouse)
    locked = run_envkit(
        "--matrix", str(CI_MATRIX), "lock", "ci-cpu", *source, cwd=tmp_path, check=True
    )
    assert "ci-cpu" in locked.stdout
    lock = json.loads((tmp_path / "envkit.lock").read_text())
    assert lock["entry"] == "ci-cpu" and lock["packages"]["torch"] == "2.13.0+cpu"
    assert lock["image_id"].startswith("sha256:") and lock["base_image_digest"]

    same = run_envkit(
        "--matrix", str(CI_MATRIX), "build", "--locked", "ci-cpu", *source, "--json", cwd=tmp_path
    )
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)[0]["status"] == "up-to-date"

    # The same entry with one dependency moved: the lock must refuse it and name it.
    changed = tmp_path / "matrix.yaml"
    changed.write_text(
        CI_MATRIX.read_text().replace(
            "  ci-cpu:\n    description: CPU torch on the local bookworm base\n",
            "  ci-cpu:\n    description: CPU torch on the local bookworm base\n"
            '    pins: ["filelock==3.13.1"]\n',
        )
    )
    assert changed.read_text() != CI_MATRIX.read_text()
    refused = run_envkit(
        "--matrix", str(changed), "build", "--locked", "ci-cpu", *source, cwd=tmp_path
    )
    assert refused.returncode == 1, refused.stderr
    assert "differs from envkit.lock in 1 package(s)" in refused.stderr
    assert "~ filelock " in refused.stderr and "-> 3.13.1" in refused.stderr
    # the refused result was not kept under the entry's tags
    import subprocess

    latest = subprocess.run(
        [DOCKER, "image", "inspect", "-f", "{{.Id}}", "envkit/ci-cpu:latest"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert latest == lock["image_id"]
    leftovers = subprocess.run(
        [DOCKER, "images", "-q", "envkit-verify/ci-cpu"], capture_output=True, text=True
    ).stdout.split()
    assert leftovers == []


def test_locked_build_without_a_lock_is_bad_input(tmp_path):
    out = run_envkit("--matrix", str(CI_MATRIX), "build", "--locked", "ci-cpu", cwd=tmp_path)
    assert out.returncode == 2 and "envkit.lock does not exist" in out.stderr
