"""Probe checks: what the probe (envkit/inside/probe.py) found inside an image or on the host,
compared with the entry when given. Pure functions of the probe's JSON."""

from __future__ import annotations

import json

from .. import facts
from ..gpu import fit as gpu_fit
from ..gpu.host import sm_name
from ..gpu.known_errors import explain_error, last_line, with_explanation
from ..matrix import PYTORCH_INDEX
from .finding import GIB, Check, human_bytes
from .host_checks import shm_check


def _mismatch_fix(entry, host_probe: bool) -> str:
    """The fix when what the probe found differs from the entry: the image's or the host's."""
    if host_probe:
        return (
            f"this Python is not {entry.name}'s stack: check the image instead "
            f"(`envkit doctor {entry.name}` without --host), or install torch=={entry.torch} here"
        )
    return f"rebuild the image: envkit build {entry.name}"


def _versions_checks(probe: dict, entry, host_probe: bool) -> list[Check]:
    checks = []
    python = probe.get("python") or "?"
    if entry is not None and not facts.same_release(python, entry.python):
        checks.append(
            Check(
                "python",
                "fail",
                f"Python {python}, but {entry.name} says Python {entry.python}",
                _mismatch_fix(entry, host_probe),
            )
        )
    else:
        checks.append(Check("python", "pass", f"Python {python}"))

    torch = probe.get("torch")
    if not torch:
        error = probe.get("torch_error") or "torch was not probed"
        checks.append(
            Check(
                "torch",
                "fail",
                f"torch cannot be imported: {last_line(error)}",
                _mismatch_fix(entry, host_probe)
                if entry is not None
                else "install torch in this Python",
            )
        )
        return checks
    version = torch.get("version") or "?"
    rebuild = _mismatch_fix(entry, host_probe) if entry is not None else None
    if entry is not None and facts.parse_release(version) != facts.parse_release(entry.torch):
        checks.append(
            Check("torch", "fail", f"torch {version}, but {entry.name} says {entry.torch}", rebuild)
        )
    else:
        checks.append(Check("torch", "pass", f"torch {version}"))

    cuda = torch.get("cuda")
    built = f"CUDA {cuda}" if cuda else "CPU-only"
    if entry is not None and not facts.same_release(cuda, entry.cuda):
        wanted = f"CUDA {entry.cuda}" if entry.cuda else "CPU-only"
        checks.append(
            Check(
                "cuda-build",
                "fail",
                f"torch is a {built} build (torch.version.cuda = {cuda}), but {entry.name} "
                f"says {wanted}",
                rebuild,
            )
        )
    else:
        checks.append(Check("cuda-build", "pass", f"torch.version.cuda = {cuda} ({built} build)"))

    cudnn = torch.get("cudnn_version")
    want_cudnn = getattr(entry, "cudnn", None) if entry is not None else None
    if cudnn is None and want_cudnn is None:
        checks.append(Check("cudnn", "skip", "no cuDNN in this build"))
    elif want_cudnn is not None and not facts.same_release(cudnn, want_cudnn):
        checks.append(
            Check(
                "cudnn",
                "warn",
                f"cuDNN {cudnn or _absent(torch.get('cudnn_error'))}, but {entry.name} says "
                f"{want_cudnn}",
                f"correct the entry's cudnn, or {rebuild}",
            )
        )
    else:
        checks.append(Check("cudnn", "pass", f"cuDNN {cudnn}"))

    vision = probe.get("torchvision") or {}
    want_vision = entry.torchvision if entry is not None else None
    if vision.get("version") is None:
        if want_vision is None:
            checks.append(Check("torchvision", "skip", "torchvision not installed"))
        else:
            checks.append(
                Check(
                    "torchvision",
                    "fail",
                    f"torchvision {want_vision} cannot be imported: "
                    f"{last_line(vision.get('error') or 'not probed')}",
                    rebuild,
                )
            )
    elif want_vision is not None and facts.parse_release(vision["version"]) != facts.parse_release(
        want_vision
    ):
        checks.append(
            Check(
                "torchvision",
                "fail",
                f"torchvision {vision['version']}, but {entry.name} says {want_vision}",
                rebuild,
            )
        )
    else:
        checks.append(Check("torchvision", "pass", f"torchvision {vision['version']}"))
    return checks


def _absent(error: str | None) -> str:
    return f"absent ({last_line(error)})" if error else "absent"


def _cpu_entry_fix(entry) -> str:
    return (
        f"for GPU work use a CUDA entry of torch {entry.torch} (envkit list --torch "
        f"{entry.torch}); if CPU is what you want, pass --allow-cpu"
    )


def _cuda_check(
    probe: dict, entry, no_gpu: tuple[str, str] | None, host_probe: bool, on_host: bool
) -> Check:
    cuda = probe.get("cuda") or {}
    torch = probe.get("torch") or {}
    nvidia = probe.get("nvidia") or {}
    if cuda.get("available"):
        count = cuda.get("device_count")
        driver_cuda = (nvidia.get("libcuda") or {}).get("driver_cuda")
        extra = f", the driver supports CUDA {driver_cuda}" if driver_cuda else ""
        return Check(
            "cuda",
            "pass",
            f"torch.cuda.is_available(): {count} device(s), CUDA runtime {torch.get('cuda')}"
            + extra,
        )
    reason = cuda.get("reason")
    text = cuda.get("detail") or cuda.get("init_error") or "torch.cuda.is_available() is False"
    if reason == "cpu_only_build":
        if entry is not None and entry.cuda is None:
            return Check(
                "cuda",
                "fail",
                f"no GPU: {entry.name} is a CPU-only entry: {text}",
                _cpu_entry_fix(entry),
            )
        if entry is None and not nvidia.get("gpu_nodes"):
            return Check("cuda", "skip", f"no GPU here and {text}")
        return Check(
            "cuda",
            "fail",
            f"CUDA unavailable: {text}",
            (_mismatch_fix(entry, host_probe) if entry is not None else None)
            or "install a CUDA build of torch (pip install --index-url "
            f"{PYTORCH_INDEX}/cu<XY> torch)",
        )
    if entry is not None and entry.cuda is None:
        return Check(
            "cuda", "fail", f"no GPU: {entry.name} is a CPU-only entry", _cpu_entry_fix(entry)
        )
    if reason == "no_device_nodes":
        if no_gpu is not None:
            return Check("cuda", "fail", f"CUDA unavailable: {no_gpu[0]}", no_gpu[1])
        return Check(
            "cuda",
            "fail",
            f"CUDA unavailable: {text}",
            "install and load the NVIDIA driver (`nvidia-smi` must list the GPUs); on a "
            "machine without an NVIDIA GPU there is nothing for CUDA to use"
            if on_host
            else "run the container with GPUs (`--gpus all`) on a host with the NVIDIA driver "
            "and the NVIDIA Container Toolkit",
        )
    if reason == "driver_too_old":
        minimum = None
        if entry is not None and entry.cuda:
            minimum = facts.min_driver_for(entry.cuda)
        fix = (
            f"upgrade the host's NVIDIA driver to >= {minimum} (CUDA {entry.cuda}), or use an "
            "entry with an older CUDA"
            if minimum
            else "upgrade the host's NVIDIA driver, or use an entry with an older CUDA"
        )
        return Check("cuda", "fail", f"CUDA unavailable, the driver is too old: {text}", fix)
    if reason == "bad_visible_devices":
        return Check(
            "cuda",
            "fail",
            f"CUDA unavailable: {text}",
            "unset CUDA_VISIBLE_DEVICES, or set it to indices (0..N-1) of the GPUs "
            + ("`nvidia-smi -L` lists" if on_host else "given to the container"),
        )
    if reason == "no_driver_library":
        return Check(
            "cuda",
            "fail",
            f"CUDA unavailable: {text}",
            "install the NVIDIA driver, which provides libcuda.so.1 (`ldconfig -p | grep "
            "libcuda` must find it)"
            if on_host
            else "request GPUs through the NVIDIA Container Toolkit (`--gpus all`), which "
            "mounts libcuda; NVIDIA_DRIVER_CAPABILITIES must include compute,utility",
        )
    explained = explain_error(text)
    if explained:
        return Check("cuda", "fail", f"CUDA unavailable: {explained[0]}: {text}", explained[1])
    return Check(
        "cuda",
        "fail",
        f"CUDA unavailable: {text}",
        "run `nvidia-smi` to see whether the driver works"
        if on_host
        else "run `nvidia-smi` on the host and inside the container to see which side is wrong",
    )


def _kernel_checks(probe: dict, entry) -> list[Check]:
    devices = probe.get("devices") or []
    kernels = {k.get("index"): k for k in probe.get("kernels") or []}
    arches = (probe.get("cuda") or {}).get("arch_list") or []
    if not arches and entry is not None and entry.cuda:
        # torch < 1.7 has no get_arch_list(): fall back to what the matrix knows of the build.
        arches = list(facts.arch_list(entry.torch, entry.cuda) or [])
    checks = []
    for dev in devices:
        index = dev.get("index")
        if dev.get("error"):
            checks.append(
                Check(
                    f"gpu{index}-kernels",
                    "fail",
                    f"GPU {index} is counted by torch.cuda.device_count() but cannot be opened: "
                    f"{last_line(dev['error'])}",
                    "on a MIG-enabled GPU give the container MIG devices (--gpus "
                    "'\"device=0:0\"' or NVIDIA_VISIBLE_DEVICES=MIG-<uuid>), or set "
                    "CUDA_VISIBLE_DEVICES to GPUs it can open; `nvidia-smi -L` lists them",
                )
            )
            continue
        cap = dev.get("capability") or "?"
        sm = sm_name(cap)
        memory = dev.get("memory_bytes") or 0
        label = f"GPU {index} {dev.get('name')} ({sm}, {memory / GIB:.0f} GiB)"
        check_id = f"gpu{index}-kernels"
        result = kernels.get(index) or {}
        failures = []
        full_errors = []
        for op in ("matmul", "conv"):
            outcome = result.get(op) or {"ok": False, "error": "not run"}
            if outcome.get("error"):
                failures.append((op, last_line(outcome["error"])))
                full_errors.append(str(outcome["error"]))
            elif not outcome.get("ok"):
                failures.append(
                    (
                        op,
                        f"differs from the CPU by {outcome.get('max_abs_error')} "
                        f"(bound {outcome.get('bound')})",
                    )
                )
        if failures:
            text = "; ".join(f"{op}: {why}" for op, why in failures)
            ran = (probe.get("torch") or {}).get("version")
            cause = gpu_fit.kernel_failure_cause(entry, ran, arches, cap)
            predicted = cause == "no_kernels"
            if cause == "old_libraries":
                # Before the generic texts: "no kernel image" here means the linked-in
                # libraries, not torch's own kernels, which its PTX covers.
                limit = facts.library_limit(entry.torch, entry.cuda)
                explained = (
                    f"the CUDA {entry.cuda} libraries linked into this build (cuBLAS, cuDNN) "
                    f"stop at {sm_name(limit)} and carry no PTX",
                    "",
                )
            else:
                explained = explain_error("\n".join([text, *full_errors]))
            if explained is None:
                explained = (
                    (f"the build's arch list ({' '.join(arches)}) lacks {sm}", "")
                    if predicted
                    else (
                        "wrong results or errors on the GPU",
                        "check the GPU's health (`nvidia-smi -q -d ECC`, Xid errors in dmesg)",
                    )
                )
            checks.append(
                Check(
                    check_id,
                    "fail",
                    f"{label}: {explained[0]}: {text}",
                    explained[1]
                    or "use an entry whose torch build covers " + sm + " (newer torch/CUDA)",
                )
            )
            continue
        worst = max((result.get(op) or {}).get("max_abs_error") or 0.0 for op in ("matmul", "conv"))
        checks.append(
            Check(
                check_id,
                "pass",
                f"{label}: matmul and conv forward+backward match the CPU (max error {worst:.1e})",
            )
        )
    return checks


def container_checks(
    probe: dict,
    entry=None,
    *,
    no_gpu: tuple[str, str] | None = None,
    host_probe: bool = False,
    caller_uid: int | None = None,
    rootless: bool = False,
) -> list[Check]:
    """Checks from the probe's JSON, compared with `entry` when given.

    `no_gpu` is (reason, fix) when the doctor deliberately ran the probe without GPUs.
    `host_probe` when the probe ran on a Python of the user's choosing (`--host`), not in the
    entry's image; that Python may itself be in a container, which the probe reports.
    `caller_uid` is the host user's uid when the probe ran as the image's default user, on a
    `rootless` engine or not.
    """
    if probe.get("fatal"):
        return [
            Check(
                "probe",
                "fail",
                f"the probe itself failed: {probe['fatal']}",
                "run `python3 envkit/inside/probe.py` in the image by hand to see the error",
            )
        ]
    errors = probe.get("errors") or []
    contained = probe.get("in_container")
    if contained is None:  # recordings older than the probe's own answer
        contained = not host_probe
    where = "container" if contained else "host"
    if errors:
        sections = ", ".join(f"{e.get('section')}: {last_line(e.get('error'))}" for e in errors)
        checks = [
            Check(
                "probe",
                "warn",
                f"the probe hit errors in {sections}",
                "the checks below that need those parts are incomplete",
            )
        ]
    else:
        checks = [Check("probe", "pass", f"probe ran: {probe.get('platform') or 'unknown OS'}")]
    checks += _versions_checks(probe, entry, host_probe)
    if not probe.get("torch"):
        return checks

    cuda_check = _cuda_check(probe, entry, no_gpu, host_probe, not contained)
    checks.append(cuda_check)
    if (probe.get("cuda") or {}).get("available"):
        if not probe.get("devices") and not any(e.get("section") == "devices" for e in errors):
            checks.append(
                Check(
                    "gpu-kernels",
                    "fail",
                    "CUDA is available but the probe found no device to run a kernel on",
                    "run `nvidia-smi -L` in the container: on MIG-enabled GPUs create MIG "
                    "instances (`nvidia-smi mig -cgi ... -C`) or disable MIG",
                )
            )
        checks += _kernel_checks(probe, entry)
        count = len([d for d in probe.get("devices") or [] if not d.get("error")])
        nccl = probe.get("nccl") or {}
        if count <= 1:
            checks.append(Check("nccl", "skip", f"{count} GPU: NCCL is only needed for several"))
        elif nccl.get("available"):
            checks.append(Check("nccl", "pass", f"NCCL {nccl.get('version') or '?'} available"))
        else:
            checks.append(
                Check(
                    "nccl",
                    "fail",
                    f"NCCL unavailable with {count} GPUs: {nccl.get('error') or 'not built in'}",
                    "use an official CUDA wheel of torch for Linux (they ship NCCL)",
                )
            )
    elif cuda_check.status != "skip":
        checks.append(Check("gpu-kernels", "skip", "not run: CUDA is unavailable (see cuda)"))

    loader = probe.get("dataloader")
    shm = (probe.get("shm") or {}).get("bytes")
    if loader is None:
        checks.append(Check("dataloader", "skip", "not run"))
    elif loader.get("ok"):
        checks.append(
            Check(
                "dataloader",
                "pass",
                f"a DataLoader with {loader.get('workers')} workers ran "
                f"({loader.get('batches')} batches in {loader.get('seconds')} s)",
            )
        )
    else:
        error = last_line(loader.get("error") or "wrong data")
        explained = explain_error(error)
        shm_text = f" (/dev/shm is {human_bytes(shm)})" if shm else ""
        checks.append(
            Check(
                "dataloader",
                "fail",
                f"a DataLoader with {loader.get('workers')} workers failed{shm_text}: "
                + (with_explanation(explained[0], error) if explained else error),
                explained[1] if explained else "run the DataLoader with num_workers=0 to see why",
            )
        )
    checks.append(
        shm_check(
            "probe-shm",
            shm,
            where,
            "run with a larger --shm-size (e.g. 8g) or --ipc=host"
            if where == "container"
            else "`sudo mount -o remount,size=8G /dev/shm`",
        )
    )
    checks.append(_user_check(probe.get("identity") or {}, caller_uid, rootless))
    return checks


def _user_check(identity: dict, caller_uid: int | None, rootless: bool = False) -> Check:
    """Whose files a plain `docker run` of the image leaves in a bind mount: the image's default
    user's. Root on the host can use any; anyone else gets files they may not change. On a
    rootless engine container root is the caller and every other uid a subordinate one."""
    uid = identity.get("uid")
    if uid is None:
        return Check("user", "skip", "uid/gid not reported")
    who = f"uid {uid}, gid {identity.get('gid')} ({identity.get('user') or 'no passwd entry'})"
    if rootless:
        if uid == 0:
            return Check("user", "pass", f"{who}: under rootless Docker that is you on the host")
        return Check(
            "user",
            "warn",
            f"the image runs as {who} by default: rootless Docker maps it to one of your "
            "subordinate uids, so files it writes into a bind mount will not be yours",
            "use `envkit run`, which runs as container root (you, under rootless Docker), or "
            "pass `--user 0:0` to docker run",
        )
    if caller_uid is None or caller_uid in (0, uid):
        return Check("user", "pass", who)
    owner = "root" if uid == 0 else f"uid {uid}"
    return Check(
        "user",
        "warn",
        f"the image runs as {who} by default and you are uid {caller_uid}: files a plain "
        f"`docker run` writes into a bind mount will belong to {owner}, not to you",
        "use `envkit run`, which runs as you (--user UID:GID), or pass "
        "`--user $(id -u):$(id -g)` to docker run",
    )


def parse_probe_output(stdout: str) -> dict | None:
    """The probe's JSON document from a program's stdout, or None when there is none."""
    text = stdout.strip()
    try:
        data = json.loads(text)
        return data if isinstance(data, dict) else None
    except ValueError:
        pass
    # Something in the image printed before the probe could redirect fd 1: find the document.
    start = text.find("\n{")
    end = text.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        data = json.loads(text[start + 1 : end + 1])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def parsed_probe(code: int, stdout: str, stderr: str) -> tuple[dict | None, Check | None]:
    probe = parse_probe_output(stdout)
    if probe is not None:
        return probe, None
    tail = last_line(stderr) or last_line(stdout) or "no output"
    explained = explain_error(stderr + "\n" + stdout)
    return None, Check(
        "probe",
        "fail",
        f"the probe printed no report (exit code {code}): "
        + (with_explanation(explained[0], tail) if explained else tail),
        explained[1] if explained else "run the probe by hand to see the whole error",
    )
