"""Doctor static checks: an entry's driver and arch rows on a host's GPUs and driver.

Where the inputs were recorded, and which are DOCUMENTED EXAMPLES (the GPU side): doctor_cases.py.
"""

from __future__ import annotations

import json

import pytest
from doctor_cases import by_id
from gpu_inputs import (
    A100,
    ALL,
    H100,
    TORCH14,
    TORCH16,
    TORCH17,
    TORCH20,
    TORCH113,
    TORCH113_CPU,
    V100_418,
    Entry,
    fake_nvidia_smi,
    gpus_of,
    suggest,
)

from envkit import doctor


def test_torch113_on_h100_predicts_no_kernel_image_and_suggests_a_covering_entry(facts):
    checks = by_id(doctor.static_checks(TORCH113, gpus_of(H100), "550.54.15", ALL))
    arch = checks["arch"]
    assert arch.status == "fail"
    assert "no kernel image is available" in arch.detail
    assert "sm_90" in arch.detail
    assert checks["driver-for-cuda"].status == "pass"
    suggested = suggest(TORCH113, gpus_of(H100), "550.54.15", ALL)
    assert suggested, "an entry covering sm_90 exists"
    assert suggested[0] is TORCH20  # nearest newer torch whose build covers sm_90
    for entry in suggested:
        assert facts.kernel_supports(facts.arch_list(entry.torch, entry.cuda), "9.0")
    assert TORCH20.name in arch.fix


def test_torch16_on_a100_fails():
    arch = by_id(doctor.static_checks(TORCH16, gpus_of(A100), "535.104.05", ALL))["arch"]
    assert arch.status == "fail"
    assert "sm_80" in arch.detail
    assert "no kernel image" in arch.detail


def test_old_driver_for_cuda_118_fails_and_suggests_what_418_can_run(facts):
    checks = by_id(doctor.static_checks(TORCH20, gpus_of(V100_418), "418.87.01", ALL))
    driver = checks["driver-for-cuda"]
    assert driver.status == "fail"
    assert "418.87.01" in driver.detail
    assert "CUDA driver version is insufficient" in driver.detail
    assert f">= {facts.min_driver_for('11.8')}" in driver.fix
    # Only CUDA 10.1 runs on a 418 driver; nothing newer does, so the older torch is offered.
    suggested = suggest(TORCH20, gpus_of(V100_418), "418.87.01", ALL)
    assert [e.name for e in suggested] == [TORCH14.name]
    assert TORCH14.name in driver.fix


def test_driver_between_compat_floor_and_toolkit_driver_warns_and_is_suggested(facts):
    # torch 2.8 + CUDA 12.8 wheels on the 535 LTS driver common on H100 clusters: below the
    # toolkit's own driver, above the 12.x minor-version-compatibility floor (525).
    entry = Entry("torch2.8-cuda12.8", "2.8.0", "12.8", python="3.12")
    assert facts.driver_version(facts.min_driver_for(entry.cuda)) > (535, 104, 5)
    driver = by_id(doctor.static_checks(entry, gpus_of(H100), "535.104.05", ALL))["driver-for-cuda"]
    assert driver.status == "warn"
    assert "minor-version compatibility" in driver.detail
    assert f">= {facts.min_driver_for(entry.cuda)}" in driver.fix
    # ... and an entry the driver can run is offered when another entry fails on this host.
    assert entry in suggest(TORCH113, gpus_of(H100), "535.104.05", [entry])
    # Below the floor it fails and names the floor.
    below = by_id(doctor.static_checks(entry, gpus_of(H100), "520.61.05", ALL))["driver-for-cuda"]
    assert below.status == "fail" and "525" in below.detail


def test_cuda_11_0_runs_on_its_own_driver_below_the_11x_compat_floor(facts):
    # 11.0's own driver (450.51.05) is older than the 11.x compatibility floor (450.80.02).
    driver = by_id(doctor.static_checks(TORCH17, gpus_of(A100), "450.51.06", ALL))[
        "driver-for-cuda"
    ]
    assert driver.status == "pass"
    assert TORCH17 in suggest(TORCH16, gpus_of(A100), "450.51.06", [TORCH17])


def test_a_gpu_only_ptx_covers_fails_below_the_toolkit_driver(facts, monkeypatch):
    # Minor-version compatibility cannot JIT newer PTX: a build whose only code for sm_90 is
    # compute_80 PTX needs CUDA 12.8's own driver on an H100, not just the 12.x floor.
    entry = Entry("torch2.8-cuda12.8", "2.8.0", "12.8", python="3.12")
    real = facts.arch_list
    monkeypatch.setattr(
        facts,
        "arch_list",
        lambda torch, cuda: ("sm_80", "compute_80") if torch == "2.8.0" else real(torch, cuda),
    )
    checks = by_id(doctor.static_checks(entry, gpus_of(H100), "535.104.05", ALL))
    assert checks["driver-for-cuda"].status == "fail"
    assert "only PTX for GPU 0 (sm_90)" in checks["driver-for-cuda"].detail
    assert entry not in suggest(TORCH113, gpus_of(H100), "535.104.05", [entry])
    at_toolkit_driver = facts.min_driver_for("12.8")
    checks = by_id(doctor.static_checks(entry, gpus_of(H100), at_toolkit_driver, ALL))
    assert checks["driver-for-cuda"].status == "pass"


def test_supported_entry_passes(facts):
    checks = by_id(doctor.static_checks(TORCH20, gpus_of(H100), "550.54.15", ALL))
    assert checks["driver-for-cuda"].status == "pass"
    assert checks["arch"].status == "pass"
    assert "sm_90" in checks["arch"].detail


def test_cpu_only_entry_skips_gpu_predictions():
    checks = doctor.static_checks(TORCH113_CPU, gpus_of(H100), "550.54.15", ALL)
    assert [c.status for c in checks] == ["skip", "skip"]


def test_cuda_entry_on_host_without_driver_fails_and_suggests_cpu_entries():
    checks = by_id(doctor.static_checks(TORCH113, [], None, ALL))
    assert checks["driver-for-cuda"].status == "fail"
    assert checks["arch"].status == "skip"
    suggested = suggest(TORCH113, [], None, ALL)
    assert suggested[0] is TORCH113_CPU  # same torch major.minor first
    assert all(e.cuda is None for e in suggested)


def test_cli_static_check_on_an_h100_predicts_no_kernel_image_and_suggests(tmp_path, monkeypatch):
    # nvidia-smi's documented CSV for one H100 (no GPU machine is available to record one).
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path, f"printf '{H100}'\n"))
    from click.testing import CliRunner

    from envkit.cli import main

    result = CliRunner().invoke(main, ["doctor", "torch1.13-cuda11", "--static", "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    checks = {c["id"]: c for c in report["checks"]}
    assert checks["arch"]["status"] == "fail"
    assert "no kernel image is available" in checks["arch"]["detail"]
    assert "sm_90" in checks["arch"]["detail"] or "9.0" in checks["arch"]["detail"]
    assert checks["driver-for-cuda"]["status"] == "pass"  # 550 is new enough for CUDA 11.7
    from envkit import facts, matrix

    assert report["suggestions"], "entries that work on this host are named"
    for name in report["suggestions"]:
        entry = matrix.load().get(name)
        assert entry.cuda is None or facts.kernel_supports(
            facts.arch_list(entry.torch, entry.cuda), "9.0"
        )


def test_cli_static_check_fails_a_torch_1_4_build_on_an_h100_despite_its_ptx(tmp_path, monkeypatch):
    # torch 1.4.0+cu101 ships sm_37..sm_75 and compute_37 PTX for its own kernels, but the
    # cuBLAS/cuDNN/cuFFT linked into the wheel stop at sm_75 with no PTX (scripts/fatbin_archs.py
    # on the real wheel): on sm_90 matrix multiplies and convolutions cannot run.
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path, f"printf '{H100}'\n"))
    from click.testing import CliRunner

    from envkit import facts, matrix
    from envkit.cli import main

    result = CliRunner().invoke(main, ["doctor", "torch1.4-cuda10", "--static", "--json"])
    report = json.loads(result.output)
    arch = {c["id"]: c for c in report["checks"]}["arch"]
    assert arch["status"] == "fail" and result.exit_code == 1
    assert "cuBLAS" in arch["detail"] and "sm_75" in arch["detail"]
    assert "compute_37" in arch["detail"] and "CUBLAS_STATUS_EXECUTION_FAILED" in arch["detail"]
    assert report["suggestions"]
    for name in report["suggestions"]:
        entry = matrix.load().get(name)
        assert facts.kernel_supports(facts.arch_list(entry.torch, entry.cuda), "9.0")
        assert not facts.beyond_libraries(entry.torch, entry.cuda, "9.0"), name


@pytest.mark.parametrize(
    "name, status",
    [
        # CUDA 9.0's libraries predate Turing (pytorch/pytorch#16034, #18620), although torch's
        # own sm_70 code is binary-compatible with sm_75.
        ("torch1.0-cuda9", "fail"),
        ("torch1.4-cuda10", "pass"),  # CUDA 10.1 has Turing code
        ("torch1.6-cuda10", "pass"),
    ],
)
def test_cli_static_check_on_a_turing_gpu(tmp_path, monkeypatch, name, status):
    t4 = "0, Tesla T4, 15360, 7.5, 535.104.05, Disabled\n"
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path, f"printf '{t4}'\n"))
    from click.testing import CliRunner

    from envkit.cli import main

    result = CliRunner().invoke(main, ["doctor", name, "--static", "--json"])
    arch = {c["id"]: c for c in json.loads(result.output)["checks"]}["arch"]
    assert arch["status"] == status, arch
    if status == "fail":
        assert "CUDA 9.0's cuBLAS" in arch["detail"] and "up to sm_70" in arch["detail"]
