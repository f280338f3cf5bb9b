"""Validation records: one JSON file per `envkit verify` run, kept in the user's data folder.

The format is versioned (`schema: 1`) and described by envkit/data/record.schema.json, which
every record is validated against when it is written and when it is read. Regressions are
found here too, by comparing a record with the last good one for the same entry and host kind.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.resources
import json
import os
import re
import statistics
from collections.abc import Iterable
from pathlib import Path

from . import files
from .errors import BadInput

SCHEMA_VERSION = 1
RECORD_SUFFIX = ".json"
# Below this relative change a throughput or timing difference is not called a regression even
# when both runs measured a smaller spread: two quiet runs still differ by a few percent.
MIN_NOISE = 0.05
# Convergence time has no spread of its own (one timed run); on a shared machine it moved by up
# to 25 % between identical runs (docs/bench.md), so that is its floor.
CONVERGENCE_NOISE = 0.25


def records_dir(environ=None) -> Path:
    """Where records live: $XDG_DATA_HOME/envkit/records (default ~/.local/share/...)."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "envkit" / "records"


# ----------------------------------------------------------------------------- the schema


@functools.lru_cache(maxsize=1)
def schema() -> dict:
    """The JSON Schema of a record (package data)."""
    path = importlib.resources.files("envkit") / "data" / "record.schema.json"
    return json.loads(path.read_text(encoding="utf-8"))


def validate(record, source: str = "record") -> dict:
    """The record if it matches the schema; BadInput naming the first problem otherwise."""
    import jsonschema

    if not isinstance(record, dict):
        raise BadInput(f"{source}: not a JSON object", "pass a record written by envkit verify")
    if record.get("schema") != SCHEMA_VERSION:
        raise BadInput(
            f"{source}: record schema {record.get('schema')!r}, this envkit reads {SCHEMA_VERSION}",
            "upgrade envkit, or re-run envkit verify",
        )
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(record), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top)"
        raise BadInput(
            f"{source}: {where}: {first.message}", "the file is not an envkit record (schema 1)"
        )
    return record


def make_id(finished: str, entry: str, content: dict) -> str:
    """`20261206T120102Z-torch1.4-cuda10-1a2b3c4d`: sortable by time, then the entry."""
    when = _dt.datetime.fromisoformat(finished).astimezone(_dt.timezone.utc)
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", entry)
    return f"{when:%Y%m%dT%H%M%SZ}-{safe}-{digest}"


# ------------------------------------------------------------------------------ the store


def write_atomic(path: Path, text: str) -> Path:
    """Write text to path whole or not at all (envkit.files: a reader never sees half a file,
    and a symlink at `path` is refused rather than followed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return files.write_file(path, text, fix="write the records somewhere else (--store DIR)")


def save(record: dict, folder: Path | None = None) -> Path:
    """Validate and store a record as FOLDER/ID.json; returns the path."""
    validate(record, f"record {record.get('id')}")
    folder = records_dir() if folder is None else Path(folder)
    return write_atomic(folder / f"{record['id']}{RECORD_SUFFIX}", json.dumps(record, indent=1))


def read(path: Path) -> dict:
    """One record file, validated."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInput(f"cannot read {path}: {exc.strerror}", "check the path") from None
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not JSON ({exc.msg}, line {exc.lineno})", "") from None
    return validate(doc, str(path))


def load_all(folder: Path | None = None) -> list[dict]:
    """Every record in the store, oldest first (by finish time, then id)."""
    folder = records_dir() if folder is None else Path(folder)
    if not folder.is_dir():
        return []
    records = [read(p) for p in sorted(folder.glob(f"*{RECORD_SUFFIX}")) if not p.is_symlink()]
    return sorted(records, key=lambda r: (r["finished"], r["id"]))


def find(record_id: str, folder: Path | None = None) -> dict:
    """The record with this id (or a unique prefix of it)."""
    matches = [r for r in load_all(folder) if r["id"].startswith(record_id)]
    if len(matches) != 1:
        found = "no record" if not matches else f"{len(matches)} records"
        raise BadInput(
            f"{found} with id {record_id!r} in {folder or records_dir()}",
            "see `envkit records` for the ids",
        )
    return matches[0]


def select(
    records: Iterable[dict],
    *,
    entry: str | None = None,
    gpu: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> list[dict]:
    """Records of an entry, a host kind (substring, any case), and a date range (YYYY-MM-DD)."""
    out = []
    for record in records:
        day = record["finished"][:10]
        if entry and record["entry"]["name"] != entry:
            continue
        if gpu and gpu.lower() not in record["host"]["kind"].lower():
            continue
        if (since and day < since) or (until and day > until):
            continue
        out.append(record)
    return out


def import_folder(source: Path, folder: Path | None = None) -> tuple[list[str], list[str]]:
    """Copy every valid record under `source` (searched recursively, as downloaded workflow
    artifacts nest them) into the store: (ids added, ids already there). An invalid file is
    bad input naming it, and nothing is imported."""
    source = Path(source)
    if not source.is_dir():
        raise BadInput(f"{source} is not a folder", "pass the folder the records were saved to")
    found = [read(p) for p in sorted(source.rglob(f"*{RECORD_SUFFIX}")) if p.is_file()]
    have = {r["id"] for r in load_all(folder)}
    added, known = [], []
    for record in found:
        if record["id"] in have:
            known.append(record["id"])
            continue
        save(record, folder)
        have.add(record["id"])
        added.append(record["id"])
    return added, known


def export(target: Path, records: Iterable[dict]) -> list[Path]:
    """Write records into `target` as ID.json files."""
    return [
        write_atomic(Path(target) / f"{r['id']}{RECORD_SUFFIX}", json.dumps(r, indent=1))
        for r in records
    ]


# ----------------------------------------------------------------------------- regressions


def baseline_for(record: dict, records: Iterable[dict]) -> dict | None:
    """The last good record before this one for the same entry and host kind."""
    earlier = [
        r
        for r in records
        if r["id"] != record["id"]
        and r["status"] == "pass"
        and r["entry"]["name"] == record["entry"]["name"]
        and r["host"]["kind"] == record["host"]["kind"]
        and r["finished"] <= record["finished"]
    ]
    return max(earlier, key=lambda r: (r["finished"], r["id"])) if earlier else None


def _report(record: dict) -> dict:
    return ((record.get("bench") or {}).get("report")) or {}


def _rows(report: dict) -> dict:
    return {
        (row.get("precision"), bool(row.get("channels_last")), row.get("batch")): row
        for row in report.get("throughput") or []
        if row.get("images_per_s") and not row.get("error")
    }


def _noise(*values) -> float:
    return max([MIN_NOISE, *[v for v in values if isinstance(v, (int, float))]])


def regressions(record: dict, baseline: dict | None) -> list[dict]:
    """Findings where `record` is worse than `baseline`, numbers side by side. The accuracy
    gate applies with or without a baseline."""
    out = []
    new, old = _report(record), _report(baseline or {})
    conv = new.get("convergence") or {}
    accuracy, gate = conv.get("accuracy"), conv.get("threshold")
    old_conv = old.get("convergence") or {}
    if isinstance(accuracy, (int, float)) and isinstance(gate, (int, float)) and accuracy < gate:
        out.append(
            {
                "check": "accuracy",
                "detail": f"accuracy {accuracy:.4f} is below the gate {gate:.2f}",
                "baseline": old_conv.get("accuracy"),
                "value": accuracy,
                "limit": gate,
            }
        )
    if baseline is None:
        return out
    spreads = [row.get("spread") for row in _rows(new).values()] + [
        row.get("spread") for row in _rows(old).values()
    ]
    spreads = [s for s in spreads if isinstance(s, (int, float))]
    machine_noise = statistics.median(spreads) if spreads else 0.0
    seconds, old_seconds = conv.get("seconds"), old_conv.get("seconds")
    if isinstance(seconds, (int, float)) and isinstance(old_seconds, (int, float)) and old_seconds:
        limit = old_seconds * (1 + max(CONVERGENCE_NOISE, machine_noise))
        if seconds > limit:
            out.append(
                {
                    "check": "convergence.seconds",
                    "detail": f"convergence took {seconds:.1f}s against {old_seconds:.1f}s "
                    f"(limit {limit:.1f}s: the baseline plus the noise)",
                    "baseline": old_seconds,
                    "value": seconds,
                    "limit": round(limit, 3),
                }
            )
    old_rows = _rows(old)
    for key, row in sorted(_rows(new).items(), key=lambda kv: str(kv[0])):
        before = old_rows.get(key)
        if before is None:
            continue
        noise = _noise(row.get("spread"), before.get("spread"))
        limit = before["images_per_s"] * (1 - noise)
        if row["images_per_s"] < limit:
            precision, nhwc, batch = key
            out.append(
                {
                    "check": f"throughput.{precision}{'.nhwc' if nhwc else ''}.b{batch}",
                    "detail": f"{precision} batch {batch}: {row['images_per_s']:.1f} images/s "
                    f"against {before['images_per_s']:.1f} (limit {limit:.1f}: the baseline "
                    f"less the larger spread of the two runs, {noise:.0%})",
                    "baseline": before["images_per_s"],
                    "value": row["images_per_s"],
                    "limit": round(limit, 3),
                }
            )
    old_checks = {c["id"]: c for c in (baseline.get("doctor") or {}).get("checks", [])}
    for check in (record.get("doctor") or {}).get("checks", []):
        before = old_checks.get(check["id"])
        if check["status"] == "fail" and before is not None and before["status"] != "fail":
            out.append(
                {
                    "check": f"doctor.{check['id']}",
                    "detail": f"doctor's {check['id']} now fails: {check['detail']}",
                    "baseline": before["status"],
                    "value": check["status"],
                }
            )
    if old.get("status") == "ok" and new and new.get("status") != "ok":
        out.append(
            {
                "check": "bench.status",
                "detail": f"the benchmark's status went from ok to {new.get('status')}",
                "baseline": "ok",
                "value": new.get("status"),
            }
        )
    return out


def render_list(records: list[dict]) -> str:
    """One line per record: id, status, entry, host kind, accuracy, best throughput."""
    from .table import format_table

    rows = []
    for record in records:
        report = _report(record)
        accuracy = (report.get("convergence") or {}).get("accuracy")
        best = max((r["images_per_s"] for r in _rows(report).values()), default=None)
        rows.append(
            [
                record["id"],
                record["status"],
                record["entry"]["name"],
                record["host"]["kind"],
                "-" if accuracy is None else f"{accuracy:.4f}",
                "-" if best is None else f"{best:.1f}",
                str(len(record["regressions"])),
            ]
        )
    header = ["id", "status", "entry", "host", "accuracy", "best img/s", "regressions"]
    return format_table(header, rows)


def render_record(record: dict) -> str:
    """A record in words: what ran where, then the doctor's failures, bench and regressions."""
    host = record["host"]
    lines = [
        f"record {record['id']}: {record['status'].upper()}"
        + (f" ({', '.join(record['failed'])})" if record["failed"] else ""),
        f"  entry    {record['entry']['name']} (torch {record['entry']['torch']}, "
        f"CUDA {record['entry']['cuda'] or 'none'}, Python {record['entry']['python']})",
        f"  image    {record['image']['ref']} {record['image']['id'] or ''}".rstrip(),
        f"  host     {host['kind']}; driver {host['driver'] or 'none'}; "
        f"{host['cpu']['count']} CPUs ({host['cpu']['model']})",
        f"  when     {record['started']} .. {record['finished']} (envkit "
        f"{record['envkit_version']}, {record['source']})",
    ]
    doctor = record.get("doctor")
    if doctor is not None:
        bad = [c for c in doctor["checks"] if c["status"] in ("fail", "warn")]
        lines.append(f"  doctor   {'ok' if doctor['ok'] else 'FAILED'}")
        lines += [f"    {c['status']}  {c['id']}: {c['detail']}" for c in bad]
    report = _report(record)
    if report:
        conv = report.get("convergence") or {}
        lines.append(
            f"  bench    {report.get('status')}: accuracy {conv.get('accuracy')}, "
            f"convergence {conv.get('seconds')}s"
        )
        for (precision, nhwc, batch), row in sorted(_rows(report).items(), key=str):
            lines.append(
                f"    {precision}{' NHWC' if nhwc else ''} batch {batch}: "
                f"{row['images_per_s']:.1f} images/s (spread {row.get('spread') or 0:.2f})"
            )
    elif record.get("bench"):
        lines.append(f"  bench    no report: {record['bench'].get('error')}")
    test = record.get("project_test")
    if test:
        lines.append(
            f"  test     {test['command']!r}: exit {test['exit_code']} in {test['seconds']}s"
        )
    if record["baseline"]:
        lines.append(f"  baseline {record['baseline']}")
    for finding in record["regressions"]:
        lines.append(f"  REGRESSION {finding['check']}: {finding['detail']}")
    return "\n".join(lines)
