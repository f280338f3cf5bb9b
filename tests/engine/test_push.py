"""--registry and --push against a real registry on loopback (Debian's docker-registry)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
from conftest import CI_MATRIX, DOCKER, cpu_source, run_envkit

pytestmark = pytest.mark.docker
REGISTRY = shutil.which("docker-registry")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def registry(tmp_path):
    """A registry process on 127.0.0.1 (the engine trusts loopback registries over HTTP)."""
    if REGISTRY is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    port = _free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: "
        + str(tmp_path / "data")
        + f"\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [REGISTRY, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        for _ in range(50):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_build_push_puts_both_tags_in_the_registry(cpu_image, cpu_wheelhouse, registry):
    out = run_envkit(
        "--matrix",
        str(CI_MATRIX),
        "build",
        "ci-cpu",
        *cpu_source(cpu_wheelhouse),
        "--registry",
        registry,
        "--push",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)[0]
    latest, content = result["tags"]
    assert latest == f"{registry}/envkit/ci-cpu:latest"
    with urllib.request.urlopen(
        f"http://{registry}/v2/envkit/ci-cpu/tags/list", timeout=10
    ) as answer:
        tags = json.load(answer)["tags"]
    assert sorted(tags) == sorted(["latest", content.rsplit(":", 1)[1]])
    subprocess.run([DOCKER, "rmi", latest, content], capture_output=True)


def test_locked_build_with_push_pushes_the_verified_image(
    cpu_image, cpu_wheelhouse, registry, tmp_path
):
    source = cpu_source(cpu_wheelhouse)
    run_envkit("--matrix", str(CI_MATRIX), "lock", "ci-cpu", *source, cwd=tmp_path, check=True)
    out = run_envkit(
        "--matrix",
        str(CI_MATRIX),
        "build",
        "--locked",
        "ci-cpu",
        *source,
        "--registry",
        registry,
        "--push",
        "--json",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)[0]
    with urllib.request.urlopen(
        f"http://{registry}/v2/envkit/ci-cpu/tags/list", timeout=10
    ) as answer:
        tags = json.load(answer)["tags"]
    latest, content = result["tags"]
    assert latest == f"{registry}/envkit/ci-cpu:latest"
    assert sorted(tags) == sorted(["latest", content.rsplit(":", 1)[1]])
    subprocess.run([DOCKER, "rmi", latest, content], capture_output=True)
