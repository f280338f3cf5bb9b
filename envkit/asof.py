"""The date a project's packages resolve as of: given, the last commit that touched its
dependency files, or the day its stack's torch was superseded (docs/project.md)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from . import facts
from .errors import BadInput
from .project import PROJECT_FILE, date_problem, load_project, write_project

# The files init reads pins from (envkit/init.py), as git pathspecs.
DEPENDENCY_FILES = (
    "requirements*.txt",
    "requirements/*.txt",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "environment.yml",
    "environment.yaml",
    "Pipfile",
)


@dataclass(frozen=True)
class AsOf:
    """A proposed as-of date and why."""

    date: str | None
    reason: str


def checked(text: str) -> str:
    """`text` when it is a usable as-of date, else BadInput."""
    problem = date_problem(text)
    if problem:
        raise BadInput(f"--as-of {text!r} {problem}", "give a past date: --as-of 2021-03-01")
    return text


def last_commit_date(folder: Path) -> str | None:
    """The committer date (YYYY-MM-DD) of the last commit touching the dependency files of
    `folder`, or None when it is no git work tree or no commit touched them."""
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "log", "-1", "--format=%cs", "--", *DEPENDENCY_FILES],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    day = done.stdout.strip()
    return day if done.returncode == 0 and day and not date_problem(day) else None


def superseded(torch: str) -> tuple[str, str] | None:
    """(date, version) of the torch release after `torch` in the fact table; None for the
    newest."""
    wanted = facts.parse_release(torch)
    later = [r for r in facts.torch_releases() if facts.parse_release(r.torch) > wanted]
    if wanted is None or not later:
        return None
    return later[0].released, later[0].torch


def propose(folder: Path, torch: str) -> AsOf:
    """The as-of date init writes when none is given."""
    day = last_commit_date(folder)
    if day:
        return AsOf(day, f"as_of {day}: the last commit that touched the dependency files")
    successor = superseded(torch)
    if successor and not date_problem(successor[0]):
        day, version = successor
        return AsOf(day, f"as_of {day}: the day torch {version} superseded torch {torch}")
    return AsOf(None, f"no as_of: torch {torch} is the newest release envkit knows")


def record(folder: Path, day: str) -> Path:
    """Write `as_of: day` into the folder's envkit.yaml."""
    project = load_project(folder)
    if project is None:
        raise BadInput(f"no {PROJECT_FILE} in {folder}", "run envkit init")
    return write_project(folder, replace(project, as_of=day), overwrite=True)
