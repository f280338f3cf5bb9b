"""envkit build against the real engine: images, labels, caching, secrets, failures, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from conftest import (
    CI_MATRIX,
    DOCKER,
    build_full,
    cpu_source,
    envkit_containers,
    host_ca_bundle,
    interruptible,
    run_envkit,
)

pytestmark = pytest.mark.docker


def docker(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, **kwargs)


def test_full_entry_imports_torch_and_torchvision_at_matrix_versions(full_image):
    results = json.loads(full_image.stdout)
    assert results[0]["ok"] and results[0]["status"] in ("built", "up-to-date")
    out = docker(
        "run",
        "--rm",
        "envkit/torch2.14-cuda13:latest",
        "python",
        "-c",
        "import torch, torchvision; print(torch.__version__, torchvision.__version__)",
    )
    assert out.returncode == 0, out.stderr
    torch_version, vision_version = out.stdout.split()
    assert torch_version.split("+")[0] == "2.14.1"
    assert vision_version.split("+")[0] == "0.29.1"


def test_labels_are_present_and_match_the_entry(full_image):
    out = run_envkit("inspect", "torch2.14-cuda13", "--json", check=True)
    labels = json.loads(out.stdout)["labels"]
    assert labels["io.envkit.entry"] == "torch2.14-cuda13"
    assert labels["io.envkit.torch"] == "2.14.1"
    assert labels["io.envkit.torchvision"] == "0.29.1"
    assert labels["io.envkit.cuda"] == "13.0"
    assert labels["io.envkit.python"] == "3.11"
    assert labels["org.opencontainers.image.version"] == "2.14.1"
    tags = json.loads(full_image.stdout)[0]["tags"]
    assert labels["io.envkit.content-hash"] == tags[1].rsplit(":", 1)[1]


def test_second_build_is_a_noop(full_image, base_image, full_wheelhouse):
    started = time.monotonic()
    out = build_full(base_image, full_wheelhouse)
    elapsed = time.monotonic() - started
    result = json.loads(out.stdout)[0]
    assert result["status"] == "up-to-date"
    assert result["log"] is None  # the builder was never called
    # The time is stated, not asserted (docs/build.md has the measured figure).
    print(f"no-op build: {result['seconds']:.3f}s inside envkit, {elapsed:.2f}s for the process")


def test_changed_build_arg_gives_a_new_content_tag(base_image):
    from envkit import build, matrix

    entry = matrix.load(CI_MATRIX).get("ci-cpu")
    _, _, plain = build.plan(entry, build.BuildOptions(base_image=base_image))
    _, _, mirrored = build.plan(
        entry, build.BuildOptions(base_image=base_image, index_url="https://mirror.example/simple")
    )
    _, _, again = build.plan(entry, build.BuildOptions(base_image=base_image))
    assert plain == again
    assert mirrored != plain


def _throwaway_ca(tmp_path: Path) -> tuple[Path, list[str]]:
    """The host bundle plus a freshly made CA certificate that exists nowhere else."""
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=envkit throwaway test CA",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    pem = cert.read_text()
    body = [ln for ln in pem.splitlines() if ln and not ln.startswith("-----")]
    bundle = tmp_path / "bundle.pem"
    bundle.write_text(host_ca_bundle().read_text() + "\n" + pem)
    return bundle, body


def test_ca_cert_is_used_but_never_stored(cpu_image, cpu_wheelhouse, tmp_path):
    bundle, body = _throwaway_ca(tmp_path)
    # --no-cache makes the pip step really run with the secret mounted.
    out = run_envkit(
        "--matrix",
        str(CI_MATRIX),
        "build",
        "ci-cpu",
        "--wheelhouse",
        str(cpu_wheelhouse),
        "--ca-cert",
        str(bundle),
        "--force",
        "--no-cache",
        "--tag",
        "envkit-catest",
        "--json",
        "--log-dir",
        str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    image = "envkit-catest/ci-cpu:latest"
    try:
        saved = tmp_path / "image.tar"
        assert docker("save", "-o", str(saved), image).returncode == 0
        history = docker("history", "--no-trunc", image).stdout
        # Look inside every layer, compressed or not, and in the config and history.
        needles = [line.encode() for line in body]
        assert b"throwaway" not in history.encode()
        with tarfile.open(saved) as outer:
            for member in outer.getmembers():
                if not member.isfile():
                    continue
                data = outer.extractfile(member).read()
                blobs = [data]
                if member.name.endswith("layer.tar") or data[:2] == b"\x1f\x8b":
                    import io

                    try:
                        with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                            blobs = [
                                layer.extractfile(m).read()
                                for m in layer.getmembers()
                                if m.isfile()
                            ]
                    except tarfile.TarError:
                        pass
                for blob in blobs:
                    for needle in needles:
                        assert needle not in blob, f"certificate bytes found in {member.name}"
        # and the build really reached PyPI through the proxy with it: deps are installed
        deps = docker("run", "--rm", image, "python", "-c", "import sympy, filelock")
        assert deps.returncode == 0, deps.stderr
    finally:
        docker(
            "rmi",
            "-f",
            image,
            "envkit-catest/ci-cpu:" + json.loads(out.stdout)[0]["tags"][1].rsplit(":", 1)[1],
        )


def test_failing_build_shows_step_and_log_and_exits_1(base_image, cpu_wheelhouse, tmp_path):
    out = run_envkit(
        "--matrix",
        str(CI_MATRIX),
        "build",
        "ci-badpin",
        *cpu_source(cpu_wheelhouse),
        "--log-dir",
        str(tmp_path),
    )
    assert out.returncode == 1
    assert "failed at [3/" in out.stderr and "pip install" in out.stderr
    assert "numpy==0.0.1" in out.stderr  # the failing step's own output is shown
    # pip's own lines name the cause: no such version (not "read the full log" alone)
    assert "no version of numpy==0.0.1 on the index matches" in out.stderr
    assert "fix: compare the pin with the versions pip listed" in out.stderr
    logs = list(tmp_path.glob("ci-badpin-*.log"))
    assert len(logs) == 1 and str(logs[0]) in out.stderr


def test_ctrl_c_mid_build_leaves_nothing_behind(base_image, cpu_wheelhouse, tmp_path):
    before_tmp = set(Path("/tmp").glob("envkit-build-*"))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "envkit",
            "--matrix",
            str(CI_MATRIX),
            "build",
            "ci-cpu",
            *cpu_source(cpu_wheelhouse),
            "--force",
            "--no-cache",
            "--tag",
            "envkit-sigint",
            "--log-dir",
            str(tmp_path),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        preexec_fn=interruptible,
    )
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if "step 3/" in line:  # the pip install step is running
            break
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, "".join(seen) + rest
    assert "interrupted" in rest
    assert envkit_containers() == []
    assert set(Path("/tmp").glob("envkit-build-*")) == before_tmp
    # the build client is gone and BuildKit cancelled the step: no pip left running
    for _ in range(20):
        if (
            subprocess.run(["pgrep", "-f", "pip install --no-deps"], capture_output=True).returncode
            != 0
        ):
            break
        time.sleep(1)
    else:
        pytest.fail("pip from the interrupted build is still running")
    assert docker("image", "inspect", "envkit-sigint/ci-cpu:latest").returncode != 0


def test_unknown_entry_suggests_and_exits_2():
    out = run_envkit("build", "torch2.14-cuda31")
    assert out.returncode == 2
    assert "did you mean" in out.stderr and "Traceback" not in out.stderr


def test_parallel_builds_give_one_result_per_entry(cpu_image, cpu_wheelhouse, tmp_path):
    out = run_envkit(
        "--matrix",
        str(CI_MATRIX),
        "build",
        "ci-cpu",
        "ci-badpin",
        *cpu_source(cpu_wheelhouse),
        "--jobs",
        "2",
        "--json",
        "--log-dir",
        str(tmp_path),
    )
    assert out.returncode == 1  # one failed entry fails the command
    results = {r["name"]: r for r in json.loads(out.stdout)}
    assert results["ci-cpu"]["status"] == "up-to-date"
    assert results["ci-badpin"]["status"] == "failed"
    assert "numpy==0.0.1" in "\n".join(results["ci-badpin"]["tail"])


def test_inspect_of_a_missing_image_says_build_it(base_image):
    out = run_envkit("inspect", "torch1.4-cuda10", "--tag", "envkit-absent")
    assert out.returncode == 1, out.stderr
    assert "no image envkit-absent/torch1.4-cuda10:latest" in out.stderr
    assert "envkit build torch1.4-cuda10" in out.stderr


def _saved_blobs(saved: Path):
    """(name, bytes) of every file in a `docker save` archive, and of every file in its layers."""
    import io

    with tarfile.open(saved) as outer:
        for member in outer.getmembers():
            if not member.isfile():
                continue
            data = outer.extractfile(member).read()
            yield member.name, data
            try:
                with tarfile.open(fileobj=io.BytesIO(data)) as layer:
                    for inner in layer.getmembers():
                        if inner.isfile():
                            yield f"{member.name}:{inner.name}", layer.extractfile(inner).read()
            except tarfile.TarError:
                pass  # the config and manifest are JSON, not layers


def test_index_credentials_and_the_ca_certificate_leak_nowhere(
    base_image, cpu_wheelhouse, tmp_path
):
    import uuid

    user, password = f"envkituser{uuid.uuid4().hex[:8]}", f"envkitpass{uuid.uuid4().hex[:8]}"
    # Nothing listens there: pip warns and goes on with the wheelhouse and PyPI.
    index = f"https://{user}:{password}@127.0.0.1:9/simple"
    matrix = tmp_path / "matrix.yaml"
    matrix.write_text(
        CI_MATRIX.read_text().split("entries:")[0]
        + 'entries:\n  ci-secret:\n    torch: "2.13.0"\n    cuda: null\n'
        + f"    index_url: {index}\n"
    )
    bundle, body = _throwaway_ca(tmp_path)
    logs = tmp_path / "logs"
    out = run_envkit(
        "--matrix",
        str(matrix),
        "build",
        "ci-secret",
        "--wheelhouse",
        str(cpu_wheelhouse),
        "--ca-cert",
        str(bundle),
        "--extra-index-url",
        index.replace("/simple", "/extra"),
        "--force",
        "--no-cache",
        "--tag",
        "envkit-secrettest",
        "--log-dir",
        str(logs),
        "--json",
    )
    image = "envkit-secrettest/ci-secret:latest"
    try:
        assert out.returncode == 0, out.stderr[-3000:]
        log_text = "".join(p.read_text() for p in logs.iterdir())
        # pip was given both indexes (it names them, redacted by envkit) ...
        assert "https://***@127.0.0.1:9/simple" in log_text
        assert "https://***@127.0.0.1:9/extra" in log_text
        # ... yet neither they nor the certificate are in anything envkit or the engine keeps.
        places = {
            "printed output": out.stdout + out.stderr,
            "build log": log_text,
            "docker history": docker("history", "--no-trunc", image).stdout,
            "docker inspect": docker("inspect", image).stdout,
        }
        for where, text in places.items():
            for needle in (user, password, *body):
                assert needle not in text, f"{needle} found in the {where}"
        saved = tmp_path / "image.tar"
        assert docker("save", "-o", str(saved), image).returncode == 0
        needles = [n.encode() for n in (user, password, *body)]
        searched = 0
        for name, blob in _saved_blobs(saved):
            searched += 1
            for needle in needles:
                assert needle not in blob, f"{needle!r} found in {name} of docker save"
        assert searched > 1000  # the layers were opened, not only the archive's index
    finally:
        tags = [json.loads(out.stdout)[0]["tags"][1]] if out.returncode == 0 else []
        docker("rmi", "-f", image, *tags)


def test_a_forced_rebuild_is_the_same_image_and_a_new_one_leaves_no_untagged_image(
    base_image, cpu_wheelhouse, tmp_path
):
    def forced(*extra: str) -> str:
        out = run_envkit(
            "--matrix",
            str(CI_MATRIX),
            "build",
            "ci-cpu",
            *cpu_source(cpu_wheelhouse),
            "--force",
            *extra,
            "--tag",
            "envkit-forcetest",
            "--log-dir",
            str(tmp_path),
            "--json",
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout)[0]["image_id"]

    try:
        first = forced()
        time.sleep(1.5)  # a label with the build time would now differ
        assert forced() == first  # unchanged inputs, from the layer cache: the same image
        # Without the cache the layers differ (their times), so the id does: the replaced image,
        # untagged now, is removed rather than left dangling.
        rebuilt = forced("--no-cache")
        assert rebuilt != first
        assert docker("image", "inspect", first).returncode != 0, "the replaced image was left"
    finally:
        docker("rmi", "-f", "envkit-forcetest/ci-cpu:latest")
        for image in docker("images", "-q", "envkit-forcetest/ci-cpu").stdout.split():
            docker("rmi", "-f", image)
