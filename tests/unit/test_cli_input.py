"""Bad option values are refused before anything runs: a red line, the fix, exit 2."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from envkit import build, engine
from envkit.cli import main
from envkit.errors import BadInput


@pytest.fixture
def no_engine(monkeypatch):
    """Any question to the engine fails the test: bad input is refused before it."""

    def asked(*args, **kwargs):
        raise AssertionError("the engine was asked")

    for name in ("client", "image_id", "require_built", "run_attached", "image_labels"):
        monkeypatch.setattr(engine, name, asked)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--tag", "x y", "torch2.13-cpu", "--", "true"],
        ["shell", "--tag", "x y", "torch2.13-cpu"],
        ["bench", "--tag", "x y", "torch2.13-cpu"],
        ["inspect", "--tag", "x y", "torch2.13-cpu"],
        ["doctor", "--tag", "x y", "torch2.13-cpu"],
        ["lock", "--tag", "x y", "torch2.13-cpu"],
        ["build", "--tag", "x y", "torch2.13-cpu"],
        ["run", "--tag", "envkit\n", "torch2.13-cpu", "--", "true"],
    ],
    ids=["run", "shell", "bench", "inspect", "doctor", "lock", "build", "newline"],
)
def test_a_bad_tag_prefix_is_bad_usage_on_every_command(args, no_engine):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "is not a repository name" in result.output, result.output
    assert "fix: " in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    "ref",
    ["x;touch /tmp/p", "ubuntu 22.04", "$(id)", "Ubuntu:22.04", "a:b:c", "img\n", "-x", "img@sha"],
)
def test_an_image_reference_docker_would_not_read_is_refused(ref):
    with pytest.raises(BadInput, match="--base-image"):
        build.check_options(build.BuildOptions(base_image=ref))


@pytest.mark.parametrize(
    "ref",
    [
        "envkit-base:bookworm",
        "python:3.8-slim",
        "docker.io/library/python:3.8",
        "localhost:5000/team/base:1.0",
        "registry.example.com/a/b_c/d-e:v1.2_3",
        "nvidia/cuda:12.4.1-runtime-ubuntu22.04",
        "python@sha256:" + "a" * 64,
        "ghcr.io/o/p:t@sha256:" + "0" * 64,
    ],
)
def test_image_references_docker_reads_are_accepted(ref):
    build.check_options(build.BuildOptions(base_image=ref))


def test_base_image_is_refused_by_build_before_the_engine(no_engine):
    result = CliRunner().invoke(main, ["build", "torch2.13-cpu", "--base-image", "x;touch /tmp/p"])
    assert result.exit_code == 2, result.output
    assert "--base-image 'x;touch /tmp/p' is not an image reference" in result.output


@pytest.mark.parametrize("registry", ["ghcr.io\n", "host:5000\n"])
def test_a_registry_ending_in_a_newline_is_refused(registry):
    with pytest.raises(BadInput, match="--registry"):
        build.check_options(build.BuildOptions(registry=registry))
