"""`envkit doctor` against the real Docker engine (no GPU needed: these check the reasons)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CI_MATRIX, REPO, run_envkit

from envkit import doctor, engine
from envkit.errors import EnvkitError

pytestmark = pytest.mark.docker

NO_SOCKET = "unix:///tmp/envkit-test-no-such-docker.sock"


def _host_has_nvidia() -> bool:
    return any(
        os.access(os.path.join(d, "nvidia-smi"), os.X_OK)
        for d in os.environ.get("PATH", "").split(os.pathsep)
    )


def test_cli_doctor_with_unreachable_daemon_exits_1_without_traceback():
    env = dict(os.environ, DOCKER_HOST=NO_SOCKET)
    result = run_envkit("doctor", env=env, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "no Docker daemon is answering" in result.stdout + result.stderr
    assert "systemctl start docker" in result.stdout + result.stderr


def test_cli_doctor_json_with_unreachable_daemon():
    env = dict(os.environ, DOCKER_HOST=NO_SOCKET)
    result = run_envkit("doctor", "--json", env=env, timeout=120)
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    engine_check = next(c for c in report["checks"] if c["id"] == "engine")
    assert engine_check["status"] == "fail"
    assert engine_check["fix"]
    assert {c["status"] for c in report["checks"]} <= set(doctor.STATUSES)


def test_doctor_names_the_docker_context_that_points_at_no_engine(tmp_path):
    # The docker CLI and the SDK both follow the current context; while the engine answers on
    # the default socket, the report must name the context's address, not the default one.
    # The docker CLI files a context under the sha256 of its name.
    meta = tmp_path / "contexts" / "meta" / hashlib.sha256(b"remote").hexdigest()
    meta.mkdir(parents=True)
    (meta / "meta.json").write_text(
        json.dumps({"Name": "remote", "Metadata": {}, "Endpoints": {"docker": {"Host": NO_SOCKET}}})
    )
    (tmp_path / "config.json").write_text(json.dumps({"currentContext": "remote"}))
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env["DOCKER_CONFIG"] = str(tmp_path)
    result = run_envkit("doctor", "--json", env=env, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    engine_check = next(c for c in json.loads(result.stdout)["checks"] if c["id"] == "engine")
    assert engine_check["status"] == "fail"
    assert f"{NO_SOCKET} (docker context remote)" in engine_check["detail"]
    assert "docker context use default" in engine_check["fix"]
    # DOCKER_CONTEXT overrides config.json, as it does for the docker CLI.
    result = run_envkit("doctor", "--json", env=dict(env, DOCKER_CONTEXT="default"), timeout=120)
    engine_check = next(c for c in json.loads(result.stdout)["checks"] if c["id"] == "engine")
    assert engine_check["status"] == "pass", engine_check


def test_run_doctor_with_unreachable_daemon_reports_it():
    # A fresh interpreter: the engine module caches its client, and DOCKER_HOST is read once.
    code = (
        "import json; from envkit import doctor; "
        "r = doctor.run_doctor(); print(json.dumps(r.to_dict()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=dict(os.environ, DOCKER_HOST=NO_SOCKET),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["engine"]["status"] == "fail"
    assert NO_SOCKET in checks["engine"]["detail"]
    assert checks["gpu-runtime"]["status"] == "skip"


@pytest.mark.skipif(_host_has_nvidia(), reason="this host has an NVIDIA driver")
def test_engine_refuses_gpus_without_toolkit_and_the_text_is_explained(base_image):
    with pytest.raises(EnvkitError) as raised:
        engine.run_program(base_image, doctor.PROBE_PATH, gpus="all", timeout=120)
    explained = doctor.explain_error(raised.value.message)
    assert explained is not None, raised.value.message
    assert "NVIDIA Container Toolkit" in explained[0]


def test_probe_in_a_real_cpu_container_reports_why_there_is_no_gpu(cpu_image):
    result = engine.run_program(cpu_image, doctor.PROBE_PATH, timeout=300)
    assert result.exit_code == 0, result.stderr
    probe = json.loads(result.stdout)  # nothing but the document on stdout
    assert probe["cuda"]["available"] is False
    assert probe["cuda"]["reason"] == "cpu_only_build"
    assert probe["nvidia"]["gpu_nodes"] == []
    assert probe["dataloader"]["ok"] is True
    assert probe["shm"]["bytes"] == 64 * 1024**2  # Docker's default when no --shm-size


def test_cli_doctor_on_a_cpu_image_reports_no_gpu_with_reason_and_fix(cpu_image):
    result = run_envkit("--matrix", str(CI_MATRIX), "doctor", "ci-cpu", "--json", timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    checks = {c["id"]: c for c in report["checks"]}
    assert report["ok"] is False and report["image"] == cpu_image
    assert checks["engine"]["status"] == "pass"
    assert checks["torch"]["status"] == "pass" and "2.13.0" in checks["torch"]["detail"]
    assert checks["cuda"]["status"] == "fail"
    assert (
        "CPU-only" in checks["cuda"]["detail"]
        and "torch.version.cuda is None" in (checks["cuda"]["detail"])
    )
    assert "--allow-cpu" in checks["cuda"]["fix"]
    assert checks["dataloader"]["status"] == "pass"
    assert [c for c in checks.values() if c["status"] == "fail"] == [checks["cuda"]]
    accepted = run_envkit(
        "--matrix", str(CI_MATRIX), "doctor", "ci-cpu", "--allow-cpu", timeout=300
    )
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "warn  cuda" in accepted.stdout


@pytest.mark.skipif(_host_has_nvidia(), reason="this host has an NVIDIA driver")
def test_cuda_image_on_a_host_without_gpu_fails_with_the_reason(full_image):
    from envkit import matrix

    entries = matrix.load(str(Path(REPO) / "matrix.yaml"))
    entry = entries.get("torch2.14-cuda13")
    report = doctor.run_doctor(entry, all_entries=entries.entries)
    checks = {c.id: c for c in report.checks}
    assert report.ok is False
    assert checks["torch"].status == "pass"  # the image itself is what the entry says
    assert checks["cuda-build"].status == "pass"
    assert checks["cuda"].status == "fail"
    assert "no NVIDIA GPU on this host" in checks["cuda"].detail
    assert checks["driver-for-cuda"].status == "fail"
