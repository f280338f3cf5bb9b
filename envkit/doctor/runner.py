"""The doctor's runner: gathers the host's facts, runs the probe, and assembles the report.

The only doctor module that talks to the engine (or runs anything); the checks it calls are pure.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import replace

from .. import inside, programs
from ..errors import BadInput, ContainerStartFailed, EnvkitError, ProgramTimedOut
from ..gpu import fit as gpu_fit
from ..gpu.host import (
    TOOLKIT_FIX,
    HostFacts,
    HostGpu,
    engine_is_rootless,
    gather_host,
    host_from_facts,
    is_desktop_vm,
    sm_names,
)
from ..gpu.known_errors import explain_error, with_explanation
from ..programs import Place
from .entry_checks import fit_checks
from .finding import Check, DoctorReport
from .host_checks import host_checks
from .image_checks import image_requirements, refused_cuda, requirement_check
from .probe_checks import container_checks, parsed_probe

PROBE_PATH = inside.PROBE
# Checks that only fail for want of a GPU; --allow-cpu turns those failures into warnings.
GPU_ONLY_CHECKS = ("cuda", "gpu-attach")


def _probe_on_host(python: str | None, timeout: float) -> tuple[dict | None, Check | None]:
    try:
        result = programs.run(Place(python=python), PROBE_PATH, timeout=timeout)
    except ProgramTimedOut:
        return None, Check(
            "probe", "fail", f"the probe did not finish within {timeout:.0f}s", "see the GPU state"
        )
    except BadInput as exc:
        return None, Check("probe", "fail", exc.message, exc.fix)
    return parsed_probe(result.exit_code, result.stdout, result.stderr)


def _gpu_plan(
    checks: list[Check], gpus: list[HostGpu], partial: bool = False
) -> tuple[str | None, tuple[str, str] | None]:
    """The GPUs to request for the container ("all", or the indices nvidia-smi listed before
    it failed on another GPU when `partial`), and when none, (reason, fix) for the report."""
    by_id = {c.id: c for c in checks}
    runtime, driver = by_id.get("gpu-runtime"), by_id.get("driver")
    if not gpus:
        why = driver.detail if driver is not None else "no NVIDIA GPU on this host"
        return None, (
            f"no GPU requested: no NVIDIA GPU on this host ({why})",
            (driver.fix if driver is not None and driver.fix else None)
            or "run on a host with an NVIDIA GPU, or use a CPU-only entry",
        )
    if runtime is not None and runtime.status in ("fail", "skip"):
        return None, (f"no GPU requested: {runtime.detail}", runtime.fix or TOOLKIT_FIX)
    if partial:  # the GPUs that answered are still worth proving
        return ",".join(str(g.index) for g in gpus), None
    if driver is not None and driver.status == "fail":
        return None, (f"no GPU requested: {driver.detail}", driver.fix or "")
    return "all", None


def run_doctor(
    entry=None,
    *,
    host_probe: bool = False,
    all_entries: Iterable = (),
    image: str | None = None,
    engine=None,
    host: HostFacts | None = None,
    python: str | None = None,
    shm_size: str | None = "8g",
    timeout: float = 600,
    allow_cpu: bool = False,
    static_only: bool = False,
) -> DoctorReport:
    """Host checks, then (for an entry) static checks and the probe in its image or on the host.

    `engine` defaults to envkit.engine (anything with engine_info() and run_program() will do);
    `host` defaults to gather_host(); `image` to envkit/<entry name>:latest. `shm_size` is
    what `envkit run` gives containers, so the probe sees the /dev/shm users will get.
    """
    all_entries = list(all_entries)
    if engine is None and not host_probe and not static_only:
        from .. import engine as engine_module

        engine = engine_module
    info: dict | Exception | None = None
    if not host_probe and not static_only:
        try:
            info = engine.engine_info()
        except EnvkitError as exc:
            info = exc
    raw = host if host is not None else gather_host()
    checks = host_checks(
        info,
        raw.nvidia_smi_output,
        raw.nvidia_smi_error,
        raw.shm_bytes,
        raw.cdi_files,
        toolkit=raw.toolkit,
        proc_driver_text=raw.proc_driver_text,
    )
    gpu_host = host_from_facts(raw)
    gpus, driver = list(gpu_host.gpus), gpu_host.driver
    report = DoctorReport(ok=True, checks=checks, gpus=gpus)

    fit = None
    if entry is not None:
        report.entry = entry.name
        fit = gpu_fit.assess(entry, gpu_host)
        checks += fit_checks(fit, all_entries)
        if fit.fails:
            report.suggestions = [
                e.name for e in gpu_fit.alternatives(entry, gpu_host, all_entries)
            ]

    if static_only:
        pass  # host facts and the entry's static checks are the whole report
    elif host_probe:
        probe, failed = _probe_on_host(python, timeout)
        if probe is not None:
            report.probe = probe
            checks += container_checks(probe, entry, host_probe=True)
        else:
            checks.append(failed)
    elif entry is not None:
        report.image = image or f"envkit/{entry.name}:latest"
        checks += _probe_in_image(
            engine,
            report.image,
            fit,
            info,
            checks,
            report,
            shm_size=shm_size,
            timeout=timeout,
            partial=bool(gpus and raw.nvidia_smi_error),
            all_entries=all_entries,
        )

    if allow_cpu:
        # The user accepts a CPU-only result: missing GPUs are worth a warning, not a failure.
        # A host with no NVIDIA driver at all is a CPU host too; a driver too old is not.
        gpu_only = GPU_ONLY_CHECKS + (("driver-for-cuda",) if driver is None else ())
        checks[:] = [
            replace(c, status="warn") if c.id in gpu_only and c.status == "fail" else c
            for c in checks
        ]
    report.ok = not any(c.status == "fail" for c in checks)
    return report


def _probe_in_image(
    engine,
    image: str,
    fit: gpu_fit.Fit,
    info,
    checks: list[Check],
    report,
    *,
    shm_size: str | None,
    timeout: float,
    partial: bool = False,
    all_entries: Iterable = (),
) -> list[Check]:
    entry = fit.entry
    if not isinstance(info, dict):
        return [Check("image", "skip", "not probed: the Docker engine is unreachable (see engine)")]
    image_id = getattr(engine, "image_id", None)
    if image_id is not None and image_id(image) is None:
        return [
            Check(
                "image",
                "fail",
                f"no image {image}: the container checks cannot run",
                f"build it: envkit build {entry.name}",
            )
        ]
    out: list[Check] = []
    image_attrs = getattr(engine, "image_attrs", None)
    if image_attrs is not None:
        out.append(requirement_check(image_requirements(image_attrs(image)), fit.host.driver))
    gpus = list(fit.host.gpus)
    want_gpus, no_gpu = (None, None) if entry.cuda is None else _gpu_plan(checks, gpus, partial)

    def probe_in(place: Place):
        return programs.run(place, PROBE_PATH, timeout=timeout, engine=engine)

    try:
        result = probe_in(Place(image=image, gpus=want_gpus, shm_size=shm_size))
    except ProgramTimedOut:
        return out + [_probe_timed_out(timeout, bool(want_gpus), fit.ptx_only)]
    except EnvkitError as exc:
        message = exc.message
        explained = explain_error(message)
        if not want_gpus or not isinstance(exc, ContainerStartFailed):
            return [
                Check(
                    "image",
                    "fail",
                    message,  # says itself whether the container did not start or what broke
                    (explained[1] if explained else None) or exc.fix,
                )
            ]
        # The engine refused the GPUs: report that, then still check the image without them.
        detail = with_explanation(explained[0], message) if explained else message
        fix = (explained[1] if explained else None) or exc.fix or TOOLKIT_FIX
        if refused_cuda(message):
            # The toolkit read the image's NVIDIA_REQUIRE_CUDA: name the entries this driver runs.
            others = [e.name for e in gpu_fit.alternatives(entry, fit.host, all_entries)]
            report.suggestions = report.suggestions or others
            if others:
                fix = f"{fix}; entries that run on this driver: {', '.join(others)}"
        out.append(Check("gpu-attach", "fail", f"GPUs could not be attached: {detail}", fix))
        no_gpu = (f"no GPU attached: {explained[0] if explained else message}", fix)
        try:
            result = probe_in(Place(image=image, shm_size=shm_size))
        except ProgramTimedOut:
            return out + [_probe_timed_out(timeout, False)]
        except EnvkitError as again:
            return out + [Check("image", "fail", again.message, again.fix)]
    else:
        if want_gpus:
            flag = "all" if want_gpus == "all" else f"'\"device={want_gpus}\"'"
            out.append(
                Check("gpu-attach", "pass", f"GPUs attached to the container (--gpus {flag})")
            )
    probe, failed = parsed_probe(result.exit_code, result.stdout, result.stderr)
    if probe is None:
        return out + [failed]
    # The doctor started the container, so it knows better than the probe's own guess.
    probe["in_container"] = True
    report.probe = probe
    # Docker Desktop's file sharing gives bind-mounted files to the host user whatever the uid.
    caller = None if is_desktop_vm(info) else caller_uid()
    return out + container_checks(
        probe, entry, no_gpu=no_gpu, caller_uid=caller, rootless=engine_is_rootless(info)
    )


def caller_uid() -> int | None:
    return os.getuid() if hasattr(os, "getuid") else None


def _probe_timed_out(timeout: float, with_gpus: bool, ptx_only=()) -> Check:
    if with_gpus and ptx_only:
        sms = sm_names(ptx_only)
        return Check(
            "probe",
            "fail",
            f"the probe did not finish within {timeout:.0f}s with the GPUs attached; this build "
            f"has only PTX for {sms}, which the driver compiles for the whole library at the "
            "first CUDA call (this can take longer than the limit)",
            "use an entry whose arch list has machine code for the GPU (`envkit doctor NAME "
            "--static` names them), or run once with a persistent JIT cache (mount a folder at "
            "~/.nv/ComputeCache and set CUDA_CACHE_MAXSIZE=4294967296)",
        )
    return Check(
        "probe",
        "fail",
        f"the probe did not finish within {timeout:.0f}s"
        + (" with the GPUs attached" if with_gpus else ""),
        "a hung GPU or driver is the usual cause: check `nvidia-smi` on the host; "
        "if the machine is only slow, run doctor again",
    )
