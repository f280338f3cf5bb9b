"""The docker command line envkit run builds (the engine itself is tested in tests/engine)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from envkit import engine
from envkit.errors import BadInput
from envkit.run import env_items, resolve_gpus, spec_for


@pytest.fixture
def plain_client(tmp_path, monkeypatch):
    """A docker client without BuildKit: enough for `docker run`."""
    path = tmp_path / "docker"
    path.write_text("#!/bin/sh\nexit 1\n")  # `buildx version` fails, `version` prints nothing
    path.chmod(0o755)
    monkeypatch.setenv(engine.DOCKER_CLI_ENV, str(path))
    return str(path)


def spec(**changes) -> engine.RunSpec:
    fields = {
        "image": "envkit/torch1.4-cuda10:latest",
        "command": ("python", "train.py", "--epochs", "3"),
        "entry": "torch1.4-cuda10",
        "workdir": Path("/work/project"),
        "user": "1000:1000",
    }
    return engine.RunSpec(**{**fields, **changes})


def test_run_needs_no_buildkit_client(plain_client):
    cmd = engine.run_cli_command(spec(), "envkit-x")
    assert cmd[:6] == [plain_client, "run", "--rm", "--init", "--name", "envkit-x"]
    assert cmd[-5:] == ["envkit/torch1.4-cuda10:latest", "python", "train.py", "--epochs", "3"]
    assert "type=bind,source=/work/project,target=/workspace" in cmd
    assert cmd[cmd.index("--user") + 1] == "1000:1000"
    assert cmd[cmd.index("--shm-size") + 1] == "8g"
    assert "--gpus" not in cmd and "--ipc" not in cmd


def test_gpu_ipc_env_and_terminal_options(plain_client):
    cmd = engine.run_cli_command(
        spec(gpus="0,1", ipc_host=True, env=("A=1",), interactive=True, tty=True), "n"
    )
    assert cmd[cmd.index("--gpus") + 1] == '"device=0,1"'
    assert cmd[cmd.index("--ipc") + 1] == "host" and "--shm-size" not in cmd
    assert "A=1" in cmd and "--interactive" in cmd and "--tty" in cmd
    assert engine.run_cli_command(spec(gpus="all"), "n").count("all") == 1


def test_gpus_and_env_values_are_checked(monkeypatch):
    assert resolve_gpus("none") == (None, None)
    assert resolve_gpus("0,1") == ("0,1", None)
    with pytest.raises(BadInput, match="--gpus 'everything'"):
        resolve_gpus("everything")
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert env_items(("WANDB_MODE", "X=a=b")) == ("WANDB_MODE=offline", "X=a=b")
    monkeypatch.delenv("WANDB_MODE")
    with pytest.raises(BadInput, match="not set in this environment"):
        env_items(("WANDB_MODE",))
    with pytest.raises(BadInput, match="is not NAME"):
        env_items(("1BAD=x",))


@pytest.mark.parametrize("item", ["A\n=1", "A\n", "PATH\n=x"])
def test_a_variable_name_ending_in_a_newline_is_refused(item, monkeypatch):
    monkeypatch.setenv("A", "1")
    with pytest.raises(BadInput, match="is not NAME"):
        env_items((item,))


@pytest.mark.parametrize("gpus", ["all\n", "0,1\n", "none\n"])
def test_a_gpus_value_ending_in_a_newline_is_refused(gpus):
    with pytest.raises(BadInput, match="--gpus"):
        resolve_gpus(gpus)


def test_a_user_ending_in_a_newline_is_refused(tmp_path):
    with pytest.raises(BadInput, match="--user"):
        spec_for("img", "e", ("true",), workdir=tmp_path, user="1000\n")


def test_the_default_user_is_you_or_container_root_on_a_rootless_engine(monkeypatch):
    # docker info's SecurityOptions as a rootless engine reports them.
    rootless = {
        "SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless", "name=cgroupns"]
    }
    monkeypatch.setattr(engine, "engine_info", lambda: rootless)
    assert engine.host_user() == "0:0"
    monkeypatch.setattr(engine, "engine_info", lambda: {"SecurityOptions": ["name=seccomp"]})
    assert engine.host_user() == f"{os.getuid()}:{os.getgid()}"


def test_mount_source_is_quoted_as_the_docker_cli_reads_csv(plain_client):
    cmd = engine.run_cli_command(spec(workdir=Path('/work/my,"odd" project')), "n")
    assert 'type=bind,"source=/work/my,""odd"" project",target=/workspace' in cmd


@pytest.mark.parametrize(
    "size",
    [
        "banana",
        "8 gigs",
        "-1g",
        "8ib",
        "1__0m",
        "inf",
        "nan",
        "1kbb",
        "99999999999999999999g",
        "1e19",
        "9e9g",
    ],
)
def test_a_shm_size_docker_would_refuse_is_bad_usage_before_the_engine(tmp_path, size, monkeypatch):
    def engine_asked(*args):
        raise AssertionError("the engine was asked")

    monkeypatch.setattr(engine, "require_built", engine_asked)
    with pytest.raises(BadInput, match="is not a size"):
        spec_for("img", "e", ("true",), workdir=tmp_path, shm_size=size)


@pytest.mark.parametrize(
    "size", ["8g", "512m", "1.5GB", "64mb", "2147483648", "1e9", ".5g", "32.", "-0", "0", "64 MiB"]
)
def test_docker_size_syntax_is_accepted(tmp_path, size, monkeypatch):
    class Reached(Exception):
        pass

    def reached(*args):
        raise Reached

    monkeypatch.setattr(engine, "require_built", reached)
    with pytest.raises(Reached):
        spec_for("img", "e", ("true",), workdir=tmp_path, shm_size=size)
