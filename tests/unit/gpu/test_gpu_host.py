"""envkit.gpu.host: nvidia-smi's rows, the kernel module's version line, and gathering both.

No GPU machine was available for recording, so the inputs are DOCUMENTED EXAMPLES
(tests/gpu_inputs.py): nvidia-smi CSV rows follow NVIDIA's documented
`--format=csv,noheader,nounits` layout, /proc/driver/nvidia/version lines the documented first
line, and a stand-in nvidia-smi on PATH prints them the way the real one does.
"""

from __future__ import annotations

import os

from gpu_inputs import A100_MIG, PROC_550, PROC_OPEN_535, TWO_RTX, fake_nvidia_smi, gpus_of

from envkit.gpu import host
from envkit.gpu.host import HostGpu


def test_parse_nvidia_smi_rows():
    gpus = gpus_of(TWO_RTX)
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0] == HostGpu(0, "NVIDIA GeForce RTX 3090", 24576, "8.6", "550.54.15", None)


def test_parse_nvidia_smi_mig_and_missing_fields(facts):
    (gpu,) = gpus_of(A100_MIG)
    assert gpu.mig == "Enabled"
    # An old driver without compute_cap: the capability comes from the known-models table.
    (old,) = gpus_of("0, Tesla V100-SXM2-16GB, 16160, [N/A], 418.87.01, [N/A]\n")
    assert old.capability == facts.gpu_model_for("Tesla V100-SXM2-16GB").capability == "7.0"
    assert old.mig is None


def test_parse_nvidia_smi_ignores_chatter():
    assert gpus_of("No devices were found\n") == []


def test_parse_proc_driver_version():
    assert host.parse_proc_driver(PROC_550) == "550.54.15"
    assert host.parse_proc_driver(PROC_OPEN_535) == "535.104.05"
    assert host.parse_proc_driver(None) is None


def test_run_nvidia_smi_drops_fields_an_old_driver_rejects(tmp_path, monkeypatch):
    # Documented behaviour of nvidia-smi before 510: an unknown field fails the whole query.
    script = (
        'case "$1" in *compute_cap*) echo \'Field "compute_cap" is not a valid field to '
        "query.'; exit 2;; esac\n"
        "echo '0, Tesla V100-SXM2-16GB, 16160, 418.87.01, [N/A]'\n"
    )
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path, script))
    output, error = host.run_nvidia_smi()
    assert error is None
    (gpu,) = host.parse_nvidia_smi(output)
    assert gpu.driver == "418.87.01"
    assert gpu.capability == "7.0"  # from the model table, since the driver could not say


def test_run_nvidia_smi_reports_mismatch_text(tmp_path, monkeypatch):
    script = "echo 'Failed to initialize NVML: Driver/library version mismatch'; exit 18\n"
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path, script))
    output, error = host.run_nvidia_smi()
    assert output is None
    assert "Driver/library version mismatch" in error


def test_run_nvidia_smi_times_out(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_nvidia_smi(tmp_path, "sleep 5\n"))
    output, error = host.run_nvidia_smi(timeout=0.5)
    assert output is None and "did not answer" in error


def test_gather_host_on_this_machine():
    facts = host.gather_host()
    st = os.statvfs("/dev/shm")
    assert facts.shm_bytes == st.f_frsize * st.f_blocks
    if not any(
        os.access(os.path.join(d, "nvidia-smi"), os.X_OK)
        for d in os.environ["PATH"].split(os.pathsep)
    ):
        assert facts.nvidia_smi_output is None
        assert facts.nvidia_smi_error == host.NVIDIA_SMI_MISSING
