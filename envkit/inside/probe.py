"""GPU probe run inside an image (or on the host): prints one JSON document of what torch sees.

This file is copied into containers of any age, so it must run on Python 3.6+ with torch 1.1+
and import only the standard library and torch: no dataclasses, no walrus, no postponed
annotations, and every newer torch API is feature-detected rather than version-compared.
It never raises: every failure is reported as data, and the JSON is the only thing on stdout.
"""

import glob
import json
import os
import platform
import sys
import time
import traceback
import warnings

PROBE_VERSION = 1

# Tolerances for GPU-versus-CPU float32 results with TF32 off: summation order differs between
# devices, so exact equality is wrong, but a broken kernel is off by far more than this.
RTOL = 1e-3
ATOL = 1e-3


def _error_text(exc):
    """One line of `exc`: type and message, without the traceback."""
    text = str(exc).strip()
    name = type(exc).__name__
    return name + ": " + text if text else name


def _guard(report, section, func, *args):
    """Run `func`; on any exception record it under report['errors'] and return None."""
    try:
        return func(*args)
    except Exception as exc:  # the probe must describe failures, never die of them
        report["errors"].append(
            {
                "section": section,
                "error": _error_text(exc),
                "traceback": traceback.format_exc(limit=4),
            }
        )
        return None


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _identity():
    out = {"uid": None, "gid": None, "user": None, "groups": None}
    if hasattr(os, "getuid"):
        out["uid"] = os.getuid()
        out["gid"] = os.getgid()
        out["groups"] = sorted(os.getgroups())
        try:
            import pwd

            out["user"] = pwd.getpwuid(os.getuid()).pw_name
        except (ImportError, KeyError):
            pass  # an arbitrary --user uid has no passwd entry; the number is what matters
    return out


def _shm():
    try:
        stat = os.statvfs("/dev/shm")
    except (OSError, AttributeError) as exc:
        return {"path": "/dev/shm", "bytes": None, "free_bytes": None, "error": _error_text(exc)}
    return {
        "path": "/dev/shm",
        "bytes": stat.f_frsize * stat.f_blocks,
        "free_bytes": stat.f_frsize * stat.f_bavail,
        "error": None,
    }


def _nvidia_host_side():
    """What the container runtime injected: device nodes, driver version, visibility variables."""
    nodes = sorted(glob.glob("/dev/nvidia*"))
    version_text = _read("/proc/driver/nvidia/version")
    driver = None
    if version_text:
        # "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 ..."
        for word in version_text.split():
            parts = word.split(".")
            if len(parts) >= 2 and all(p.isdigit() for p in parts):
                driver = word
                break
    env = {}
    for name in (
        "CUDA_VISIBLE_DEVICES",
        "NVIDIA_VISIBLE_DEVICES",
        "NVIDIA_DRIVER_CAPABILITIES",
        "NVIDIA_REQUIRE_CUDA",
        "LD_LIBRARY_PATH",
    ):
        if name in os.environ:
            env[name] = os.environ[name]
    return {
        "device_nodes": nodes,
        "gpu_nodes": [n for n in nodes if n[len("/dev/nvidia") :].isdigit()],
        # WSL 2 (Docker Desktop on Windows) hands GPUs over /dev/dxg, with no /dev/nvidia*.
        "wsl_gpu": os.path.exists("/dev/dxg"),
        "proc_driver_version": driver,
        "env": env,
        "libcuda": _libcuda(),
    }


def _libcuda():
    """The CUDA version the driver's libcuda supports, read with ctypes (no torch needed)."""
    import ctypes

    out = {"loaded": False, "driver_cuda": None, "error": None}
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        out["error"] = _error_text(exc)
        return out
    out["loaded"] = True
    version = ctypes.c_int(0)
    try:
        status = lib.cuDriverGetVersion(ctypes.byref(version))
    except AttributeError as exc:
        out["error"] = _error_text(exc)
        return out
    if status == 0 and version.value:
        out["driver_cuda"] = f"{version.value // 1000}.{(version.value % 1000) // 10}"
    else:
        out["error"] = f"cuDriverGetVersion returned {status}"
    return out


def _dotted(value):
    """cuDNN's or NCCL's integer version as text: 7605 -> 7.6.5, 8902 -> 8.9.2, 90100 -> 9.1.0."""
    if not value:
        return None
    # Both libraries moved from major*1000 to major*10000 encodings (cuDNN 9, NCCL 2.9).
    major_unit = 10000 if value >= 10000 else 1000
    return f"{value // major_unit}.{(value % major_unit) // 100}.{value % 100}"


def _nccl_dotted(value):
    """torch < 1.10's NCCL integer as text.

    Those versions computed major*1000 + minor*100 + patch themselves, so NCCL 2.10.3 came
    out as 3003. NCCL has had no major version 3, so a value from 3000 up to 9999 is a 2.x
    with a two-digit minor. Values from 10000 up are NCCL's own newer encoding.
    """
    if value and 3000 <= value < 10000:
        return f"2.{(value - 2000) // 100}.{value % 100}"
    return _dotted(value)


def _versions(torch):
    out = {
        "version": getattr(torch, "__version__", None),
        "cuda": getattr(torch.version, "cuda", None),
        "hip": getattr(torch.version, "hip", None),
        "git_version": getattr(torch.version, "git_version", None),
        "debug": getattr(torch.version, "debug", None),
        "file": getattr(torch, "__file__", None),
        "cudnn": None,
        "cudnn_version": None,
        "cudnn_error": None,
    }
    try:
        raw = torch.backends.cudnn.version()
    except Exception as exc:  # a CPU build may raise; so does a cuDNN the build rejects
        raw = None
        out["cudnn_error"] = _error_text(exc)
    out["cudnn"] = raw
    out["cudnn_version"] = _dotted(raw)
    return out


def _torchvision():
    try:
        import torchvision
    except Exception as exc:  # ImportError, or an operator-registration RuntimeError
        return {"version": None, "error": _error_text(exc)}
    return {"version": getattr(torchvision, "__version__", None), "error": None}


def _visible_devices_problem(value, gpu_nodes):
    """Why CUDA_VISIBLE_DEVICES would hide every GPU, or None when it looks usable."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")]
    if value.strip() == "":
        return "CUDA_VISIBLE_DEVICES is set to an empty string, which hides every GPU"
    if items[0] in ("-1", "none", "NoDevFiles"):
        return f"CUDA_VISIBLE_DEVICES={value} hides every GPU"
    if items[0].isdigit() and gpu_nodes and int(items[0]) >= len(gpu_nodes):
        return (
            f"CUDA_VISIBLE_DEVICES={value} names GPU {items[0]} but only {len(gpu_nodes)} "
            "GPU(s) are present"
        )
    if not (items[0].isdigit() or items[0].startswith("GPU-") or items[0].startswith("MIG-")):
        return f"CUDA_VISIBLE_DEVICES={value} is not a list of indices or UUIDs"
    return None


def _cuda(torch, report):
    """is_available(), and when False the reason, with the CUDA initialisation error text."""
    out = {
        "available": False,
        "device_count": 0,
        "arch_list": None,
        "reason": None,
        "detail": None,
        "init_error": None,
        "warnings": [],
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out["available"] = bool(torch.cuda.is_available())
        except Exception as exc:
            out["init_error"] = _error_text(exc)
    # Newer torch turns the driver's complaint into a warning from is_available().
    out["warnings"] = [str(w.message) for w in caught if "CUDA" in str(w.message)]

    get_arch_list = getattr(torch.cuda, "get_arch_list", None)
    if get_arch_list is not None:
        try:
            out["arch_list"] = list(get_arch_list())
        except Exception:
            out["arch_list"] = None
    if out["available"]:
        out["device_count"] = int(torch.cuda.device_count())
        # get_arch_list() returns [] until CUDA is initialised on some versions; ask again.
        if get_arch_list is not None and not out["arch_list"]:
            out["arch_list"] = list(get_arch_list())
        return out

    host = report.get("nvidia") or {}
    if torch.version.cuda is None:
        out["reason"] = "cpu_only_build"
        out["detail"] = (
            f"torch {torch.__version__} is a CPU-only build (torch.version.cuda is None)"
        )
        return out

    # Ask CUDA to initialise so that its own error text says what is wrong.
    if out["init_error"] is None:
        init = getattr(torch.cuda, "init", None) or getattr(torch.cuda, "_lazy_init", None)
        try:
            if init is not None:
                init()
        except Exception as exc:
            out["init_error"] = _error_text(exc)
    text = " ".join([out["init_error"] or ""] + out["warnings"])
    visible = _visible_devices_problem(
        os.environ.get("CUDA_VISIBLE_DEVICES"), host.get("gpu_nodes") or []
    )
    lowered = text.lower()
    contained = report.get("in_container")
    if not host.get("gpu_nodes") and not host.get("wsl_gpu"):
        out["reason"] = "no_device_nodes"
        out["detail"] = "no /dev/nvidia[0-9]* device nodes: " + (
            "no GPU was given to this container"
            if contained
            else "this machine has no NVIDIA GPU, or its driver is not loaded"
        )
    elif (
        "driver version is insufficient" in lowered or "driver on your system is too old" in lowered
    ):
        out["reason"] = "driver_too_old"
        out["detail"] = text.strip()
    elif visible is not None:
        out["reason"] = "bad_visible_devices"
        out["detail"] = visible
    elif "no nvidia driver" in lowered or not (host.get("libcuda") or {}).get("loaded"):
        out["reason"] = "no_driver_library"
        out["detail"] = "libcuda.so.1 cannot be loaded: the NVIDIA driver library is not " + (
            "mounted in this container" if contained else "installed"
        )
    else:
        out["reason"] = "init_error"
        out["detail"] = text.strip() or "torch.cuda.is_available() is False with no error text"
    return out


def _devices(torch):
    """Every device torch counts; one that cannot be opened is listed with its error.

    The count can exceed what CUDA can open: newer torch counts through NVML, which sees whole
    GPUs while a MIG-enabled GPU gives CUDA one instance.
    """
    out = []
    for index in range(torch.cuda.device_count()):
        try:
            props = torch.cuda.get_device_properties(index)
            major, minor = torch.cuda.get_device_capability(index)
            out.append(
                {
                    "index": index,
                    "name": torch.cuda.get_device_name(index),
                    "capability": f"{major}.{minor}",
                    "memory_bytes": int(getattr(props, "total_memory", 0)),
                    "multi_processor_count": getattr(props, "multi_processor_count", None),
                    "uuid": str(getattr(props, "uuid", "")) or None,
                }
            )
        except Exception as exc:
            out.append({"index": index, "error": _error_text(exc)})
    return out


def _no_tf32(torch):
    """Turn TF32 off so GPU float32 results are comparable with the CPU's (Ampere and newer)."""
    matmul = getattr(getattr(torch.backends, "cuda", None), "matmul", None)
    conv = getattr(torch.backends.cudnn, "conv", None)
    if hasattr(matmul, "fp32_precision") and hasattr(conv, "fp32_precision"):
        # torch 2.9+: the per-backend setting; mixing it with the old flags is an error there.
        matmul.fp32_precision = "ieee"
        conv.fp32_precision = "ieee"
        return
    if matmul is not None and hasattr(matmul, "allow_tf32"):
        matmul.allow_tf32 = False
    if hasattr(torch.backends.cudnn, "allow_tf32"):
        torch.backends.cudnn.allow_tf32 = False
    if hasattr(torch, "set_float32_matmul_precision"):
        torch.set_float32_matmul_precision("highest")


def _compare(torch, got, want):
    got = got.detach().cpu().double()
    want = want.detach().double()
    err = float((got - want).abs().max())
    bound = ATOL + RTOL * float(want.abs().max())
    return {"ok": bool(err <= bound), "max_abs_error": err, "bound": bound, "error": None}


def _conv_case(torch, inputs, device):
    """Conv2d forward and backward on `device` from fixed CPU inputs: output and both grads."""
    x, w = inputs
    # Fresh leaves each time: the shared inputs must not carry grads between devices.
    x = x.detach().to(device).requires_grad_(True)
    w = w.detach().to(device).requires_grad_(True)
    y = torch.nn.functional.conv2d(x, w, padding=1)
    y.sum().backward()
    return y, x.grad, w.grad


def _kernels(torch, devices):
    """A matmul and a conv forward+backward on every GPU, each compared with the CPU result."""
    _no_tf32(torch)
    # The global seed, not a Generator argument: randn(generator=) is missing from old torch.
    torch.manual_seed(0)
    a = torch.randn(256, 256)
    b = torch.randn(256, 256)
    conv_inputs = (torch.randn(4, 3, 16, 16), torch.randn(8, 3, 3, 3))
    want_mm = a.mm(b)
    want_conv = _conv_case(torch, conv_inputs, "cpu")
    out = []
    for dev in devices:
        if dev.get("error"):
            continue
        device = f"cuda:{dev['index']}"
        result = {"index": dev["index"], "matmul": None, "conv": None, "seconds": None}
        started = time.time()
        try:
            # Copying back to the CPU in _compare synchronises, so kernel errors surface there.
            got = a.to(device).mm(b.to(device))
            result["matmul"] = _compare(torch, got, want_mm)
        except Exception as exc:
            result["matmul"] = {"ok": False, "error": _error_text(exc)}
        try:
            got_conv = _conv_case(torch, conv_inputs, device)
            parts = [_compare(torch, g, w) for g, w in zip(got_conv, want_conv)]
            worst = max(parts, key=lambda p: p["max_abs_error"] / p["bound"])
            worst["ok"] = all(p["ok"] for p in parts)
            result["conv"] = worst
        except Exception as exc:
            result["conv"] = {"ok": False, "error": _error_text(exc)}
        result["seconds"] = round(time.time() - started, 3)
        out.append(result)
    return out


def _cpu_smoke(torch):
    """The same matmul on the CPU against a plain-Python sum: is this torch sane at all?"""
    a = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    b = torch.arange(8, dtype=torch.float32).reshape(4, 2)
    got = a.mm(b).tolist()
    want = [
        [sum(a[i][k].item() * b[k][j].item() for k in range(4)) for j in range(2)] for i in range(3)
    ]
    return {"ok": got == want, "error": None if got == want else f"CPU matmul gave {got!r}"}


def _nccl(torch, device_count):
    out = {"available": None, "version": None, "error": None}
    dist = getattr(torch, "distributed", None)
    is_nccl = getattr(dist, "is_nccl_available", None) if dist is not None else None
    try:
        if is_nccl is not None:
            out["available"] = bool(is_nccl())
        nccl = getattr(torch.cuda, "nccl", None)
        if nccl is not None and hasattr(nccl, "version") and device_count > 0:
            version = nccl.version()
            if isinstance(version, tuple):
                out["version"] = ".".join(str(v) for v in version)
            elif isinstance(version, int):
                out["version"] = _nccl_dotted(version)
            if out["available"] is None:
                out["available"] = True
    except Exception as exc:
        out["available"] = False
        out["error"] = _error_text(exc)
    return out


class _Squares:
    """A map-style dataset of 256 KiB tensors, big enough that workers really use /dev/shm."""

    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        # Imported here so the dataset pickles under the spawn start method (macOS hosts).
        import torch

        return torch.full((64 * 1024,), float(index))


def _dataloader(torch):
    """A DataLoader with 2 worker processes really runs (workers hand batches over /dev/shm)."""
    started = time.time()
    out = {"ok": False, "workers": 2, "batches": 0, "seconds": None, "error": None}
    try:
        from torch.utils.data import DataLoader

        loader = DataLoader(_Squares(32), batch_size=4, num_workers=2, timeout=120)
        total = 0.0
        for batch in loader:
            out["batches"] += 1
            total += float(batch[:, 0].sum())
        expected = float(sum(range(32)))
        out["ok"] = total == expected and out["batches"] == 8
        if not out["ok"]:
            out["error"] = f"DataLoader returned wrong data: sum {total!r}, expected {expected!r}"
    except Exception as exc:
        out["error"] = _error_text(exc)
    out["seconds"] = round(time.time() - started, 3)
    return out


def _in_container(root="/", environ=None):
    """True inside a container: Docker (/.dockerenv), Podman (/run/.containerenv), a system
    container such as LXC or systemd-nspawn (systemd inside writes /run/systemd/container, and
    their init gets `container=`), or a Kubernetes pod (whose runtime may leave no marker file,
    but which always has KUBERNETES_SERVICE_HOST)."""
    environ = os.environ if environ is None else environ
    markers = (".dockerenv", "run/.containerenv", "run/systemd/container")
    return (
        any(os.path.exists(os.path.join(root, marker)) for marker in markers)
        or bool(environ.get("container"))
        or "KUBERNETES_SERVICE_HOST" in environ
    )


def probe():
    """Gather everything into one dict; never raises."""
    report = {
        "probe_version": PROBE_VERSION,
        "python": ".".join(str(v) for v in sys.version_info[:3]),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "in_container": None,
        "identity": None,
        "shm": None,
        "nvidia": None,
        "torch": None,
        "torch_error": None,
        "torchvision": None,
        "cpu": None,
        "cuda": None,
        "devices": [],
        "kernels": [],
        "nccl": None,
        "dataloader": None,
        "errors": [],
    }
    report["in_container"] = _guard(report, "in_container", _in_container)
    report["identity"] = _guard(report, "identity", _identity)
    report["shm"] = _guard(report, "shm", _shm)
    report["nvidia"] = _guard(report, "nvidia", _nvidia_host_side)
    try:
        import torch
    except Exception as exc:  # ImportError, or a missing shared library (OSError)
        report["torch_error"] = _error_text(exc)
        return report
    report["torch"] = _guard(report, "torch", _versions, torch)
    report["torchvision"] = _guard(report, "torchvision", _torchvision)
    report["cpu"] = _guard(report, "cpu", _cpu_smoke, torch)
    report["cuda"] = _guard(report, "cuda", _cuda, torch, report)
    if report["cuda"] and report["cuda"]["available"]:
        report["devices"] = _guard(report, "devices", _devices, torch) or []
        report["kernels"] = _guard(report, "kernels", _kernels, torch, report["devices"]) or []
        usable = [d for d in report["devices"] if not d.get("error")]
        report["nccl"] = _guard(report, "nccl", _nccl, torch, len(usable))
    report["dataloader"] = _guard(report, "dataloader", _dataloader, torch)
    return report


def main():
    """Print the probe's JSON on stdout; anything else that prints is sent to stderr."""
    real_stdout = None
    try:
        # Libraries may print to fd 1 (C code and worker processes included): point fd 1 at
        # stderr for the rest of the process and keep a private copy for the JSON.
        sys.stdout.flush()
        real_stdout = os.dup(1)
        os.dup2(2, 1)
    except (OSError, AttributeError, ValueError):
        real_stdout = None
    try:
        report = probe()
    except BaseException as exc:  # noqa: B036 - even SystemExit from an import must become data
        report = {
            "probe_version": PROBE_VERSION,
            "errors": [{"section": "probe", "error": _error_text(exc)}],
            "fatal": _error_text(exc),
        }
    try:
        sys.stdout.flush()
    except Exception:
        pass
    text = json.dumps(report, indent=1, sort_keys=True, default=str) + "\n"
    if real_stdout is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        data = text.encode("utf-8")
        while data:
            data = data[os.write(real_stdout, data) :]
    return 0


if __name__ == "__main__":
    sys.exit(main())
