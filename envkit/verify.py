"""envkit verify: build (or reuse) an image, doctor it, bench it, run the project's own test in
it, and keep one record of all that, compared with the last good record of the same kind.

Every step is an existing service (build, doctor, bench_run, run); this module only runs them
in order and writes down what they said.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import __version__, bench_run, build, doctor, engine, records
from . import run as runner
from .errors import BadInput, EnvkitError
from .matrix import Entry


@dataclass(frozen=True)
class VerifyOptions:
    """What a verify run does besides building."""

    quick: bool = True
    gpus: str = "auto"
    allow_cpu: bool = False
    run_tests: bool = True
    baseline: str | None = None  # a record id; default: the last good one of the same kind
    source: str = "local"
    store: Path | None = None  # default: records.records_dir()
    save: bool = True
    bench_timeout: float = 3600
    test_timeout: float = 3600


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def cpu_model(cpuinfo: str | None = None) -> str | None:
    """The CPU's model name from /proc/cpuinfo (platform.processor() elsewhere)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or None


def host_kind(bench_report: dict | None, cpu: str | None) -> str:
    """What the benchmark ran on: the GPU model, else `cpu: MODEL` (CPU numbers compare only
    with the same CPU model)."""
    env = (bench_report or {}).get("env") or {}
    if env.get("device") == "cuda" and env.get("gpu"):
        return str(env["gpu"])
    return f"cpu: {cpu or 'unknown'}"


def engine_facts(info: dict | None) -> dict | None:
    """The parts of `docker info` a record keeps."""
    if not isinstance(info, dict):
        return None
    return {
        "version": info.get("ServerVersion"),
        "os": info.get("OperatingSystem"),
        "kernel": info.get("KernelVersion"),
        "runtimes": sorted((info.get("Runtimes") or {}).keys()),
        "default_runtime": info.get("DefaultRuntime"),
        "cdi_spec_dirs": info.get("CDISpecDirs") or [],
    }


def host_facts(report: doctor.DoctorReport, bench_report: dict | None, info) -> dict:
    """The host part of a record: its GPUs and driver as the doctor saw them, the engine, CPU."""
    cpu = cpu_model()
    driver = None
    for gpu in report.gpus:
        driver = driver or getattr(gpu, "driver", None)
    gpus = []
    for gpu in report.gpus:
        data = gpu.to_dict()
        gpus.append(
            {
                "index": data.get("index"),
                "name": str(data.get("name")),
                "capability": data.get("capability"),
                "memory_mib": data.get("memory_mib"),
            }
        )
    runtime = next((c.detail for c in report.checks if c.id == "gpu-runtime"), None)
    facts = engine_facts(info)
    if facts is not None:
        facts["gpu_runtime"] = runtime
    return {
        "kind": host_kind(bench_report, cpu),
        "gpus": gpus,
        "driver": driver or ((bench_report or {}).get("env") or {}).get("driver"),
        "engine": facts,
        "cpu": {"model": cpu, "count": os.cpu_count()},
        "machine": platform.machine(),
    }


@contextlib.contextmanager
def _stdout_to_stderr(enabled: bool):
    """While the project's test prints to the terminal, keep stdout for the JSON report."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def run_project_test(image: str, entry: Entry, project, gpus: str, quiet_stdout: bool) -> dict:
    """The project's `test:` command in its image, the project folder mounted as for `envkit
    run .`: its exit code and duration."""
    spec, _ = runner.spec_for(
        image, entry.name, ("sh", "-c", project.test), workdir=project.directory, gpus=gpus
    )
    started = time.monotonic()
    with _stdout_to_stderr(quiet_stdout):
        code = engine.run_attached(spec)
    return {
        "command": project.test,
        "exit_code": code,
        "seconds": round(time.monotonic() - started, 2),
    }


def entry_facts(entry: Entry, project=None) -> dict:
    return {
        "name": entry.name,
        "torch": entry.torch,
        "torchvision": entry.torchvision,
        "torchaudio": entry.torchaudio,
        "cuda": entry.cuda,
        "cudnn": entry.cudnn,
        "python": entry.python,
        "flavour": entry.flavour,
        "project": str(project.directory) if project is not None else None,
    }


def image_facts(ref: str | None, result: build.BuildResult | None) -> dict:
    attrs = engine.image_attrs(ref) if ref else None
    config = (attrs or {}).get("Config") or {}
    return {
        "ref": ref,
        "id": (attrs or {}).get("Id"),
        "repo_digests": list((attrs or {}).get("RepoDigests") or []),
        "labels": {str(k): str(v) for k, v in (config.get("Labels") or {}).items()},
        "build": None
        if result is None
        else {"status": result.status, "seconds": round(result.seconds, 1), "error": result.error},
    }


def finish(record: dict, options: VerifyOptions) -> dict:
    """Compare with the baseline, settle the status, give the record its id and store it."""
    store = options.store
    known = records.load_all(store)
    if options.baseline:
        baseline = records.find(options.baseline, store)
    else:
        baseline = records.baseline_for(record, known)
    record["baseline"] = baseline["id"] if baseline else None
    record["regressions"] = records.regressions(record, baseline)
    if record["regressions"]:
        record["failed"].append("regression")
    record["status"] = "fail" if record["failed"] else "pass"
    content = {k: v for k, v in record.items() if k != "id"}
    record["id"] = records.make_id(record["finished"], record["entry"]["name"], content)
    records.validate(record, "the new record")
    if options.save:
        records.save(record, store)
    return record


def verify(
    entry: Entry,
    all_entries: list[Entry],
    build_options: build.BuildOptions,
    options: VerifyOptions,
    *,
    project=None,
    on_progress: Callable[[str], None] | None = None,
    quiet_stdout: bool = False,
) -> dict:
    """Build or reuse NAME's image, then doctor, bench and the project's test: one record."""
    say = on_progress or (lambda line: None)
    if project is not None and project.test is None and options.run_tests:
        say("note: envkit.yaml has no test: command; only doctor and bench run")
    if options.baseline:
        records.find(options.baseline, options.store)  # a wrong id is bad input before any work
    started = _now()
    failed: list[str] = []
    say(f"verify {entry.name}: build (or reuse) ...")
    results = build.build_requested([entry], build_options, project=project)
    result = results[0]
    ref = f"{result.repository}:{result.content_tag}" if result.ok else None
    doctor_report = bench_doc = bench_error = test = None
    info = None
    if not result.ok:
        failed.append("build")
        say(f"build failed: {result.error}")
    else:
        say(f"verify {entry.name}: doctor {ref} ...")
        # A CPU-only entry verified as such: its `cuda` row is not a failure of the image.
        doctor_report = doctor.run_doctor(
            entry,
            all_entries=all_entries,
            image=ref,
            allow_cpu=options.allow_cpu or entry.cuda is None,
        )
        if not doctor_report.ok:
            failed.append("doctor")
        with contextlib.suppress(EnvkitError):
            info = engine.engine_info()
        devices = bench_run.devices_for(options.gpus, entry)
        say(f"verify {entry.name}: bench{' --quick' if options.quick else ''} ...")
        with tempfile.TemporaryDirectory(prefix="envkit-verify-") as tmp:
            try:
                bench_doc = bench_run.in_image(
                    ref,
                    entry.name,
                    Path(tmp),
                    quick=options.quick,
                    gpus=devices.gpus,
                    device=devices.device,
                    timeout=options.bench_timeout,
                    on_progress=on_progress,
                )
            except EnvkitError as exc:
                bench_error = exc.message
        if bench_doc is None or bench_doc.get("status") != "ok":
            failed.append("bench")
        if project is not None and project.test and options.run_tests:
            say(f"verify {entry.name}: project test {project.test!r} ...")
            test = run_project_test(ref, entry, project, options.gpus, quiet_stdout)
            if test["exit_code"] != 0:
                failed.append("project_test")
    if doctor_report is None:
        doctor_report = doctor.run_doctor(entry, all_entries=all_entries, static_only=True)
    record = {
        "schema": records.SCHEMA_VERSION,
        "id": "",
        "envkit_version": __version__,
        "started": started,
        "finished": _now(),
        "status": "fail",
        "source": options.source,
        "options": {
            "quick": options.quick,
            "gpus": options.gpus,
            "allow_cpu": options.allow_cpu,
            "base_image": build_options.base_image,
            "offline": build_options.offline,
        },
        "entry": entry_facts(entry, project),
        "image": image_facts(ref, result),
        "host": host_facts(doctor_report, bench_doc, info),
        "doctor": {
            "ok": doctor_report.ok,
            "checks": [c.to_dict() for c in doctor_report.checks],
            "suggestions": list(doctor_report.suggestions),
        },
        "bench": None
        if result is None or not result.ok
        else {"quick": options.quick, "error": bench_error, "report": bench_doc},
        "project_test": test,
        "baseline": None,
        "regressions": [],
        "failed": failed,
    }
    return finish(record, options)


def exit_code(record: dict) -> int:
    """0 when the record passed, 1 otherwise."""
    return 0 if record["status"] == "pass" else 1


def check_baseline_folder(store: Path | None) -> None:
    """Refuse a store that exists and is not a folder before anything is built."""
    folder = records.records_dir() if store is None else Path(store)
    if folder.exists() and not folder.is_dir():
        raise BadInput(f"{folder} is not a folder", "set XDG_DATA_HOME or pass --store DIR")


def host_record(doctor_doc: dict, bench_doc: dict, *, source: str, quick: bool) -> dict:
    """A record of a run on the host's own Python (no image): `envkit doctor --host --json` and
    a bench report, as scripts/gpu-evidence.sh writes them."""
    env = bench_doc.get("env") or {}
    torch = str(env.get("torch") or "unknown")
    gpus = [
        {
            "index": g.get("index"),
            "name": str(g.get("name")),
            "capability": g.get("capability"),
            "memory_mib": g.get("memory_mib"),
        }
        for g in doctor_doc.get("host_gpus") or []
    ]
    failed = [] if doctor_doc.get("ok") else ["doctor"]
    if bench_doc.get("status") != "ok":
        failed.append("bench")
    finished = _now()
    record = {
        "schema": records.SCHEMA_VERSION,
        "id": "",
        "envkit_version": __version__,
        "started": finished,
        "finished": finished,
        "status": "fail",
        "source": source,
        "options": {"quick": quick, "host": True},
        "entry": {
            "name": f"host-torch{torch.split('+')[0]}",
            "torch": torch,
            "torchvision": env.get("torchvision"),
            "torchaudio": None,
            "cuda": env.get("cuda"),
            "cudnn": None if env.get("cudnn") is None else str(env.get("cudnn")),
            "python": str(env.get("python") or "unknown"),
            "flavour": "host",
            "project": None,
        },
        "image": {"ref": None, "id": None, "repo_digests": [], "labels": {}, "build": None},
        "host": {
            "kind": host_kind(bench_doc, cpu_model()),
            "gpus": gpus,
            "driver": env.get("driver") or next((g.get("driver") for g in gpus), None),
            "engine": None,
            "cpu": {"model": cpu_model(), "count": os.cpu_count()},
            "machine": platform.machine(),
        },
        "doctor": {
            "ok": bool(doctor_doc.get("ok")),
            "checks": doctor_doc.get("checks") or [],
            "suggestions": doctor_doc.get("suggestions") or [],
        },
        "bench": {"quick": quick, "error": None, "report": bench_doc},
        "project_test": None,
        "baseline": None,
        "regressions": [],
        "failed": failed,
    }
    return record
