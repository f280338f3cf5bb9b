"""envkit bake through `docker buildx bake`: the bake file builds the CI entry with BuildKit."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess

import pytest
from conftest import CI_MATRIX, DOCKER, host_ca_bundle

from envkit import build, dockerfile, matrix
from envkit.bake import write_bake

pytestmark = pytest.mark.docker
PREFIX = "envkit-baketest"


@pytest.fixture(scope="module")
def buildx():
    """Fail under CI (which installs the buildx plugin), skip elsewhere when it is missing."""
    done = subprocess.run([DOCKER, "buildx", "version"], capture_output=True, text=True)
    if done.returncode != 0:
        reason = f"docker buildx is not installed: {(done.stderr or done.stdout).strip()}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    # buildx (0.13) writes each dockerfile-inline to a /tmp/dockerfileNNN folder and leaves it;
    # remove the ones these tests caused.
    before = set(glob.glob("/tmp/dockerfile*"))
    yield DOCKER
    for leftover in set(glob.glob("/tmp/dockerfile*")) - before:
        shutil.rmtree(leftover, ignore_errors=True)


def test_bake_reads_back_the_rendered_dockerfile(buildx, tmp_path):
    entry = matrix.load(CI_MATRIX).get("ci-cpu")
    path = write_bake(
        [entry], build.BuildOptions(), tmp_path / "docker-bake.json", base_id=lambda ref: None
    )
    done = subprocess.run(
        [buildx, "buildx", "bake", "-f", str(path), "--print"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    target = json.loads(done.stdout)["target"]["ci-cpu"]
    assert target["dockerfile-inline"] == dockerfile.render(entry)
    assert target["tags"][0] == "envkit/ci-cpu:latest"


def test_bake_reads_index_credentials_only_from_the_secret(buildx, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    entry = matrix.load(CI_MATRIX).get("ci-cpu")
    options = build.BuildOptions(
        index_url="https://alice:MARKERTOKEN@pypi.example/simple", ca_cert=host_ca_bundle()
    )
    path = write_bake([entry], options, tmp_path / "out" / "docker-bake.json")
    done = subprocess.run(
        [buildx, "buildx", "bake", "-f", str(path), "--print"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "MARKERTOKEN" not in done.stdout + done.stderr + path.read_text()
    secrets = json.loads(done.stdout)["target"]["ci-cpu"]["secret"]
    ids = sorted(s["id"] if isinstance(s, dict) else s.split(",")[0][3:] for s in secrets)
    assert ids == ["envkit-ca", "envkit-index"]
    assert sorted(p.name for p in path.parent.iterdir()) == [".envkit-context", path.name]


def test_bake_file_builds_the_ci_entry(buildx, base_image, cpu_wheelhouse, tmp_path):
    entry = matrix.load(CI_MATRIX).get("ci-cpu")
    options = build.BuildOptions(
        wheelhouse=cpu_wheelhouse, ca_cert=host_ca_bundle(), tag_prefix=PREFIX
    )
    path = write_bake([entry], options, tmp_path / "docker-bake.json")
    tags = json.loads(path.read_text())["target"]["ci-cpu"]["tags"]
    try:
        done = subprocess.run(
            [buildx, "buildx", "bake", "-f", str(path), "--progress", "plain", "ci-cpu"],
            capture_output=True,
            text=True,
            timeout=1500,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        ran = subprocess.run(
            [
                DOCKER,
                "run",
                "--rm",
                tags[1],
                "python",
                "-c",
                "import os, torch; print(torch.__version__); "
                "assert not os.path.exists('/run/secrets/envkit-ca')",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip().startswith("2.13.0")
        labels = json.loads(
            subprocess.run(
                [DOCKER, "image", "inspect", "--format", "{{json .Config.Labels}}", tags[0]],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert labels["io.envkit.content-hash"] == tags[1].rsplit(":", 1)[1]
    finally:
        subprocess.run([DOCKER, "image", "rm", "-f", *tags], capture_output=True)
