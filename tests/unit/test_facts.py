"""The fact tables load, agree with each other, and hold the facts the matrix relies on."""

from __future__ import annotations

import pytest
from packaging.version import Version

from envkit import facts


def test_every_table_loads_and_is_non_empty():
    assert len(facts.torch_releases()) >= 50
    assert len(facts.cuda_releases()) >= 15
    assert len(facts.arch_builds()) >= 30
    assert len(facts.gpu_models()) >= 20


def test_torch_releases_are_complete_from_1_0_to_newest():
    versions = [r.torch for r in facts.torch_releases()]
    assert versions[0] == "1.0.0"
    assert len(versions) == len(set(versions))
    for expected in ["1.0.1", "1.3.1", "1.8.1", "1.10.2", "1.12.1", "1.13.1", "2.0.1", "2.2.2"]:
        assert expected in versions
    assert "1.8.2" not in versions, "1.8.2 (LTS) was never uploaded to PyPI"
    assert Version(versions[-1]) >= Version("2.15.0")


@pytest.mark.parametrize(
    "torch,torchvision",
    [
        ("1.1.0", "0.3.0"),
        ("1.2.0", "0.4.0"),
        ("1.3.0", "0.4.1"),
        ("1.3.1", "0.4.2"),
        ("1.4.0", "0.5.0"),
        ("1.7.1", "0.8.2"),
        ("1.10.0", "0.11.1"),
        ("1.13.1", "0.14.1"),
        ("2.0.0", "0.15.1"),
        ("2.0.1", "0.15.2"),
        ("2.5.1", "0.20.1"),
        ("2.9.1", "0.24.1"),
        ("2.14.0", "0.29.0"),
        ("2.14.1", "0.29.1"),
        ("2.15.0", "0.29.2"),
    ],
)
def test_torchvision_pairing(torch, torchvision):
    assert facts.torch_release(torch).torchvision == torchvision


@pytest.mark.parametrize(
    "torch,torchaudio",
    [
        ("1.1.0", None),
        ("1.2.0", "0.3.0"),
        ("1.7.1", "0.7.2"),
        ("2.0.0", "2.0.1"),
        ("2.11.0", "2.11.0"),
        ("2.12.0", None),
        ("2.15.0", None),
    ],
)
def test_torchaudio_pairing(torch, torchaudio):
    assert facts.torch_release(torch).torchaudio == torchaudio


def test_torchvision_minor_follows_torch_minor_from_1_4_on():
    # torchvision 0.(N+1) pairs with torch 1.N for 1.x and 0.(N+15) with torch 2.N, except the
    # stable-ABI 0.29.2 that shipped with 2.15.0.
    for r in facts.torch_releases():
        t = Version(r.torch)
        if t < Version("1.4") or r.torch == "2.15.0":
            continue
        tv = Version(r.torchvision)
        expected = t.minor + 1 if t.major == 1 else t.minor + 15
        assert (tv.major, tv.minor) == (0, expected), r.torch


def test_pypi_variants():
    assert facts.torch_release("1.4.0").pypi_cuda == "10.1"
    assert facts.torch_release("1.12.1").pypi_cuda == "10.2"
    assert facts.torch_release("1.13.0").pypi_cuda == "11.7"
    assert facts.torch_release("2.1.0").pypi_cuda == "12.1"
    assert facts.torch_release("2.10.0").pypi_cuda == "12.8"
    assert facts.torch_release("2.14.1").pypi_cuda == "13.0"
    assert facts.torch_release("2.15.0").pypi_cuda == "13.2"
    for r in facts.torch_releases():
        assert r.pypi_cuda in r.cuda, r.torch


def test_release_fields_are_consistent():
    for r in facts.torch_releases():
        assert list(r.cuda) == sorted(r.cuda, key=Version), r.torch
        assert set(r.cudnn) == set(r.cuda), r.torch
        assert r.python and all(Version(p) >= Version("2.7") for p in r.python), r.torch
        assert not r.yanked
    assert facts.torch_release("1.4.0").python == ("2.7", "3.5", "3.6", "3.7", "3.8")
    assert "3.10" not in facts.torch_release("2.15.0").python
    assert facts.torch_release("2.0.0").cudnn["11.7"] == "8.5.0"
    assert facts.torch_release("2.15.0").cudnn["13.2"] == "9.26.0"


def test_released_dates_increase_within_a_minor_series():
    by_minor: dict[tuple[int, int], list[facts.TorchRelease]] = {}
    for r in facts.torch_releases():
        v = Version(r.torch)
        by_minor.setdefault((v.major, v.minor), []).append(r)
    for series in by_minor.values():
        dates = [r.released for r in series]
        assert dates == sorted(dates)


def test_torch_release_lookup_accepts_local_tags_and_rejects_unknown():
    assert facts.torch_release("2.0.0+cu118").torch == "2.0.0"
    assert facts.torch_release("0.4.1") is None
    assert facts.torch_release("not a version") is None


def test_every_cuda_variant_has_cuda_and_arch_rows():
    for r in facts.torch_releases():
        for cuda in r.cuda:
            assert facts.cuda_release(cuda) is not None, (r.torch, cuda)
            assert facts.arch_list(r.torch, cuda), (r.torch, cuda)


def test_arch_rows_do_not_overlap():
    for r in facts.torch_releases():
        v = Version(r.torch)
        for cuda in r.cuda:
            hits = [b for b in facts.arch_builds() if b.cuda == cuda and v in b.torch]
            assert len(hits) == 1, (r.torch, cuda, len(hits))


def test_arch_lists_only_name_capabilities_the_toolkit_can_target():
    for b in facts.arch_builds():
        toolkit = facts.cuda_release(b.cuda)
        low, high = Version(toolkit.sm_min), Version(toolkit.sm_max)
        for entry in b.arch:
            digits = entry.split("_")[1]
            cap = Version(f"{digits[:-1]}.{digits[-1]}")
            assert low <= cap <= high, (str(b.torch), b.cuda, entry)


@pytest.mark.parametrize(
    "cuda,driver",
    [
        ("9.2", "396.26"),
        ("10.1", "418.39"),
        ("10.2", "440.33"),
        ("11.8", "520.61.05"),
        ("12.1", "530.30.02"),
        ("12.8", "570.26"),
        ("13.0", "580.65.06"),
        ("12.1.105", "530.30.02"),
        ("cu118", "520.61.05"),
    ],
)
def test_min_driver_for(cuda, driver):
    assert facts.min_driver_for(cuda) == driver


def test_min_driver_unknown_and_ordering():
    assert facts.min_driver_for("7.5") is None
    assert facts.min_driver_for("garbage") is None
    drivers = [facts.driver_version(c.min_driver) for c in facts.cuda_releases()]
    assert drivers == sorted(drivers)
    assert facts.cuda_release("11.8").min_driver_compat == "450.80.02"
    assert facts.cuda_release("10.2").min_driver_compat is None
    assert facts.min_driver_compat_for("cu128") == "525"
    assert facts.min_driver_compat_for("13.0") == "580"
    assert facts.min_driver_compat_for("10.2") is None
    assert facts.min_driver_compat_for("garbage") is None
    # What runs a CUDA at all: the compatibility floor, or the toolkit's driver where lower.
    assert facts.min_driver_to_run("12.8") == "525"
    assert facts.min_driver_to_run("11.0") == "450.51.05"
    assert facts.min_driver_to_run("10.2") == facts.min_driver_for("10.2")
    assert facts.min_driver_to_run("garbage") is None


def test_driver_comparison_is_numeric():
    assert facts.driver_satisfies("535.104.05", "520.61.05")
    assert facts.driver_satisfies("570.124.06", "570.26")
    assert not facts.driver_satisfies("570.26", "570.124.06")
    assert not facts.driver_satisfies("418.39", "440.33")


def test_no_torch_1x_build_has_sm90_and_1_6_to_1_13_cannot_run_on_h100():
    for r in facts.torch_releases():
        if Version(r.torch).major != 1:
            continue
        for cuda in r.cuda:
            arch = facts.arch_list(r.torch, cuda)
            assert "sm_90" not in arch, (r.torch, cuda)
            runs = facts.kernel_supports(arch, "9.0")
            # 1.0-1.5 wheels carry PTX (compute_50, later compute_37) the driver can JIT for
            # newer GPUs; 1.6 dropped PTX from the official builds.
            assert runs is (Version(r.torch) < Version("1.6")), (r.torch, cuda, arch)


def test_no_sm80_before_1_7_and_cu102_stops_at_sm75():
    for r in facts.torch_releases():
        for cuda in r.cuda:
            arch = facts.arch_list(r.torch, cuda)
            if Version(r.torch) < Version("1.7"):
                assert "sm_80" not in arch, (r.torch, cuda)
            if cuda == "10.2":
                assert all(int(a.split("_")[1]) <= 75 for a in arch), (r.torch, arch)


def test_first_sm90_build_is_torch_2_0_cu118():
    with_sm90 = [
        (Version(r.torch), cuda)
        for r in facts.torch_releases()
        for cuda in r.cuda
        if "sm_90" in facts.arch_list(r.torch, cuda)
    ]
    assert min(with_sm90) == (Version("2.0.0"), "11.8")
    assert "sm_90" not in facts.arch_list("2.0.1", "11.7")


@pytest.mark.parametrize(
    "torch,cuda,capability,expected",
    [
        ("1.13.1", "11.7", "9.0", False),
        ("2.0.0", "11.8", "9.0", True),
        ("2.3.1", "11.8", "9.0", True),
        ("1.6.0", "10.2", "8.0", False),
        ("1.7.0", "11.0", "8.0", True),
        ("1.12.1", "10.2", "7.5", True),  # no sm_75, but the sm_70 cubin runs on 7.5
        ("2.7.1", "12.6", "12.0", False),  # RTX 50xx needs a cu128+ build
        ("2.8.0", "12.8", "12.0", True),
        ("2.11.0", "13.0", "7.0", False),  # CUDA 13 dropped Volta
        ("2.11.0", "12.6", "7.0", True),
        ("1.4.0", "10.1", "8.6", True),  # compute_37 PTX JIT-compiles for newer GPUs
    ],
)
def test_kernel_supports_real_builds(torch, cuda, capability, expected):
    assert facts.kernel_supports(facts.arch_list(torch, cuda), capability) is expected


def test_kernel_supports_rules():
    assert facts.kernel_supports(["sm_80"], "8.6")
    assert not facts.kernel_supports(["sm_86"], "8.0")
    assert not facts.kernel_supports(["sm_86"], "9.0")  # SASS never crosses a major version
    assert facts.kernel_supports(["compute_80"], "9.0")
    assert not facts.kernel_supports(["compute_90"], "8.9")
    assert facts.kernel_supports(["sm_120"], "12.1")
    assert not facts.kernel_supports(["sm_100"], "12.0")
    assert facts.kernel_supports(["sm_90a"], "9.0")
    assert not facts.kernel_supports(["sm_90a"], "9.1")
    # Arch-specific PTX is for that capability only; family PTX stays within its major.
    assert facts.kernel_supports(["compute_90a"], "9.0")
    assert not facts.kernel_supports(["compute_90a"], "10.0")
    assert not facts.kernel_supports(["compute_100a"], "10.3")
    assert facts.kernel_supports(["compute_100f"], "10.3")
    assert not facts.kernel_supports(["compute_100f"], "12.0")
    assert not facts.kernel_supports([], "8.0")
    assert not facts.kernel_supports(["gfx90a"], "9.0")


def test_arch_list_unknown_cases():
    assert facts.arch_list("1.4.0", "12.1") is None
    assert facts.arch_list("9.9.9", "12.1") is None
    assert facts.arch_list("2.0.0+cu118", "cu118") == facts.arch_list("2.0.0", "11.8")


@pytest.mark.parametrize(
    "device,name,capability",
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM", "9.0"),
        ("NVIDIA H100 PCIe", "H100 PCIe", "9.0"),
        ("NVIDIA A100-SXM4-80GB", "A100 SXM4", "8.0"),
        ("NVIDIA A100 80GB PCIe", "A100 PCIe", "8.0"),
        ("NVIDIA A10", "A10", "8.6"),
        ("Tesla V100-SXM2-16GB", "Tesla V100 SXM2", "7.0"),
        ("Tesla T4", "Tesla T4", "7.5"),
        ("NVIDIA GeForce RTX 4090", "GeForce RTX 4090", "8.9"),
        ("NVIDIA GeForce RTX 5090", "GeForce RTX 5090", "12.0"),
        ("NVIDIA B200", "B200", "10.0"),
        ("NVIDIA L40S", "L40S", "8.9"),
        ("NVIDIA L4", "L4", "8.9"),
    ],
)
def test_gpu_model_for(device, name, capability):
    model = facts.gpu_model_for(device)
    assert model is not None and model.name == name
    assert model.capability == capability


def test_gpu_model_for_does_not_confuse_similar_names():
    assert facts.gpu_model_for("NVIDIA A10G") is None
    assert facts.gpu_model_for("NVIDIA L40") is None
    assert facts.gpu_model_for("Intel Arc A770") is None


def test_gpu_peaks():
    h100 = facts.gpu_model_for("NVIDIA H100 80GB HBM3")
    assert h100.peak_tflops == {"bf16": 989.0, "fp16": 989.0, "fp32": 67.0, "tf32": 494.0}
    assert facts.gpu_model_for("Tesla V100-SXM2-32GB").peak_tflops["bf16"] is None
    # NVL cards are slower than the SXM parts whose names they contain: no peak, no wrong MFU.
    assert facts.gpu_model_for("NVIDIA H200 NVL").peak_tflops["bf16"] is None
    assert facts.gpu_model_for("NVIDIA H200").peak_tflops["bf16"] == 989.0
    for model in facts.gpu_models():
        assert set(model.peak_tflops) == {"bf16", "fp16", "fp32", "tf32"}, model.name
        if all(v is None for v in model.peak_tflops.values()):
            continue  # a name guard, as above
        assert model.peak_tflops["fp32"] and model.peak_tflops["fp32"] > 0, model.name
        cap = Version(model.capability)
        if cap >= Version("8.0"):
            assert model.peak_tflops["bf16"] >= model.peak_tflops["fp32"], model.name
        else:
            assert model.peak_tflops["bf16"] is None, model.name


def test_tables_are_cached():
    assert facts.torch_releases() is facts.torch_releases()
    assert facts.gpu_models() is facts.gpu_models()


def test_ubuntu_table_names_each_release_its_python_and_nvidia_repo():
    rows = facts.ubuntu_releases()
    assert [r.release for r in rows] == ["18.04", "20.04", "22.04", "24.04"]
    assert [r.python for r in rows] == ["3.6", "3.8", "3.10", "3.12"]
    for row in rows:
        # NVIDIA names the repository after the release: 22.04 -> ubuntu2204.
        assert row.cuda_repo == "ubuntu" + row.release.replace(".", "")
    assert facts.ubuntu_release("22.04").codename == "jammy"
    assert facts.ubuntu_release("23.10") is None
