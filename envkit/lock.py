"""envkit lock / build --locked: pin what an image really contains, and refuse drift."""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from . import build as builder
from . import engine, files, resolve
from .errors import BadInput, BuildFailed, CheckFailed, EnvkitError
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

    def to_text(self) -> str:
        """The file's text (JSON)."""
        return self.to_json()


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
    except RecursionError:  # json nests by recursion; a lock is two levels deep
        raise BadInput(
            f"{path}: nested too deep to be a lock", "regenerate it with `envkit lock NAME`"
        ) from None
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
    refuse_drift(
        result,
        entry.name,
        lock.packages,
        f"the build of {entry.name} differs from {LOCK_FILE}",
        "keep the locked inputs (pins, index, wheelhouse), or accept the change with "
        f"`envkit lock {entry.name}`",
    )
    for tag in ("latest", digest):
        engine.tag_image(result.image_id, repo, tag)
    _drop(result)
    result.repository = repo
    builder.push_result(result, options)
    return result


def refuse_drift(
    result: builder.BuildResult, entry: str, locked: dict[str, str], what: str, fix: str
) -> None:
    """Remove the built image and raise CheckFailed when its packages are not the locked ones
    (`what` starts the message, the differences follow)."""
    try:
        drift = differences(_canonical(locked), _canonical(packages_in(result.image_id, entry)))
    except BaseException:
        _drop(result)
        raise
    if drift:
        _drop(result)
        raise CheckFailed(f"{what} in {len(drift)} package(s):\n  " + "\n  ".join(drift), fix)


def check_out_path(path: Path) -> None:
    """Refuse a lock path whose folder is missing (before any work is done)."""
    if path.is_dir():
        raise BadInput(f"{path} is a folder", f"pass a file name, e.g. {path / LOCK_FILE}")
    if not path.parent.is_dir():
        raise BadInput(f"folder {path.parent} does not exist", "create it, or pick another --out")


def write_lock(made: Lock | ProjectLock, path: Path) -> None:
    """Write an entry's or a project's lock whole or not at all (files.write_file: never
    through a link)."""
    check_out_path(path)
    files.write_file(path, made.to_text(), fix="pick a writable --out")


def _drop(result: builder.BuildResult) -> None:
    for tag in result.tags:
        engine.remove_image(tag)


# ------------------------------------------------------------------------- the project lock

PROJECT_LOCK_FILE = "envkit.lock.txt"
PROJECT_LOCK_VERSION = "1"
_HEADER = (
    "# envkit project lock, written by `envkit lock` (docs/project.md). `envkit build --locked`\n"
    "# builds the project image from it; any pip installs it without resolving anything:\n"
    "#   pip install --no-deps --require-hashes -r envkit.lock.txt\n"
    "#\n"
)
# Header keys in the order they are written; `requirement` repeats.
_KEYS = (
    "lock-version",
    "entry",
    "python",
    "platform",
    "as-of",
    "requirement",
    "base-image",
    "base-image-digest",
    "entry-image",
    "entry-image-id",
    "project-image",
)
_KEY_LINE = re.compile(r"^# ([a-z-]+): (.*)$")
_OPTION_LINE = re.compile(r"^(--index-url|--extra-index-url) (\S+)$")
_PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\$")
_HASH_LINE = re.compile(r"^    --hash=(sha256:[0-9a-f]{64})( \\)?$")
_FROM_LINE = re.compile(r"^    # from (\S+)$")


@dataclass(frozen=True)
class ProjectLock:
    """A project image's lock: its inputs, the images under it, and every distribution in it
    with version, source and sha256 (a pip requirements file with --hash lines)."""

    entry: str
    python: str
    platform: str
    as_of: str | None
    requirements: tuple[str, ...]  # the project's requirement lines, as written
    base_image: str
    base_image_digest: str | None
    entry_image: str  # repository:content tag
    entry_image_id: str
    project_image: str  # repository
    index_url: str
    extra_index_urls: tuple[str, ...]
    packages: tuple[resolve.Pinned, ...]

    def versions(self) -> dict[str, str]:
        """name -> version of every locked distribution."""
        return {p.name: p.version for p in self.packages}

    def to_text(self) -> str:
        """The file's text: a header of `# key: value` lines, the index options, the pins."""
        values = {
            "lock-version": [PROJECT_LOCK_VERSION],
            "entry": [self.entry],
            "python": [self.python],
            "platform": [self.platform],
            "as-of": [self.as_of] if self.as_of else [],
            "requirement": list(self.requirements),
            "base-image": [self.base_image],
            "base-image-digest": [self.base_image_digest] if self.base_image_digest else [],
            "entry-image": [self.entry_image],
            "entry-image-id": [self.entry_image_id],
            "project-image": [self.project_image],
        }
        lines = [f"# {key}: {value}" for key in _KEYS for value in values[key]]
        lines.append(f"--index-url {self.index_url}")
        lines += [f"--extra-index-url {url}" for url in self.extra_index_urls]
        for package in self.packages:
            lines.append("")
            lines.append(f"{package.name}=={package.version} \\")
            for n, digest in enumerate(package.hashes):
                more = " \\" if n < len(package.hashes) - 1 else ""
                lines.append(f"    --hash={digest}{more}")
            if package.source:
                lines.append(f"    # from {package.source}")
        return _HEADER + "\n".join(lines) + "\n"


def parse_project_lock(text: str, path: Path) -> ProjectLock:
    """Read a project lock; BadInput naming FILE:LINE for anything envkit did not write."""
    regenerate = "regenerate it with `envkit lock` in the project folder"
    header: dict[str, list[str]] = {key: [] for key in _KEYS}
    index_url, extras = None, []
    packages: list[resolve.Pinned] = []
    current: dict | None = None
    expect_hash = False

    def bad(number: int, message: str) -> BadInput:
        return BadInput(f"{path}:{number}: {message}", regenerate)

    def close(number: int) -> None:
        if current is not None:
            if not current["hashes"]:
                raise bad(number, f"{current['name']} has no --hash line")
            packages.append(
                resolve.Pinned(
                    current["name"],
                    current["version"],
                    current["source"],
                    tuple(current["hashes"]),
                )
            )

    for number, line in enumerate(text.splitlines(), 1):
        if expect_hash:
            digest = _HASH_LINE.match(line)
            if not digest:
                raise bad(number, f"expected a --hash line, found {line!r}")
            current["hashes"].append(digest.group(1))
            expect_hash = bool(digest.group(2))
            continue
        key, option, pin = _KEY_LINE.match(line), _OPTION_LINE.match(line), _PIN_LINE.match(line)
        origin = _FROM_LINE.match(line)
        if pin:
            close(number)
            current = {"name": pin.group(1), "version": pin.group(2), "source": None, "hashes": []}
            expect_hash = True
        elif origin and current is not None and current["source"] is None:
            current["source"] = origin.group(1)
        elif key and key.group(1) in header and current is None:
            header[key.group(1)].append(key.group(2))
        elif option and current is None:
            if option.group(1) == "--index-url":
                index_url = option.group(2)
            else:
                extras.append(option.group(2))
        elif line.strip() and not line.startswith("#"):
            raise bad(number, f"not a line of an envkit lock: {line!r}")
    if expect_hash:
        raise bad(len(text.splitlines()), "the file ends inside a package's --hash lines")
    close(len(text.splitlines()))

    def one(key: str, required: bool = True) -> str | None:
        found = header[key]
        if len(found) > 1:
            raise BadInput(f"{path}: '# {key}:' appears {len(found)} times", regenerate)
        if not found and required:
            raise BadInput(f"{path}: no '# {key}:' line (not an envkit project lock?)", regenerate)
        return found[0] if found else None

    if one("lock-version") != PROJECT_LOCK_VERSION:
        raise BadInput(f"{path}: unknown lock-version {one('lock-version')!r}", regenerate)
    if index_url is None:
        raise BadInput(f"{path}: no --index-url line", regenerate)
    return ProjectLock(
        entry=one("entry"),
        python=one("python"),
        platform=one("platform"),
        as_of=one("as-of", required=False),
        requirements=tuple(header["requirement"]),
        base_image=one("base-image"),
        base_image_digest=one("base-image-digest", required=False),
        entry_image=one("entry-image"),
        entry_image_id=one("entry-image-id"),
        project_image=one("project-image"),
        index_url=index_url,
        extra_index_urls=tuple(extras),
        packages=tuple(packages),
    )


def read_project_lock(path: Path) -> ProjectLock:
    """Load a project lock file, with a clear error when it is missing or not ours."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(
            f"{path} does not exist", "write one with `envkit lock` in the project folder"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}", "pass a lock file (--lock FILE)") from None
    return parse_project_lock(text, path)


def project_requirements(project) -> tuple[str, ...]:
    """The project's requirement lines as written: envkit.yaml's, then its requirements file's."""
    lines = list(project.requirements)
    if project.requirements_file:
        text = (project.directory / project.requirements_file).read_text(
            encoding="utf-8", errors="replace"
        )
        lines += resolve.requirement_lines([text])
    return tuple(lines)


def _torch_sources(entry: Entry, options: builder.BuildOptions) -> tuple[list, list]:
    """Extra indexes and find-links places for the entry's torch family, as its build uses."""
    indexes, places = [], []
    if options.extra_index_url:
        indexes.append(options.extra_index_url)
    if entry.index_url and not options.offline:
        (places if entry.index_url.endswith(".html") else indexes).append(entry.index_url)
    if options.wheelhouse:
        places.append(str(options.wheelhouse.resolve()))
    return indexes, places


def resolve_project(
    project, entry: Entry, options: builder.BuildOptions, keep: dict[str, str]
) -> list[resolve.Pinned]:
    """Resolve the project's requirements on top of `keep` (the entry image's packages, kept
    exactly), for the entry's Python, as of the project's date."""
    indexes, places = _torch_sources(entry, options)
    requirements = list(project.requirements)
    if project.requirements_file:
        requirements.append(f"-r {(project.directory / project.requirements_file).resolve()}")
    request = resolve.Request(
        requirements=tuple(requirements),
        keep=keep,
        python=entry.python,
        as_of=project.as_of,
        index_url=options.index_url or resolve.DEFAULT_INDEX,
        extra_index_urls=tuple(indexes),
        find_links=tuple(places),
        offline=options.offline,
    )
    with tempfile.TemporaryDirectory(prefix="envkit-lock-") as tmp:
        bundle = builder.ca_bundle(options.ca_cert, Path(tmp)) if options.ca_cert else None
        return resolve.compile_request(request, bundle)


def make_project_lock(project, entry: Entry, options: builder.BuildOptions) -> ProjectLock:
    """Lock a project: resolve its requirements over the entry image's packages (which must
    be built), and name the images under it."""
    _, _, digest = builder.plan(entry, options)
    repo = builder.repository(entry.name, options)
    image_id = engine.image_id(f"{repo}:{digest}")
    if image_id is None:
        raise BuildFailed(
            f"{repo}:{digest}, the image of entry {entry.name}, is not built (missing or out "
            "of date)",
            f"build it first with the same options: envkit build (in {project.directory})",
        )
    keep = {name: version for name, version in packages_in(image_id, entry.name).items()}
    base = options.base_image or entry.base_image
    indexes, _ = _torch_sources(entry, options)
    return ProjectLock(
        entry=entry.name,
        python=entry.python,
        platform=resolve.PLATFORM,
        as_of=project.as_of,
        requirements=project_requirements(project),
        base_image=base,
        base_image_digest=base_digest(base),
        entry_image=f"{repo}:{digest}",
        entry_image_id=image_id,
        project_image=builder.project_repository(project, options),
        index_url=options.index_url or resolve.DEFAULT_INDEX,
        extra_index_urls=tuple(indexes),
        packages=tuple(resolve_project(project, entry, options, keep)),
    )


def build_project_as_of(
    project, entry: Entry, options: builder.BuildOptions, on_event=None
) -> list[builder.BuildResult]:
    """Build the entry's image, then the project image with the project's packages as the
    index offered them on its `as_of` day: resolved on the host over the entry image's
    packages (as `envkit lock` resolves them), installed exactly, nothing resolved in the
    image. The entry's own packages stay as they are, whatever the date."""
    if not (project.requirements or project.requirements_file):
        return builder.build_project(project, entry, options, on_event)  # nothing to resolve
    base = builder.build_entry(entry, options, on_event)
    if not base.ok:
        return [base]
    keep = packages_in(base.image_id or f"{base.repository}:{base.content_tag}", entry.name)
    have = _canonical(keep)
    pins = tuple(
        f"{p.name}=={p.version}"
        for p in resolve_project(project, entry, options, keep)
        if have.get(p.name) != p.version
    )
    return [base, builder.build_project_image(project, entry, base, options, on_event, pins=pins)]


def _requirement_name(line: str) -> str:
    try:
        return canonicalize_name(Requirement(line).name)
    except InvalidRequirement:
        return line


def input_differences(made: ProjectLock, project) -> list[str]:
    """Lines naming what the project asks for now that it did not when it was locked."""
    lines = []
    if made.entry != project.entry:
        lines.append(f"~ entry {made.entry} -> {project.entry}")
    if made.as_of != project.as_of:
        lines.append(f"~ as_of {made.as_of or 'none'} -> {project.as_of or 'none'}")
    before, after = made.requirements, project_requirements(project)
    if before != after:
        old = {_requirement_name(line): line for line in before}
        new = {_requirement_name(line): line for line in after}
        for name in sorted(set(old) | set(new)):
            if name not in old:
                lines.append(f"+ requirement {new[name]} (not in the lock)")
            elif name not in new:
                lines.append(f"- requirement {old[name]} (locked, now gone)")
            elif old[name] != new[name]:
                lines.append(f"~ requirement {old[name]} -> {new[name]}")
    return lines


def _canonical(packages: dict[str, str]) -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in packages.items()}


def build_project_locked(
    project,
    entry: Entry,
    options: builder.BuildOptions,
    lock_path: Path,
    on_event=None,
) -> list[builder.BuildResult]:
    """Build the entry's image and the project image from the lock (hash-checked, nothing
    resolved); refuse when the project's inputs, the base image or the result differ from it."""
    made = read_project_lock(lock_path)
    accept = f"undo the change, or accept it: envkit lock (in {project.directory})"
    changed = input_differences(made, project)
    if changed:
        try:
            keep = packages_in(engine.image_id(made.entry_image) or made.entry_image, entry.name)
            now = {p.name: p.version for p in resolve_project(project, entry, options, keep)}
            changed += differences(made.versions(), now)
        except EnvkitError:
            pass  # the inputs' own difference is reason enough
        raise CheckFailed(
            f"the project changed since {lock_path.name} was written:\n  " + "\n  ".join(changed),
            accept,
        )
    try:
        lock_file = lock_path.resolve().relative_to(project.directory.resolve()).as_posix()
    except ValueError:
        raise BadInput(
            f"{lock_path} is outside the project folder {project.directory}",
            "keep the lock in the project folder (it is copied into the image)",
        ) from None
    base = options.base_image or entry.base_image
    digest_now = base_digest(base)
    if made.base_image != base or made.base_image_digest != digest_now:
        raise CheckFailed(
            f"the base image differs from {lock_path.name}:\n  ~ base image "
            f"{made.base_image} {made.base_image_digest} -> {base} {digest_now}",
            f"build on the locked base, or re-lock: envkit lock (in {project.directory})",
        )
    results = builder.build_project(project, entry, options, on_event, lock_file=lock_file)
    result = results[-1]
    if len(results) < 2 or not result.ok:
        return results
    refuse_drift(
        result,
        entry.name,
        made.versions(),
        f"the project image differs from {lock_path.name}",
        f"rebuild the entry image the lock was made on, or re-lock: {accept}",
    )
    return results
