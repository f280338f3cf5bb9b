"""The doctor runner: gathers facts, runs the probe through a fake engine, assembles the report.

Where the inputs were recorded, and which are DOCUMENTED EXAMPLES (the GPU side): doctor_cases.py.
"""

from __future__ import annotations

import json
import stat
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from doctor_cases import (
    CPU_HOST,
    H100_HOST,
    FakeEngine,
    FakeResult,
    by_id,
    gpu_docker_info,
    gpu_probe,
    probe_result,
)
from gpu_inputs import (
    ALL,
    H100,
    PROBES,
    PROC_550,
    TORCH14,
    TORCH113_CPU,
    TORCH213_CPU,
    TORCH214,
    error_text,
)

from envkit import doctor
from envkit.errors import ContainerStartFailed, EngineUnavailable, ProgramTimedOut


def test_orchestrator_unreachable_engine_fails_and_skips_the_image():
    engine = FakeEngine(info=EngineUnavailable("no Docker daemon is answering at unix:///x", "s"))
    report = doctor.run_doctor(TORCH213_CPU, engine=engine, host=CPU_HOST, all_entries=ALL)
    assert report.ok is False
    checks = by_id(report.checks)
    assert checks["engine"].status == "fail"
    assert checks["image"].status == "skip"
    assert engine.calls == []


def test_orchestrator_cpu_entry_runs_the_probe_without_gpus():
    engine = FakeEngine(outputs=[probe_result("cpu-container-torch2.13.json")])
    report = doctor.run_doctor(TORCH213_CPU, engine=engine, host=CPU_HOST, all_entries=ALL)
    assert engine.calls[0]["gpus"] is None
    assert engine.calls[0]["image"] == "envkit/torch2.13-cpu:latest"
    assert engine.calls[0]["program"] == doctor.PROBE_PATH
    assert report.ok is False  # no GPU: the one failure is cuda
    assert by_id(report.checks)["torch"].status == "pass"
    accepted = doctor.run_doctor(
        TORCH213_CPU,
        engine=FakeEngine(outputs=[probe_result("cpu-container-torch2.13.json")]),
        host=CPU_HOST,
        all_entries=ALL,
        allow_cpu=True,
    )
    assert accepted.ok is True and by_id(accepted.checks)["cuda"].status == "warn"
    assert json.loads(report.to_json())["probe"]["python"] == "3.11.2"


def test_orchestrator_cuda_entry_on_cpu_host_still_checks_the_image():
    engine = FakeEngine(outputs=[probe_result("cuda13-container-torch2.14-nogpu.json")])
    report = doctor.run_doctor(TORCH214, engine=engine, host=CPU_HOST, all_entries=ALL)
    assert engine.calls[0]["gpus"] is None
    checks = by_id(report.checks)
    assert report.ok is False
    assert checks["driver-for-cuda"].status == "fail"
    assert checks["torch"].status == "pass"  # the image's own facts were still checked
    assert checks["cuda"].status == "fail"
    assert "no NVIDIA GPU on this host" in checks["cuda"].detail
    # No CPU entry as new as torch 2.14 exists, so the nearest older ones are offered.
    assert report.suggestions == [TORCH213_CPU.name, TORCH113_CPU.name]


def test_allow_cpu_accepts_a_cuda_entry_on_a_host_without_a_driver():
    """What the shipped CI workflow runs on GPU-less runners for every CUDA entry."""
    report = doctor.run_doctor(
        TORCH214,
        engine=FakeEngine(outputs=[probe_result("cuda13-container-torch2.14-nogpu.json")]),
        host=CPU_HOST,
        all_entries=ALL,
        allow_cpu=True,
    )
    checks = by_id(report.checks)
    assert report.ok is True, [c for c in report.checks if c.status == "fail"]
    assert checks["driver-for-cuda"].status == "warn"
    assert checks["cuda"].status == "warn"
    assert checks["torch"].status == "pass"


def test_allow_cpu_does_not_excuse_a_driver_that_is_too_old():
    old_driver = replace(H100_HOST, proc_driver_text=PROC_550.replace("550.", "410."))
    report = doctor.run_doctor(
        TORCH214,
        engine=FakeEngine(outputs=[probe_result("cuda13-container-torch2.14-nogpu.json")]),
        host=replace(old_driver, nvidia_smi_output=H100.replace("550.", "410.")),
        all_entries=ALL,
        allow_cpu=True,
    )
    assert by_id(report.checks)["driver-for-cuda"].status == "fail"
    assert report.ok is False


def test_orchestrator_gpu_host_without_runtime_does_not_request_gpus():
    engine = FakeEngine(outputs=[probe_result("cuda13-container-torch2.14-nogpu.json")])
    report = doctor.run_doctor(TORCH214, engine=engine, host=H100_HOST, all_entries=ALL)
    assert engine.calls[0]["gpus"] is None
    cuda = by_id(report.checks)["cuda"]
    assert cuda.status == "fail"
    assert "Docker cannot attach GPUs" in cuda.detail
    assert cuda.fix == doctor.TOOLKIT_FIX


def test_orchestrator_gpu_refused_by_engine_retries_without_gpus():
    refused = ContainerStartFailed(
        error_text("engine-run-gpus-no-toolkit.txt").splitlines()[1], "x"
    )
    engine = FakeEngine(
        info=gpu_docker_info(),
        outputs=[refused, probe_result("cuda13-container-torch2.14-nogpu.json")],
    )
    report = doctor.run_doctor(TORCH214, engine=engine, host=H100_HOST, all_entries=ALL)
    assert [c["gpus"] for c in engine.calls] == ["all", None]
    checks = by_id(report.checks)
    assert checks["gpu-attach"].status == "fail"
    assert "could not select device driver" in checks["gpu-attach"].detail
    assert checks["cuda"].status == "fail"
    assert "NVIDIA Container Toolkit" in checks["cuda"].detail
    assert checks["torch"].status == "pass"


def test_orchestrator_probe_timeout_with_gpus_is_not_a_refusal():
    engine = FakeEngine(info=gpu_docker_info(), outputs=[ProgramTimedOut("python3 ... 600s", "x")])
    report = doctor.run_doctor(TORCH214, engine=engine, host=H100_HOST, all_entries=ALL)
    assert [c["gpus"] for c in engine.calls] == ["all"]  # no second run without GPUs
    checks = by_id(report.checks)
    assert "gpu-attach" not in checks
    assert checks["probe"].status == "fail"
    assert "did not finish within 600s with the GPUs attached" in checks["probe"].detail
    assert report.ok is False


def test_probe_timeout_on_a_ptx_only_gpu_names_the_jit(facts, monkeypatch):
    # A build whose only code for sm_90 is compute_80 PTX (its libraries are separate
    # packages): on an H100 the driver JIT-compiles the whole library at the first CUDA call.
    monkeypatch.setattr(facts, "arch_list", lambda torch, cuda: ("sm_80", "compute_80"))
    engine = FakeEngine(info=gpu_docker_info(), outputs=[ProgramTimedOut("python3 ... 600s", "x")])
    report = doctor.run_doctor(TORCH214, engine=engine, host=H100_HOST, all_entries=ALL)
    probe = by_id(report.checks)["probe"]
    assert probe.status == "fail"
    assert "only PTX for sm_90" in probe.detail
    assert "ComputeCache" in probe.fix


def test_probe_timeout_of_torch_1_4_on_an_h100_does_not_promise_a_jit_cache(facts):
    # torch 1.4's compute_37 PTX covers sm_90, but its linked-in cuBLAS/cuDNN have no code for
    # it: a JIT cache cannot make it work, so the timeout is not explained that way.
    engine = FakeEngine(info=gpu_docker_info(), outputs=[ProgramTimedOut("python3 ... 600s", "x")])
    report = doctor.run_doctor(TORCH14, engine=engine, host=H100_HOST, all_entries=ALL)
    checks = by_id(report.checks)
    assert checks["probe"].status == "fail"
    assert "PTX" not in checks["probe"].detail and "ComputeCache" not in checks["probe"].fix
    assert checks["arch"].status == "fail" and "cuBLAS" in checks["arch"].detail


def test_orchestrator_engine_lost_during_gpu_probe_is_not_a_refusal():
    lost = EngineUnavailable("lost the Docker engine while python3 ran: reset", "check dockerd")
    engine = FakeEngine(info=gpu_docker_info(), outputs=[lost])
    report = doctor.run_doctor(TORCH214, engine=engine, host=H100_HOST, all_entries=ALL)
    assert len(engine.calls) == 1
    checks = by_id(report.checks)
    assert "gpu-attach" not in checks
    assert checks["image"].status == "fail" and "lost the Docker engine" in checks["image"].detail


def test_orchestrator_gpu_host_with_runtime_requests_all_gpus():
    engine = FakeEngine(
        info=gpu_docker_info(), outputs=[FakeResult(0, json.dumps(gpu_probe(1)), "")]
    )
    report = doctor.run_doctor(
        TORCH214,
        engine=engine,
        host=H100_HOST,
        all_entries=ALL,
        image="registry.example/envkit/torch2.14-cuda13:abc",
    )
    assert engine.calls[0]["gpus"] == "all"
    assert engine.calls[0]["image"] == "registry.example/envkit/torch2.14-cuda13:abc"
    checks = by_id(report.checks)
    assert checks["gpu-attach"].status == "pass"
    assert checks["gpu0-kernels"].status == "pass"


def test_orchestrator_missing_image_says_build_it():
    engine = FakeEngine(images=())
    report = doctor.run_doctor(TORCH213_CPU, engine=engine, host=CPU_HOST, all_entries=ALL)
    image = by_id(report.checks)["image"]
    assert image.status == "fail"
    assert image.fix == "build it: envkit build torch2.13-cpu"
    assert engine.calls == []


def test_orchestrator_probe_without_json_is_a_failure():
    engine = FakeEngine(outputs=[FakeResult(139, "", "Segmentation fault (core dumped)\n")])
    report = doctor.run_doctor(TORCH213_CPU, engine=engine, host=CPU_HOST, all_entries=ALL)
    probe = by_id(report.checks)["probe"]
    assert probe.status == "fail"
    assert "exit code 139" in probe.detail and "Segmentation fault" in probe.detail


def test_orchestrator_host_only_does_not_run_containers():
    engine = FakeEngine()
    report = doctor.run_doctor(engine=engine, host=CPU_HOST)
    assert report.ok is True
    assert engine.calls == []
    assert {c.id for c in report.checks} == {"engine", "gpu-runtime", "driver", "shm"}


@pytest.mark.parametrize("contained, where", [(True, "container:"), (False, "host:")])
def test_orchestrator_host_probe_runs_this_python(tmp_path, contained, where):
    # A stand-in interpreter that prints the recorded host report, as the probe would. That
    # recording was made on a machine that is itself a container; `--host` trusts the probe.
    recorded = json.loads((PROBES / "cpu-host-torch2.13.json").read_text())
    assert recorded["in_container"] is True
    recorded["in_container"] = contained
    (tmp_path / "report.json").write_text(json.dumps(recorded))
    fake_python = tmp_path / "python"
    fake_python.write_text(f"#!/bin/sh\ncat {tmp_path / 'report.json'}\n")
    fake_python.chmod(fake_python.stat().st_mode | stat.S_IEXEC)
    report = doctor.run_doctor(
        TORCH213_CPU, host_probe=True, host=CPU_HOST, all_entries=ALL, python=str(fake_python)
    )
    checks = by_id(report.checks)
    assert checks["engine"].status == "skip"
    assert checks["torch"].status == "pass"
    assert checks["probe-shm"].detail.startswith(where)
    assert report.ok is False and checks["cuda"].status == "fail"


def test_doctor_module_does_not_import_torch():
    import subprocess

    code = "import sys, envkit.doctor; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        check=True,
    )
    assert out.stdout.strip() == "False"


def test_a_gpu_fallen_off_the_bus_keeps_the_driver_version_and_the_answering_gpus():
    # nvidia-smi lists GPU 0 and then fails on the next one; the driver is there and works.
    broken = replace(
        H100_HOST,
        nvidia_smi_error="Unable to determine the device handle for GPU1: 0000:3B:00.0: "
        "Unknown Error",
    )
    engine = FakeEngine(
        info=gpu_docker_info(), outputs=[probe_result("cuda13-container-torch2.14-nogpu.json")]
    )
    report = doctor.run_doctor(TORCH14, engine=engine, host=broken, all_entries=ALL)
    checks = by_id(report.checks)
    assert checks["driver"].status == "fail"
    assert "then failed on another" in checks["driver"].detail
    # The static checks still know driver 550 and the H100: torch 1.4 cannot run on sm_90.
    assert checks["driver-for-cuda"].status == "pass"
    assert "550.54.15" in checks["driver-for-cuda"].detail
    assert checks["arch"].status == "fail"
    assert report.suggestions and all(
        next(e for e in ALL if e.name == name).cuda for name in report.suggestions
    )
    # The GPU that answered is requested by index, not --gpus all.
    assert [c["gpus"] for c in engine.calls] == ["0"]
    assert "--gpus '\"device=0\"'" in checks["gpu-attach"].detail


def test_orchestrator_compares_the_image_user_with_the_caller(monkeypatch):
    monkeypatch.setattr(doctor.runner, "caller_uid", lambda: 1234)
    engine = FakeEngine(outputs=[probe_result("cuda13-container-torch2.14-nogpu.json")])
    report = doctor.run_doctor(TORCH214, engine=engine, host=CPU_HOST, all_entries=ALL)
    user = by_id(report.checks)["user"]
    assert user.status == "warn" and "you are uid 1234" in user.detail


def test_orchestrator_reads_rootless_and_docker_desktop_from_the_engine(monkeypatch):
    monkeypatch.setattr(doctor.runner, "caller_uid", lambda: 1234)
    rootless = gpu_docker_info(SecurityOptions=["name=seccomp,profile=builtin", "name=rootless"])
    desktop = gpu_docker_info(OperatingSystem="Docker Desktop", KernelVersion="6.10.14-linuxkit")
    users = {}
    for label, info in (("rootless", rootless), ("desktop", desktop)):
        engine = FakeEngine(info=info, outputs=[probe_result("cpu-container-torch2.13.json")])
        report = doctor.run_doctor(TORCH213_CPU, engine=engine, host=CPU_HOST, all_entries=ALL)
        users[label] = by_id(report.checks)["user"]
    assert users["rootless"].status == "pass" and "rootless" in users["rootless"].detail
    # Docker Desktop's file sharing hands bind-mounted files to the host user: no comparison.
    assert users["desktop"].status == "pass"


# The NVIDIA Container Toolkit's refusal of an image whose NVIDIA_REQUIRE_CUDA the driver does
# not meet, as nvidia-container-cli words it (libnvidia-container's requirement check). Not
# recorded here (no GPU machine): a DOCUMENTED EXAMPLE of the text docker prints.
UNSATISFIED = (
    "failed to create shim task: OCI runtime create failed: runc create failed: unable to start "
    "container process: error during container init: error running hook #0: error running "
    "hook: exit status 1, stdout: , stderr: Auto-detected mode as 'legacy'\n"
    "nvidia-container-cli: requirement error: unsatisfied condition: cuda>=13.0, please update "
    "your driver to a newer version, or use an earlier cuda container: unknown"
)


def test_toolkit_refusing_the_images_cuda_is_explained_with_entries_that_run():
    engine = FakeEngine(
        info=gpu_docker_info(),
        outputs=[
            ContainerStartFailed(UNSATISFIED, "x"),
            probe_result("cuda13-container-torch2.14-nogpu.json"),
        ],
    )
    report = doctor.run_doctor(TORCH214, engine=engine, host=H100_HOST, all_entries=ALL)
    assert [c["gpus"] for c in engine.calls] == ["all", None]
    attach = by_id(report.checks)["gpu-attach"]
    assert attach.status == "fail"
    assert "older than the CUDA version the image declares" in attach.detail
    assert "unsatisfied condition: cuda>=13.0" in attach.detail
    assert report.suggestions, "a 550 driver runs older CUDA entries"
    assert "entries that run on this driver: " + ", ".join(report.suggestions) in attach.fix
    assert report.ok is False


class LabelledEngine(FakeEngine):
    def __init__(self, attrs, **kwargs):
        super().__init__(**kwargs)
        self.attrs = attrs

    def image_attrs(self, ref):
        return self.attrs


def image_attrs_of(entry) -> dict:
    """Inspect data of the shipped entry of that name's image, as envkit builds it."""
    from envkit import build, dockerfile, matrix

    shipped = matrix.load().get(entry.name)
    env = [f"NVIDIA_REQUIRE_CUDA={dockerfile.require_cuda(shipped)}"] if shipped.cuda else []
    return {"Config": {"Labels": build.labels(shipped, "0" * 12), "Env": ["PATH=/x", *env]}}


def test_doctor_reads_the_images_requirements_back():
    engine = LabelledEngine(
        image_attrs_of(TORCH214),
        info=gpu_docker_info(),
        outputs=[probe_result("cuda13-container-torch2.14-nogpu.json")],
    )
    report = doctor.run_doctor(TORCH214, engine=engine, host=H100_HOST, all_entries=ALL)
    requires = by_id(report.checks)["requires"]
    assert requires.status == "fail"  # the H100 host's driver is 550; CUDA 13 needs 580
    assert "needs driver >= 580 (NVIDIA_REQUIRE_CUDA cuda>=13.0)" in requires.detail
    assert "sm_90" in requires.detail and "550" in requires.detail


def test_requirement_check_of_cpu_and_unlabelled_images():
    from envkit.doctor.image_checks import image_requirements, refused_cuda, requirement_check

    cpu = requirement_check(image_requirements(image_attrs_of(TORCH213_CPU)), None)
    assert cpu.status == "pass" and "CPU-only" in cpu.detail
    assert requirement_check(image_requirements({"Config": {}}), "550.54").status == "skip"
    assert refused_cuda(UNSATISFIED) == "13.0"
    assert refused_cuda("could not select device driver") is None
