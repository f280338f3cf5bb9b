"""envkit lock / build --locked: pin what an image really contains, and refuse drift."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from . import build as builder
from . import engine, files
from .errors import BadInput, BuildFailed, CheckFailed
from .matrix import Entry

LOCK_FILE = "envkit.lock"
SCHEMA = 1
_VERIFY_PREFIX = "envkit-verify"
_LIST_PACKAGES = ["python", "-m", "pip", "list", "--format=json", "--disable-pip-version-check"]


@dataclass(frozen=True)
class Lock:
    """What a built image was made from and what it holds."""

    entry: str
    image_id: str
    content_tag: str
    base_image: str
    base_image_digest: str | None
    packages: dict

    def to_json(self) -> str:
        data = {"schema": SCHEMA, **self.__dict__}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def packages_in(image: str, name: str) -> dict[str, str]:
    """Every Python distribution installed in the image, name -> version."""
    result = engine.run_command(image, _LIST_PACKAGES, entry=name)
    if result.exit_code != 0:
        raise CheckFailed(
            f"cannot list packages in {image}: {result.stderr.strip()[-500:]}",
            "the image needs python with pip",
        )
    try:
        rows = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise CheckFailed(f"pip list in {image} printed no JSON", "check the image") from None
    return {row["name"].lower(): row["version"] for row in rows}


def base_digest(ref: str) -> str | None:
    """The base image's repo digest (or its local id when it came from no registry)."""
    attrs = engine.image_attrs(ref)
    if attrs is None:
        return None
    digests = attrs.get("RepoDigests") or []
    return digests[0] if digests else attrs.get("Id")


def make_lock(entry: Entry, options: builder.BuildOptions) -> Lock:
    """A lock for the entry's built image (which must exist and be current)."""
    _, _, digest = builder.plan(entry, options)
    repo = builder.repository(entry.name, options)
    image_id = engine.image_id(f"{repo}:{digest}")
    if image_id is None:
        raise BuildFailed(
            f"{repo}:{digest} is not built (the image is missing or out of date)",
            f"build it first: envkit build {entry.name}",
        )
    base = options.base_image or entry.base_image
    return Lock(
        entry.name, image_id, digest, base, base_digest(base), packages_in(image_id, entry.name)
    )


def read_lock(path: Path) -> Lock:
    """Load envkit.lock, with a clear error when it is missing or not ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(f"{path} does not exist", "write one with `envkit lock NAME`") from None
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"{path}:{exc.lineno}: not valid JSON ({exc.msg})",
            "regenerate it with `envkit lock NAME`",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}", "pass a lock file (--lock FILE)") from None
    if not isinstance(data, dict):
        raise BadInput(
            f"{path}: a lock is a JSON object, not {type(data).__name__}",
            "regenerate it with `envkit lock NAME`",
        )
    if data.get("schema") != SCHEMA:
        raise BadInput(
            f"{path}: unknown lock schema {data.get('schema')!r}",
            "regenerate it with `envkit lock NAME`",
        )
    data.pop("schema")
    try:
        made = Lock(**data)
    except TypeError as exc:
        raise BadInput(f"{path}: {exc}", "regenerate it with `envkit lock NAME`") from None
    texts = ("entry", "image_id", "content_tag", "base_image")
    wrong = [key for key in texts if not isinstance(getattr(made, key), str)]
    if not isinstance(made.base_image_digest, (str, type(None))):
        wrong.append("base_image_digest")
    packages = made.packages
    if not isinstance(packages, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in packages.items()
    ):
        wrong.append("packages")
    if wrong:
        raise BadInput(
            f"{path}: wrong type for {', '.join(wrong)}",
            "regenerate it with `envkit lock NAME` (packages is an object of name: version)",
        )
    return made


def differences(locked: dict[str, str], built: dict[str, str]) -> list[str]:
    """Human lines naming each package that was added, removed or changed."""
    lines = []
    for name in sorted(set(locked) | set(built)):
        before, after = locked.get(name), built.get(name)
        if before == after:
            continue
        if before is None:
            lines.append(f"+ {name} {after} (not in the lock)")
        elif after is None:
            lines.append(f"- {name} {before} (locked, now missing)")
        else:
            lines.append(f"~ {name} {before} -> {after}")
    return lines


def build_locked(
    entry: Entry, options: builder.BuildOptions, lock: Lock, on_event=None
) -> builder.BuildResult:
    """Build the entry and keep the result only when its packages equal the lock's."""
    if lock.entry != entry.name:
        raise BadInput(
            f"the lock is for {lock.entry}, not {entry.name}",
            f"run envkit build --locked {lock.entry}, or re-lock",
        )
    _, _, digest = builder.plan(entry, options)
    repo = builder.repository(entry.name, options)
    if digest == lock.content_tag and engine.image_id(f"{repo}:{digest}") == lock.image_id:
        if engine.image_id(f"{repo}:latest") != lock.image_id:
            engine.tag_image(lock.image_id, repo, "latest")  # another build had moved it
        result = builder.BuildResult(entry.name, "up-to-date", repo, digest, image_id=lock.image_id)
        builder.push_result(result, options)
        return result
    trial = replace(options, tag_prefix=_VERIFY_PREFIX, push=False, force=True)
    result = builder.build_entry(entry, trial, on_event)
    if not result.ok:
        return result
    try:
        drift = differences(lock.packages, packages_in(result.image_id, entry.name))
    except BaseException:
        _drop(result)
        raise
    if drift:
        _drop(result)
        raise CheckFailed(
            f"the build of {entry.name} differs from {LOCK_FILE} in {len(drift)} package(s):\n  "
            + "\n  ".join(drift),
            "keep the locked inputs (pins, index, wheelhouse), or accept the change with "
            f"`envkit lock {entry.name}`",
        )
    for tag in ("latest", digest):
        engine.tag_image(result.image_id, repo, tag)
    _drop(result)
    result.repository = repo
    builder.push_result(result, options)
    return result


def check_out_path(path: Path) -> None:
    """Refuse a lock path whose folder is missing (before any work is done)."""
    if path.is_dir():
        raise BadInput(f"{path} is a folder", f"pass a file name, e.g. {path / LOCK_FILE}")
    if not path.parent.is_dir():
        raise BadInput(f"folder {path.parent} does not exist", "create it, or pick another --out")


def write_lock(made: Lock, path: Path) -> None:
    """Write the lock whole or not at all (files.write_file: never through a link)."""
    check_out_path(path)
    files.write_file(path, made.to_json(), fix="pick a writable --out")


def _drop(result: builder.BuildResult) -> None:
    for tag in result.tags:
        engine.remove_image(tag)
