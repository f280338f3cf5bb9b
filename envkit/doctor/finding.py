"""The one finding type of the doctor (`Check`: status, detail, fix) and its report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..gpu.host import HostGpu

STATUSES = ("pass", "warn", "fail", "skip")
GIB = 1024**3


@dataclass(frozen=True)
class Check:
    """One line of the doctor's report: a status, a one-line detail, and the fix if not pass."""

    id: str
    status: str
    detail: str
    fix: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check {self.id}: status {self.status!r} is not one of {STATUSES}")

    def to_dict(self) -> dict:
        """Plain data for --json."""
        return {"id": self.id, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass
class DoctorReport:
    """The doctor's verdict: ok when no check failed."""

    ok: bool
    checks: list[Check]
    entry: str | None = None
    image: str | None = None
    gpus: list[HostGpu] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    probe: dict | None = None

    def to_dict(self) -> dict:
        """Plain data: ok, checks, and what they were computed from."""
        return {
            "ok": self.ok,
            "entry": self.entry,
            "image": self.image,
            "checks": [c.to_dict() for c in self.checks],
            "suggestions": list(self.suggestions),
            "host_gpus": [g.to_dict() for g in self.gpus],
            "probe": self.probe,
        }

    def to_json(self) -> str:
        """The --json document."""
        return json.dumps(self.to_dict(), indent=2)

    def to_text(self) -> str:
        """Human report: one row per check, the fix under each non-pass row, then a summary."""
        width = max([len(c.id) for c in self.checks] + [5])
        lines = []
        for check in self.checks:
            lines.append(f"{check.status:<4}  {check.id:<{width}}  {check.detail}")
            if check.status != "pass" and check.fix:
                lines.append(f"{'':<4}  {'':<{width}}  fix: {check.fix}")
        counts = {s: sum(c.status == s for c in self.checks) for s in STATUSES}
        summary = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
        verdict = "ok" if self.ok else "FAILED"
        lines.append(f"doctor: {verdict} ({summary or 'no checks'})")
        return "\n".join(lines)


def human_bytes(nbytes: int) -> str:
    """1.5 GiB, or 64 MiB below a GiB."""
    if nbytes >= GIB:
        return f"{nbytes / GIB:.1f} GiB"
    return f"{nbytes / 1024**2:.0f} MiB"
