"""The in-container probe: old-Python-safe source, one JSON document, reasons for no CUDA."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from envkit.inside import probe

REPO = Path(__file__).resolve().parents[2]
PROBE = REPO / "envkit" / "inside" / "probe.py"
RECORDED = REPO / "tests" / "data" / "probe"


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


needs_torch = pytest.mark.skipif(not _has_torch(), reason="torch is not importable here")


# ------------------------------------------------------------------------ source constraints


def test_source_parses_as_python_3_6():
    # The probe runs in images as old as Python 3.6; the grammar check catches 3.8+ syntax.
    ast.parse(PROBE.read_text(), feature_version=(3, 6))


def test_source_avoids_newer_features_and_third_party_imports():
    tree = ast.parse(PROBE.read_text())
    imported = set()
    for node in ast.walk(tree):
        assert not isinstance(node, ast.NamedExpr), "walrus needs Python 3.8"
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.module != "__future__", "postponed annotations need Python 3.7"
            imported.add((node.module or "").split(".")[0])
    assert "dataclasses" not in imported
    third_party = imported - set(sys.stdlib_module_names) - {"torch", "torchvision"}
    assert not third_party, (
        f"the probe may import only the standard library and torch: {third_party}"
    )


def test_importing_the_probe_does_not_import_torch():
    code = "import sys, envkit.inside.probe; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- real runs


@needs_torch
def test_running_prints_exactly_one_json_document_on_stdout():
    done = subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # fails if anything else reached stdout
    assert report["probe_version"] == probe.PROBE_VERSION
    assert report["torch"]["version"]
    assert report["dataloader"]["ok"] is True
    assert report["dataloader"]["batches"] == 8
    assert "Traceback" not in done.stderr


@needs_torch
def test_recordings_have_the_current_probe_shape():
    # A recording made with an older probe would test the doctor against a stale format.
    done = subprocess.run([sys.executable, str(PROBE)], capture_output=True, text=True, timeout=300)
    keys = set(json.loads(done.stdout))
    for path in sorted(RECORDED.glob("*torch*.json")):
        recorded = json.loads(path.read_text())
        assert set(recorded) == keys, path.name


def test_a_torch_that_fails_to_import_is_reported_not_raised(tmp_path):
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise OSError('libtorch_cuda.so: cannot open shared object')\n"
    )
    done = subprocess.run(
        [sys.executable, str(PROBE)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0
    assert "Traceback" not in done.stderr
    report = json.loads(done.stdout)
    assert report["torch"] is None
    assert "libtorch_cuda.so" in report["torch_error"]
    assert report["identity"]["uid"] is not None


def test_stdout_noise_from_libraries_is_kept_off_the_json(tmp_path):
    # A torch (or sitecustomize) that prints at import must not corrupt the document.
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        textwrap.dedent(
            """
            import os
            print("hello from torch")
            os.write(1, b"raw fd write\\n")
            raise ImportError("no torch here")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(PROBE)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    report = json.loads(done.stdout)
    assert report["torch_error"] == "ImportError: no torch here"
    assert "hello from torch" in done.stderr and "raw fd write" in done.stderr


# ------------------------------------------------------------- why CUDA is unavailable


def _fake_torch(cuda="12.1", available=False, init_error=None, warning=None):
    """A stand-in for the parts of torch that probe._cuda touches."""

    def is_available():
        if warning:
            import warnings

            warnings.warn(warning, UserWarning, stacklevel=2)
        return available

    def init():
        if init_error:
            raise RuntimeError(init_error)

    cuda_mod = types.SimpleNamespace(
        is_available=is_available,
        init=init,
        device_count=lambda: 1 if available else 0,
        get_arch_list=lambda: ["sm_50", "sm_80"],
    )
    return types.SimpleNamespace(
        __version__="2.1.2+cu121" if cuda else "2.1.2+cpu",
        version=types.SimpleNamespace(cuda=cuda),
        cuda=cuda_mod,
    )


def _report(gpu_nodes=("/dev/nvidia0",), libcuda_loaded=True, in_container=True):
    return {
        "in_container": in_container,
        "nvidia": {"gpu_nodes": list(gpu_nodes), "libcuda": {"loaded": libcuda_loaded}},
        "errors": [],
    }


def test_reason_cpu_only_wheel():
    out = probe._cuda(_fake_torch(cuda=None), _report())
    assert out["reason"] == "cpu_only_build"
    assert "torch.version.cuda is None" in out["detail"]


def test_reason_no_device_nodes_even_when_cuda_build(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    torch = _fake_torch(init_error="Found no NVIDIA driver on your system.")
    out = probe._cuda(torch, _report(gpu_nodes=()))
    assert out["reason"] == "no_device_nodes"
    assert out["init_error"] == "RuntimeError: Found no NVIDIA driver on your system."
    assert out["detail"].endswith("no GPU was given to this container")


def test_no_device_nodes_on_a_host_does_not_speak_of_a_container(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    torch = _fake_torch(init_error="Found no NVIDIA driver on your system.")
    out = probe._cuda(torch, _report(gpu_nodes=(), in_container=False))
    assert out["reason"] == "no_device_nodes"
    assert "container" not in out["detail"] and "driver is not loaded" in out["detail"]


def test_missing_libcuda_is_not_mounted_in_a_container_but_not_installed_on_a_host(
    monkeypatch,
):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    torch = _fake_torch(init_error="Found no NVIDIA driver on your system.")
    inside = probe._cuda(torch, _report(libcuda_loaded=False))
    outside = probe._cuda(torch, _report(libcuda_loaded=False, in_container=False))
    assert inside["reason"] == outside["reason"] == "no_driver_library"
    assert inside["detail"].endswith("not mounted in this container")
    assert outside["detail"].endswith("not installed")


def test_in_container_follows_the_engines_marker_files(monkeypatch):
    present = set()
    monkeypatch.setattr(probe.os.path, "exists", lambda path: path in present)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert probe._in_container() is False
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    assert probe._in_container() is True
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    present.add("/run/.containerenv")
    assert probe._in_container() is True
    present.clear()
    present.add("/.dockerenv")
    assert probe._in_container() is True


@pytest.mark.parametrize(
    "init_error, warning",
    [
        # torch 1.x raised this from THC when the runtime was newer than the driver.
        (
            "cuda runtime error (35) : CUDA driver version is insufficient for CUDA runtime "
            "version at /pytorch/aten/src/THC/THCGeneral.cpp:50",
            None,
        ),
        # Newer torch warns from is_available() instead.
        (
            None,
            "CUDA initialization: The NVIDIA driver on your system is too old (found version "
            "10010). Please update your GPU driver",
        ),
    ],
)
def test_reason_driver_too_old(monkeypatch, init_error, warning):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    out = probe._cuda(_fake_torch(init_error=init_error, warning=warning), _report())
    assert out["reason"] == "driver_too_old"
    assert ("insufficient" in out["detail"]) or ("too old" in out["detail"])


@pytest.mark.parametrize("value", ["", "-1", "3", "gpu0"])
def test_reason_bad_visible_devices(monkeypatch, value):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    torch = _fake_torch(init_error="No CUDA GPUs are available")
    out = probe._cuda(torch, _report())
    assert out["reason"] == "bad_visible_devices"
    assert "CUDA_VISIBLE_DEVICES" in out["detail"]


def test_valid_visible_devices_are_not_blamed():
    assert probe._visible_devices_problem("0,1", ["/dev/nvidia0", "/dev/nvidia1"]) is None
    assert probe._visible_devices_problem("GPU-5e1b6c2a", ["/dev/nvidia0"]) is None
    assert probe._visible_devices_problem(None, []) is None


def test_reason_unexplained_init_error_keeps_the_text(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    out = probe._cuda(_fake_torch(init_error="CUDA unknown error"), _report())
    assert out["reason"] == "init_error"
    assert "CUDA unknown error" in out["detail"]


def test_available_cuda_reports_count_and_arch_list():
    out = probe._cuda(_fake_torch(available=True), _report())
    assert out["available"] is True
    assert out["reason"] is None
    assert out["device_count"] == 1
    assert out["arch_list"] == ["sm_50", "sm_80"]


def test_wsl_gpu_without_nvidia_nodes_is_not_blamed_on_missing_nodes(monkeypatch):
    # Docker Desktop's WSL 2 backend hands the GPU over /dev/dxg only.
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    report = _report(gpu_nodes=())
    report["nvidia"]["wsl_gpu"] = True
    out = probe._cuda(_fake_torch(init_error="CUDA unknown error"), report)
    assert out["reason"] == "init_error"


@needs_torch
def test_a_device_that_cannot_be_opened_is_listed_with_its_error_and_skipped():
    import torch as real_torch

    # NVML-based counting on a MIG host: two counted, only the first can be opened.
    def properties(index):
        if index:
            raise AssertionError("Invalid device id")
        return types.SimpleNamespace(total_memory=2**30, multi_processor_count=4)

    fake = types.SimpleNamespace(
        cuda=types.SimpleNamespace(
            device_count=lambda: 2,
            get_device_properties=properties,
            get_device_capability=lambda index: (9, 0),
            get_device_name=lambda index: "NVIDIA H100 80GB HBM3 MIG 1g.10gb",
        )
    )
    devices = probe._devices(fake)
    assert devices[0]["name"].endswith("MIG 1g.10gb") and devices[0]["capability"] == "9.0"
    assert devices[1] == {"index": 1, "error": "AssertionError: Invalid device id"}
    assert probe._kernels(real_torch, [devices[1]]) == []


@pytest.mark.parametrize(
    "raw, dotted", [(7605, "7.6.5"), (8902, "8.9.2"), (90100, "9.1.0"), (None, None)]
)
def test_cudnn_and_nccl_versions_are_decoded(raw, dotted):
    assert probe._dotted(raw) == dotted


@pytest.mark.parametrize(
    "raw, dotted",
    [
        (2708, "2.7.8"),  # torch 1.9's own encoding of its bundled NCCL
        (3003, "2.10.3"),  # the same encoding of NCCL 2.10.3 (torch < 1.10 built against it)
        (4118, "2.21.18"),
        (1000, "1.0.0"),  # torch < 1.10 built with NCCL 1, which had no version macros
        (21003, "2.10.3"),  # NCCL's own encoding from 2.9 on
    ],
)
def test_nccl_integers_from_old_torch_are_decoded(raw, dotted):
    assert probe._nccl_dotted(raw) == dotted


def test_the_nccl_section_decodes_an_old_torchs_integer():
    fake = types.SimpleNamespace(
        distributed=types.SimpleNamespace(is_nccl_available=lambda: True),
        cuda=types.SimpleNamespace(nccl=types.SimpleNamespace(version=lambda: 3003)),
    )
    assert probe._nccl(fake, 2) == {"available": True, "version": "2.10.3", "error": None}


# ---------------------------------------------------------------------- kernel comparison


@needs_torch
def test_compare_accepts_float_noise_and_rejects_a_wrong_result():
    import torch

    torch.manual_seed(0)
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    want = a.mm(b)
    assert probe._compare(torch, want + 1e-6, want)["ok"] is True
    wrong = want.clone()
    wrong[3, 7] += 1.0
    result = probe._compare(torch, wrong, want)
    assert result["ok"] is False
    assert result["max_abs_error"] == pytest.approx(1.0, rel=1e-3)


@needs_torch
def test_conv_case_runs_forward_and_backward_on_cpu():
    import torch

    torch.manual_seed(0)
    inputs = (torch.randn(4, 3, 16, 16), torch.randn(8, 3, 3, 3))
    y, x_grad, w_grad = probe._conv_case(torch, inputs, "cpu")
    assert tuple(y.shape) == (4, 8, 16, 16)
    assert tuple(x_grad.shape) == (4, 3, 16, 16)
    assert tuple(w_grad.shape) == (8, 3, 3, 3)
    # Run again on the same inputs (as the probe does for each GPU): nothing accumulates.
    y2, x_grad2, w_grad2 = probe._conv_case(torch, inputs, "cpu")
    assert torch.equal(x_grad2, x_grad) and torch.equal(w_grad2, w_grad)
    assert not inputs[0].requires_grad


@pytest.mark.parametrize(
    "marker, environ",
    [
        (".dockerenv", {}),
        ("run/.containerenv", {}),
        ("run/systemd/container", {}),
        (None, {"container": "lxc"}),
        (None, {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}),
    ],
)
def test_in_container_recognises_each_runtime(tmp_path, marker, environ):
    assert probe._in_container(str(tmp_path), {"PATH": "/usr/bin"}) is False
    if marker:
        (tmp_path / marker).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / marker).write_text("lxc\n")
    assert probe._in_container(str(tmp_path), dict(environ, PATH="/usr/bin")) is True


def test_empty_container_variable_is_not_a_container(tmp_path):
    assert probe._in_container(str(tmp_path), {"container": ""}) is False
