"""envkit clean --images: envkit's untagged images go, anyone else's and those in use stay."""

from __future__ import annotations

import subprocess

import pytest
from click.testing import CliRunner
from conftest import DOCKER

from envkit import engine
from envkit.cli import main

pytestmark = pytest.mark.docker
REPO = "envkit-cleantest"


def _build(base: str, step: str, label: str | None) -> str:
    """An image FROM base tagged REPO:x (taking the tag from the last one); returns its id."""
    cmd = [DOCKER, "build", "-q", "-t", f"{REPO}:x", "-"]
    if label:
        cmd[2:2] = ["--label", label]
    done = subprocess.run(
        cmd,
        input=f"FROM {base}\nRUN echo {step} > /step\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        env={"DOCKER_BUILDKIT": "0"},
    )
    return done.stdout.strip()


def _exists(image: str) -> bool:
    return engine.image_id(image) is not None


@pytest.fixture
def containers_left_alone(monkeypatch):
    """clean's container sweep stubbed out: other tests on this engine may be running theirs."""
    monkeypatch.setattr(engine, "remove_leftovers", lambda: [])


def test_clean_images_removes_only_envkits_dangling_images(base_image, containers_left_alone):
    ours = _build(base_image, "ours", "io.envkit.entry=clean-test")
    used = _build(base_image, "used", "io.envkit.entry=clean-test")
    holder = engine.client().containers.create(used, ["true"], labels={"clean-test": "1"})
    theirs = _build(base_image, "theirs", None)
    last = _build(base_image, "last", "io.envkit.entry=clean-test")  # takes the tag
    try:
        assert engine.client().images.get(ours).tags == []  # dangling now
        result = CliRunner().invoke(main, ["clean", "--images"])
        assert result.exit_code == 0, result.output
        assert not _exists(ours)
        assert _exists(used)  # a container still needs it
        assert _exists(theirs)  # not envkit's
        assert _exists(last)  # tagged
        assert ours[7:19] in result.output
        assert "kept: in use" in result.output
    finally:
        holder.remove(force=True)
        for image in (ours, used, theirs, last):
            subprocess.run([DOCKER, "rmi", "-f", image], capture_output=True)


def test_clean_without_images_leaves_dangling_images(base_image, containers_left_alone):
    ours = _build(base_image, "kept", "io.envkit.entry=clean-test")
    _build(base_image, "newer", "io.envkit.entry=clean-test")
    try:
        result = CliRunner().invoke(main, ["clean"])
        assert result.exit_code == 0, result.output
        assert _exists(ours)
    finally:
        subprocess.run([DOCKER, "rmi", "-f", ours, f"{REPO}:x"], capture_output=True)
