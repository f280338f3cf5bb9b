"""Doctor probe checks: what the probe found inside the image (or on the host).

Where the inputs were recorded, and which are DOCUMENTED EXAMPLES (the GPU side): doctor_cases.py.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from doctor_cases import by_id, gpu_probe
from gpu_inputs import PROBES, TORCH14, TORCH16, TORCH213_CPU, TORCH214, Entry, recorded

from envkit import doctor


def test_recorded_cpu_container_matches_cpu_entry():
    checks = by_id(doctor.container_checks(recorded("cpu-container-torch2.13.json"), TORCH213_CPU))
    assert checks["torch"].status == "pass" and "2.13.0+cpu" in checks["torch"].detail
    assert checks["python"].status == "pass"
    assert checks["cuda-build"].status == "pass"
    # doctor proves GPU use: a CPU-only entry fails that, with the reason and both ways out
    assert checks["cuda"].status == "fail"
    assert "CPU-only entry" in checks["cuda"].detail
    assert "torch.version.cuda is None" in checks["cuda"].detail
    assert "--allow-cpu" in checks["cuda"].fix and "envkit list --torch" in checks["cuda"].fix
    assert checks["dataloader"].status == "pass"
    # Docker's default /dev/shm is 64 MiB: enough for this DataLoader, risky for real ones.
    assert checks["probe-shm"].status == "warn"
    assert "--shm-size" in checks["probe-shm"].fix
    assert checks["user"].detail.startswith("uid 0, gid 0")
    assert [c.id for c in checks.values() if c.status == "fail"] == ["cuda"]


def test_recorded_cpu_container_against_a_cuda_entry_fails():
    cuda_entry = Entry("torch2.13-cuda12.8", "2.13.0", "12.8", python="3.11")
    checks = by_id(doctor.container_checks(recorded("cpu-container-torch2.13.json"), cuda_entry))
    assert checks["cuda-build"].status == "fail"
    assert checks["cuda"].status == "fail"
    assert "CPU-only build" in checks["cuda"].detail
    assert "envkit build torch2.13-cuda12.8" in checks["cuda"].fix


def test_recorded_small_shm_makes_the_dataloader_fail_with_the_fix():
    probe = recorded("cpu-container-torch2.13-shm1m-nobody.json")
    checks = by_id(doctor.container_checks(probe, TORCH213_CPU))
    loader = checks["dataloader"]
    assert loader.status == "fail"
    assert "shared memory" in loader.detail
    assert "1 MiB" in loader.detail
    assert "\n" not in loader.detail
    assert "--shm-size" in loader.fix
    assert "uid 65534" in checks["user"].detail


def test_recorded_cuda_image_without_gpus_says_why():
    probe = recorded("cuda13-container-torch2.14-nogpu.json")
    checks = by_id(doctor.container_checks(probe, TORCH214))
    assert checks["torch"].status == "pass"
    assert checks["cuda-build"].status == "pass"
    assert checks["torchvision"].status == "pass"
    cuda = checks["cuda"]
    assert cuda.status == "fail"
    assert "no /dev/nvidia" in cuda.detail
    assert "--gpus all" in cuda.fix
    assert checks["gpu-kernels"].status == "skip"


def test_doctor_reason_for_not_requesting_gpus_wins():
    probe = recorded("cuda13-container-torch2.14-nogpu.json")
    reason = ("no GPU requested: Docker cannot attach GPUs", doctor.TOOLKIT_FIX)
    cuda = by_id(doctor.container_checks(probe, TORCH214, no_gpu=reason))["cuda"]
    assert cuda.status == "fail"
    assert "Docker cannot attach GPUs" in cuda.detail
    assert cuda.fix == doctor.TOOLKIT_FIX


def test_recorded_host_probe_without_entry_has_no_failures():
    checks = by_id(doctor.container_checks(recorded("cpu-host-torch2.13.json")))
    assert checks["cuda"].status == "skip"
    assert checks["torchvision"].status == "skip"
    assert all(c.status != "fail" for c in checks.values())


def test_entry_version_mismatches_fail():
    probe = recorded("cuda13-container-torch2.14-nogpu.json")
    wrong = Entry(
        "torch2.14-cuda12.8", "2.14.0", "12.8", python="3.12", torchvision="0.29.0", cudnn="9.1"
    )
    checks = by_id(doctor.container_checks(probe, wrong))
    for check_id in ("python", "torch", "cuda-build", "torchvision"):
        assert checks[check_id].status == "fail", check_id
        assert "envkit build torch2.14-cuda12.8" in checks[check_id].fix
    assert checks["cudnn"].status == "warn"
    right_cudnn = Entry("x", "2.14.1", "13.0", python="3.11", torchvision="0.29.1", cudnn="9.24")
    assert by_id(doctor.container_checks(probe, right_cudnn))["cudnn"].status == "pass"


def test_torch_import_failure_fails():
    probe = recorded("cpu-container-torch2.13.json")
    probe.update(torch=None, torch_error="ImportError: libcudnn.so.8: cannot open shared object")
    checks = by_id(doctor.container_checks(probe, TORCH213_CPU))
    assert checks["torch"].status == "fail"
    assert "libcudnn.so.8" in checks["torch"].detail
    assert "cuda" not in checks


def test_recorded_torch_1_1_probe_on_python_3_7_matches_its_entry(facts):
    # Real output of the probe under Python 3.7.16 with PyPI's torch 1.1.0 (CUDA 9.0 build) and
    # torchvision 0.3.0, on this GPU-less machine: the oldest stack the matrix lists.
    probe = recorded("cuda90-host-torch1.1.0-py37-nogpu.json")
    entry = Entry("torch1.1-cuda9", "1.1.0", "9.0", python="3.7", torchvision="0.3.0")
    entry = replace(entry, cudnn="7.5.1")
    checks = by_id(doctor.container_checks(probe, entry))
    for check_id in ("probe", "python", "torch", "cuda-build", "cudnn", "torchvision"):
        assert checks[check_id].status == "pass", checks[check_id]
    assert probe["cuda"]["arch_list"] is None  # torch 1.1 has no get_arch_list()
    assert checks["cuda"].status == "fail" and "/dev/nvidia" in checks["cuda"].detail
    assert checks["dataloader"].status == "pass"


@pytest.mark.parametrize(
    "name, entry_name",
    [
        # Real probe outputs from images `envkit build` made from PyPI's wheels (no GPU here).
        ("cuda90-container-torch1.0.1-py37-nogpu.json", "torch1.0-cuda9"),
        ("cuda90-container-torch1.1.0-py37-nogpu.json", "torch1.1-cuda9"),
        ("cuda100-container-torch1.2.0-py37-nogpu.json", "torch1.2-cuda10"),
        ("cuda101-container-torch1.3.1-py37-nogpu.json", "torch1.3-cuda10"),
        ("cuda101-container-torch1.4.0-py38-nogpu.json", "torch1.4-cuda10"),
        ("cuda102-container-torch1.5.1-py38-nogpu.json", "torch1.5-cuda10"),
        ("cuda102-container-torch1.6.0-py38-nogpu.json", "torch1.6-cuda10"),
        ("cuda102-container-torch1.7.1-nogpu.json", "torch1.7-cuda10"),
        ("cuda102-container-torch1.8.1-nogpu.json", "torch1.8-cuda10"),
        ("cuda13-container-torch2.14-nogpu.json", "torch2.14-cuda13"),
    ],
)
def test_recorded_images_match_their_shipped_matrix_entries(name, entry_name):
    from envkit import matrix

    entry = matrix.load().get(entry_name)
    checks = by_id(doctor.container_checks(recorded(name), entry))
    for check_id in ("probe", "python", "torch", "cuda-build", "cudnn", "torchvision"):
        assert checks[check_id].status == "pass", checks[check_id]
    assert checks["cuda"].status == "fail" and "--gpus all" in checks["cuda"].fix
    assert checks["dataloader"].status == "pass"


def test_fatal_probe_fails():
    (check,) = doctor.container_checks({"fatal": "MemoryError"}, TORCH213_CPU)
    assert check.status == "fail" and "MemoryError" in check.detail


def test_working_gpus_pass_kernels_and_nccl():
    checks = by_id(doctor.container_checks(gpu_probe(2), TORCH214))
    assert checks["cuda"].status == "pass"
    assert "2 device(s)" in checks["cuda"].detail
    assert checks["gpu0-kernels"].status == "pass"
    assert checks["gpu1-kernels"].status == "pass"
    assert "sm_90" in checks["gpu0-kernels"].detail
    assert checks["nccl"].status == "pass"


def test_single_gpu_skips_nccl():
    assert by_id(doctor.container_checks(gpu_probe(1), TORCH214))["nccl"].status == "skip"


def test_missing_nccl_with_two_gpus_fails():
    probe = gpu_probe(2)
    probe["nccl"] = {"available": False, "version": None, "error": None}
    assert by_id(doctor.container_checks(probe, TORCH214))["nccl"].status == "fail"


def test_no_kernel_image_on_a_gpu_is_explained():
    probe = gpu_probe(1)
    probe["cuda"]["arch_list"] = ["sm_37", "sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86"]
    error = "RuntimeError: CUDA error: no kernel image is available for execution on the device"
    probe["kernels"][0]["matmul"] = {"ok": False, "error": error}
    check = by_id(doctor.container_checks(probe, None))["gpu0-kernels"]
    assert check.status == "fail"
    assert "no kernels compiled" in check.detail
    assert "arch list" in check.fix


def test_cuda_error_under_torch_2_boilerplate_is_still_explained():
    # torch 2.x appends three lines of advice under every CUDA error; the cause is above them.
    probe = gpu_probe(1)
    # The message as torch 2.9+ words it (torch/csrc/cuda: c10::AcceleratorError).
    probe["kernels"][0]["matmul"] = {
        "ok": False,
        "error": "AcceleratorError: CUDA error: no kernel image is available for execution on "
        "the device\nSearch for `cudaErrorNoKernelImageForDevice' in "
        "https://docs.nvidia.com/cuda/cuda-runtime-api/group__CUDART__TYPES.html for more "
        "information.\nCUDA kernel errors might be asynchronously reported at some other API "
        "call, so the stacktrace below might be incorrect.\nFor debugging consider passing "
        "CUDA_LAUNCH_BLOCKING=1\nCompile with `TORCH_USE_CUDA_DSA` to enable device-side "
        "assertions.\n",
    }
    check = by_id(doctor.container_checks(probe, TORCH214))["gpu0-kernels"]
    assert "no kernels compiled" in check.detail
    assert "matmul: AcceleratorError: CUDA error: no kernel image" in check.detail
    assert "TORCH_USE_CUDA_DSA" not in check.detail and "Search for" not in check.detail
    assert "ECC" not in check.fix


@pytest.mark.parametrize(
    "entry, why",
    [
        # torch 1.6 has no get_arch_list(); its cu102 build has no sm_90 kernels (facts say so).
        (TORCH16, "lacks sm_90"),
        # torch 1.4's own compute_37 PTX covers sm_90; the cuBLAS linked into the wheel does not.
        (TORCH14, "libraries linked into this build (cuBLAS, cuDNN) stop at sm_75"),
    ],
)
@pytest.mark.parametrize(
    "error",
    [
        "RuntimeError: CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling "
        "`cublasSgemm( handle, opa, opb, m, n, k, &alpha, a, lda, b, ldb, &beta, c, ldc)`",
        "RuntimeError: CUDA error: no kernel image is available for execution on the device",
    ],
)
def test_a_kernel_failure_of_old_torch_without_arch_list_is_explained_from_the_facts(
    entry, why, error
):
    probe = gpu_probe(1)
    probe["torch"]["version"] = entry.torch
    probe["cuda"]["arch_list"] = None
    probe["kernels"][0]["matmul"] = {"ok": False, "error": error}
    check = by_id(doctor.container_checks(probe, entry))["gpu0-kernels"]
    assert check.status == "fail"
    if "no kernel image" in error and entry is TORCH16:
        # CUDA's own text already says it; its generic explanation is kept.
        assert "no kernels compiled" in check.detail
    else:
        assert why in check.detail and "sm_90" in check.fix
    assert "ECC" not in check.fix


def test_a_kernel_failure_on_a_gpu_of_unknown_capability_is_still_explained():
    probe = gpu_probe(1)
    del probe["devices"][0]["capability"]
    error = "RuntimeError: CUDA error: no kernel image is available for execution on the device"
    probe["kernels"][0]["matmul"] = {"ok": False, "error": error}
    check = by_id(doctor.container_checks(probe, TORCH214))["gpu0-kernels"]
    assert check.status == "fail" and "no kernels compiled" in check.detail


def test_a_host_probe_of_another_torch_is_not_blamed_on_the_entrys_libraries():
    # `envkit doctor torch1.4-cuda10 --host` on a Python with torch 2.14: a failure there says
    # nothing about torch 1.4's linked-in cuBLAS.
    probe = gpu_probe(1)
    probe["kernels"][0]["matmul"] = {"ok": False, "error": "RuntimeError: CUDA error: unknown"}
    check = by_id(doctor.container_checks(probe, TORCH14, host_probe=True))["gpu0-kernels"]
    assert check.status == "fail"
    assert "libraries" not in check.detail and "ECC" in check.fix


def test_a_counted_gpu_that_cannot_be_opened_fails_with_the_mig_way_out():
    # NVML counts whole GPUs; on a MIG host CUDA can open only the instance it was given.
    probe = gpu_probe(2)
    probe["devices"][1] = {"index": 1, "error": "AssertionError: Invalid device id"}
    probe["kernels"] = probe["kernels"][:1]
    checks = by_id(doctor.container_checks(probe, TORCH214))
    assert checks["gpu0-kernels"].status == "pass"
    assert checks["gpu1-kernels"].status == "fail"
    assert "Invalid device id" in checks["gpu1-kernels"].detail
    assert "MIG" in checks["gpu1-kernels"].fix
    assert checks["nccl"].status == "skip"  # one usable GPU


def test_cuda_available_without_any_device_fails():
    probe = gpu_probe(1)
    probe["devices"], probe["kernels"] = [], []
    checks = by_id(doctor.container_checks(probe, TORCH214))
    assert checks["gpu-kernels"].status == "fail"
    assert not any(c.status == "pass" for c in checks.values() if "kernels" in c.id)


def test_wrong_gpu_result_fails():
    probe = gpu_probe(1)
    probe["kernels"][0]["conv"] = {"ok": False, "max_abs_error": 4.2, "bound": 0.05, "error": None}
    check = by_id(doctor.container_checks(probe, TORCH214))["gpu0-kernels"]
    assert check.status == "fail"
    assert "4.2" in check.detail
    assert "ECC" in check.fix


def test_driver_too_old_in_container_names_the_minimum(facts):
    probe = recorded("cuda13-container-torch2.14-nogpu.json")
    probe["nvidia"]["gpu_nodes"] = ["/dev/nvidia0"]
    probe["cuda"].update(
        reason="driver_too_old",
        detail="CUDA initialization: The NVIDIA driver on your system is too old (found version "
        "12020).",
    )
    cuda = by_id(doctor.container_checks(probe, TORCH214))["cuda"]
    assert cuda.status == "fail"
    assert "too old" in cuda.detail
    assert facts.min_driver_for("13.0") in cuda.fix


def test_bad_visible_devices_in_container():
    probe = recorded("cuda13-container-torch2.14-nogpu.json")
    probe["cuda"].update(
        reason="bad_visible_devices", detail="CUDA_VISIBLE_DEVICES=-1 hides every GPU"
    )
    cuda = by_id(doctor.container_checks(probe, TORCH214))["cuda"]
    assert cuda.status == "fail"
    assert "unset CUDA_VISIBLE_DEVICES" in cuda.fix


def test_parse_probe_output_tolerates_noise_before_the_document():
    text = (PROBES / "cpu-container-torch2.13.json").read_text()
    assert doctor.parse_probe_output(text)["python"] == "3.11.2"
    assert doctor.parse_probe_output("banner from the entrypoint\n" + text)["python"] == "3.11.2"
    assert doctor.parse_probe_output("Segmentation fault (core dumped)\n") is None
    assert doctor.parse_probe_output("") is None


def test_a_host_probe_without_gpus_gets_host_fixes_not_container_ones():
    # A real probe run on a host without a GPU (torch 1.1.0 cu90, Python 3.7).
    probe = json.loads((PROBES / "cuda90-host-torch1.1.0-py37-nogpu.json").read_text())
    probe["in_container"] = False
    probe["cuda"]["detail"] = (  # what the probe itself now says outside a container
        "no /dev/nvidia[0-9]* device nodes: this machine has no NVIDIA GPU, or its driver is not "
        "loaded"
    )
    cuda = by_id(doctor.container_checks(probe))["cuda"]
    assert cuda.status == "fail"
    assert "nvidia-smi" in cuda.fix and "--gpus" not in cuda.fix
    assert "container" not in cuda.detail
    probe["in_container"] = True
    cuda = by_id(doctor.container_checks(probe))["cuda"]
    assert cuda.status == "fail" and "--gpus all" in cuda.fix


def test_a_probe_that_does_not_say_where_it_ran_is_placed_by_how_the_doctor_ran_it():
    # Recordings older than the probe's `in_container` field.
    probe = json.loads((PROBES / "cuda90-host-torch1.1.0-py37-nogpu.json").read_text())
    probe.pop("in_container", None)
    on_host = by_id(doctor.container_checks(probe, host_probe=True))["cuda"]
    in_image = by_id(doctor.container_checks(probe))["cuda"]
    assert "--gpus" not in on_host.fix and "--gpus all" in in_image.fix


@pytest.mark.parametrize("reason", ["no_driver_library", "bad_visible_devices", "init_error"])
def test_every_cuda_reason_has_a_host_fix_without_container_words(reason):
    probe = json.loads((PROBES / "cuda90-host-torch1.1.0-py37-nogpu.json").read_text())
    probe["cuda"]["reason"] = reason
    probe["cuda"]["detail"] = "CUDA unknown error"
    probe["in_container"] = False
    on_host = by_id(doctor.container_checks(probe))["cuda"]
    probe["in_container"] = True
    inside = by_id(doctor.container_checks(probe))["cuda"]
    assert on_host.status == inside.status == "fail"
    assert "container" not in on_host.fix and "--gpus" not in on_host.fix
    assert "container" in inside.fix.lower()


@pytest.mark.parametrize("contained", [False, True])
def test_a_host_probe_that_differs_from_the_entry_does_not_say_rebuild_the_image(contained):
    # `--host` may run inside a container (a dev container, a CI job): still not the image.
    probe = json.loads((PROBES / "cpu-host-torch2.13.json").read_text())
    probe["in_container"] = contained
    torch = by_id(doctor.container_checks(probe, TORCH214, host_probe=True))["torch"]
    assert torch.status == "fail"
    assert "without --host" in torch.fix and "rebuild" not in torch.fix
    assert by_id(doctor.container_checks(probe, TORCH214))["torch"].fix == (
        "rebuild the image: envkit build " + TORCH214.name
    )


@pytest.mark.parametrize(
    "name, caller_uid, status",
    [
        ("cuda13-container-torch2.14-nogpu.json", 1000, "pass"),  # envkit's user is you
        ("cuda13-container-torch2.14-nogpu.json", 0, "pass"),  # root may change any file
        ("cuda13-container-torch2.14-nogpu.json", 1001, "warn"),
        ("cpu-container-torch2.13.json", 1000, "warn"),  # an image that runs as root
        ("cpu-host-torch2.13.json", None, "pass"),  # --host: the probe ran as you
    ],
)
def test_user_check_says_whose_files_a_bind_mount_gets(name, caller_uid, status):
    user = by_id(doctor.container_checks(recorded(name), caller_uid=caller_uid))["user"]
    assert user.status == status, user
    if status == "warn":
        owner = "root" if "cpu-container" in name else "uid 1000"
        assert f"will belong to {owner}, not to you" in user.detail
        assert "--user $(id -u):$(id -g)" in user.fix


@pytest.mark.parametrize(
    "name, status",
    [
        ("cpu-container-torch2.13.json", "pass"),  # container root is you under rootless Docker
        ("cuda13-container-torch2.14-nogpu.json", "warn"),  # uid 1000 maps to a subordinate uid
    ],
)
def test_user_check_under_rootless_docker(name, status):
    user = by_id(doctor.container_checks(recorded(name), caller_uid=1000, rootless=True))["user"]
    assert user.status == status, user
    if status == "warn":
        assert "subordinate" in user.detail and "--user 0:0" in user.fix
