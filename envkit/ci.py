"""envkit ci init: a GitHub Actions workflow a project can keep, rendered from a template."""

from __future__ import annotations

import json
from pathlib import Path

from . import __version__
from .errors import BadInput
from .files import write_file
from .matrix import Matrix
from .project import PROJECT_FILE, load_project

WORKFLOW = Path(".github") / "workflows" / "envkit.yml"
TEMPLATE = Path(__file__).resolve().parent / "templates" / "github-workflow.yml"
DEFAULT_TEST = "python -m pytest"


def stacks(project_entry: str, extra: tuple[str, ...], matrix: Matrix) -> list:
    """The entries CI builds the project on: envkit.yaml's first, then the others, once each."""
    chosen = []
    for name in (project_entry, *extra):
        entry = matrix.get(name)  # UnknownEntry names the misspelt one
        if entry not in chosen:
            chosen.append(entry)
    return chosen


def render_workflow(entries: list, test_command: str, install: str) -> str:
    """The workflow text for these entries (the first is the project's own)."""
    if not test_command.strip() or "\n" in test_command:
        raise BadInput("the test command must be one line", "e.g. --test 'pytest -q'")
    names = [entry.name for entry in entries]
    gpu = [entry.name for entry in entries if entry.cuda] or names
    text = TEMPLATE.read_text(encoding="utf-8")
    for token, value in (
        ("@ENTRIES@", json.dumps(names)),
        ("@GPU_ENTRIES@", json.dumps(gpu)),
        ("@TEST_COMMAND@", test_command.strip()),
        ("@ENVKIT_INSTALL@", install),
    ):
        text = text.replace(token, value)
    return text


def init_ci(
    folder: Path,
    matrix: Matrix,
    extra: tuple[str, ...] = (),
    *,
    test_command: str | None = None,
    install: str | None = None,
    force: bool = False,
) -> tuple[Path, list]:
    """Write `.github/workflows/envkit.yml` into the project in `folder`; refuses to replace
    one unless `force`. Returns the path and the entries it covers."""
    project = load_project(folder)
    if project is None:
        raise BadInput(
            f"no {PROJECT_FILE} in {folder}", "write one first: envkit init (in the project folder)"
        )
    entries = stacks(project.entry, extra, matrix)
    text = render_workflow(
        entries,
        test_command or project.test or DEFAULT_TEST,
        install or f"envkit=={__version__}",
    )
    path = folder / WORKFLOW
    if path.exists() and not force:
        raise BadInput(f"{path} already exists", "pass --force to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(
            f"cannot make {path.parent}: {exc.strerror or exc}", "check the folder"
        ) from None
    return write_file(path, text, fix="pass another folder"), entries
