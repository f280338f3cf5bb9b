"""envkit build: render, hash, skip when up to date, otherwise build through BuildKit."""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import re
import shlex
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import __version__, credentials, dockerfile, engine, files
from .errors import BadInput, BuildFailed, EngineUnavailable, EnvkitError
from .matrix import Entry

CA_SECRET = "envkit-ca"
# Index settings that carry credentials: shell assignments the pip step sources (never build args).
INDEX_SECRET = "envkit-index"


@dataclass(frozen=True)
class BuildOptions:
    """Everything a user can set about how images are built."""

    base_image: str | None = None
    # Base images per Python ((version, image) pairs, from the settings): for an entry whose
    # Python has one, it replaces base_image.
    base_images: tuple[tuple[str, str], ...] = ()
    index_url: str | None = None
    extra_index_url: str | None = None
    wheelhouse: Path | None = None
    offline: bool = False
    ca_cert: Path | None = None
    tag_prefix: str = "envkit"
    registry: str | None = None
    push: bool = False
    force: bool = False
    no_cache: bool = False
    pull: bool = False
    log_dir: Path | None = None


@dataclass
class BuildResult:
    """The outcome for one entry: built, up-to-date, failed or interrupted."""

    name: str
    status: str
    repository: str
    content_tag: str
    seconds: float = 0.0
    image_id: str | None = None
    log_path: str | None = None
    failing_step: str | None = None
    tail: list[str] = field(default_factory=list)
    error: str | None = None
    fix: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("built", "up-to-date")

    @property
    def tags(self) -> list[str]:
        return [f"{self.repository}:latest", f"{self.repository}:{self.content_tag}"]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "ok": self.ok,
            "tags": self.tags,
            "image_id": self.image_id,
            "seconds": round(self.seconds, 3),
            "log": self.log_path,
            "failing_step": self.failing_step,
            "tail": self.tail,
            "error": self.error,
            "fix": self.fix,
        }


def cache_folder() -> Path:
    """envkit's own cache: $XDG_CACHE_HOME/envkit, else ~/.cache/envkit."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "envkit"


def log_dir(options: BuildOptions) -> Path:
    """Where full build logs go."""
    return options.log_dir or cache_folder() / "logs"


def _log_folder(options: BuildOptions) -> Path:
    """The log folder, made readable by its owner alone (logs name indexes and hosts); a folder
    the user chose with --log-dir keeps the permissions it has."""
    folder = files.private_folder(log_dir(options), "--log-dir")
    if not options.log_dir:
        with contextlib.suppress(OSError):  # made 0755 by an earlier envkit
            folder.chmod(0o700)
    return folder


def options_for(entry: Entry, options: BuildOptions) -> BuildOptions:
    """The options for one entry: base_image is the image set for the entry's Python, if any."""
    per_python = dict(options.base_images).get(entry.python)
    return replace(options, base_image=per_python) if per_python else options


def repository(name: str, options: BuildOptions) -> str:
    """Image repository for an entry: [registry/]prefix/name."""
    repo = f"{options.tag_prefix.strip('/')}/{name}"
    return f"{options.registry.rstrip('/')}/{repo}" if options.registry else repo


def build_args(entry: Entry, options: BuildOptions) -> dict[str, str]:
    """The --build-arg values for an entry (only those that differ from the rendered defaults)."""
    args = {}
    if options.base_image:
        args["BASE_IMAGE"] = options.base_image
    # An index URL with credentials goes through the INDEX_SECRET instead (index_settings):
    # build args are kept in the image's history and config.
    if options.index_url and not credentials.has_credentials(options.index_url):
        args["ENVKIT_INDEX_URL"] = options.index_url
    if options.extra_index_url and not credentials.has_credentials(options.extra_index_url):
        args["ENVKIT_EXTRA_INDEX_URL"] = options.extra_index_url
    if options.wheelhouse:
        args["ENVKIT_FIND_LINKS"] = "/wheelhouse"
    if options.offline:
        if not options.wheelhouse:
            raise BadInput(
                "--offline needs --wheelhouse DIR",
                "give the folder that holds every wheel the entry needs",
            )
        args["ENVKIT_OFFLINE"] = "1"
    return args


def index_settings(entry: Entry, options: BuildOptions) -> str | None:
    """The index settings that carry credentials, as the shell assignments the pip step
    sources from the INDEX_SECRET (the same variables as the build args), or None."""
    values = {}
    if credentials.has_credentials(options.index_url):
        values["ENVKIT_INDEX_URL"] = options.index_url
    if credentials.has_credentials(options.extra_index_url):
        values["ENVKIT_EXTRA_INDEX_URL"] = options.extra_index_url
    if credentials.has_credentials(entry.index_url):
        values["ENVKIT_TORCH_SOURCE"] = dockerfile.torch_source(entry)
    if not values:
        return None
    return "".join(f"{key}={shlex.quote(value)}\n" for key, value in sorted(values.items()))


def renderable(entry: Entry) -> Entry:
    """The entry as its Dockerfile is rendered for a build: an index URL without its
    credentials (index_settings carries them)."""
    if not credentials.has_credentials(entry.index_url):
        return entry
    return replace(entry, index_url=credentials.without_credentials(entry.index_url))


def _wheelhouse_listing(folder: Path) -> list[list]:
    if not folder.is_dir():
        raise BadInput(f"wheelhouse {folder} is not a folder", "pass a folder of .whl files")
    return sorted([p.name, p.stat().st_size] for p in folder.iterdir() if p.is_file())


def content_hash(
    entry: Entry, text: str, args: dict[str, str], options: BuildOptions, base_id: str | None
) -> str:
    """A short hash of everything that determines the image."""
    material = {
        "dockerfile": text,
        "build_args": args,
        "base_image": options.base_image or entry.base_image,
        "base_image_id": base_id,
        "wheelhouse": _wheelhouse_listing(options.wheelhouse) if options.wheelhouse else None,
    }
    settings = index_settings(entry, options)
    if settings:  # which indexes, not which token: a new token for the same index is no rebuild
        material["index_settings"] = credentials.redact(settings)
    blob = json.dumps(material, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def labels(entry: Entry, digest: str, base_name: str | None = None) -> dict[str, str]:
    """OCI labels plus envkit's own (the Dockerfile carries the entry facts too). `base_name`
    is the image built FROM when it is not the entry's own base (--base-image). Nothing in them
    depends on the time (no `created`: the image config has the build time), so a forced
    rebuild of unchanged inputs from the layer cache is the same image, not a new one."""
    return {
        "org.opencontainers.image.title": f"envkit {entry.name}",
        "org.opencontainers.image.description": (
            f"torch {entry.torch}, torchvision {entry.torchvision or 'none'}, "
            f"{entry.variant}, Python {entry.python}"
        ),
        "org.opencontainers.image.version": entry.torch,
        "org.opencontainers.image.base.name": base_name or entry.base_image,
        "org.opencontainers.image.vendor": "envkit",
        "io.envkit.entry": entry.name,
        "io.envkit.torch": entry.torch,
        "io.envkit.torchvision": entry.torchvision or "none",
        "io.envkit.torchaudio": entry.torchaudio or "none",
        "io.envkit.cuda": entry.cuda or "none",
        "io.envkit.cudnn": entry.cudnn or "none",
        "io.envkit.python": entry.python,
        "io.envkit.flavour": entry.flavour,
        "io.envkit.content-hash": digest,
        "io.envkit.version": __version__,
        **dockerfile.gpu_requirements(entry),
    }


def _read_ca_cert(path: Path) -> str:
    if not path.is_file():
        raise BadInput(f"--ca-cert {path} is not a file", "pass a PEM file of CA certificates")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise BadInput(f"cannot read --ca-cert {path}: {exc}", "pass a readable PEM file") from None
    if "BEGIN CERTIFICATE" not in text:
        raise BadInput(f"--ca-cert {path} holds no PEM certificate", "pass a PEM file")
    return text


# Docker's grammar for references (distribution/reference), matched whole (fullmatch: `$`
# alone would let a trailing newline through): the path part, a registry host[:port], a tag
# and a digest.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
_REPOSITORY_PATH = re.compile(_PATH)
_REGISTRY = re.compile(rf"{_HOST}(?::\d+)?", re.ASCII)
_IMAGE_REFERENCE = re.compile(
    rf"(?:{_HOST}(?::\d+)?/)?{_PATH}(?::\w[\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    re.ASCII,
)


def check_tag_prefix(tag_prefix: str) -> None:
    """BadInput unless --tag PREFIX is a repository name Docker accepts (every command that
    takes --tag asks this)."""
    if not _REPOSITORY_PATH.fullmatch(tag_prefix):
        raise BadInput(
            f"--tag {tag_prefix!r} is not a repository name",
            "lower-case letters, digits and . _ - separated by /, e.g. --tag myteam/envkit",
        )


def check_options(options: BuildOptions) -> None:
    """Refuse unusable options before the engine is asked anything (BadInput, exit 2)."""
    check_tag_prefix(options.tag_prefix)
    if options.registry is not None and not _REGISTRY.fullmatch(options.registry):
        raise BadInput(
            f"--registry {options.registry!r} is not a registry host",
            "give host[:port] with no scheme or path, e.g. --registry ghcr.io",
        )
    if options.base_image is not None and not _IMAGE_REFERENCE.fullmatch(options.base_image):
        raise BadInput(
            f"--base-image {options.base_image!r} is not an image reference",
            "give [registry/]name[:tag][@sha256:digest] as docker pull takes it, e.g. "
            "--base-image python:3.11-slim-bookworm",
        )
    if options.offline and not options.wheelhouse:
        raise BadInput(
            "--offline needs --wheelhouse DIR",
            "give the folder that holds every wheel the entry needs",
        )
    if options.wheelhouse:
        listing = _wheelhouse_listing(options.wheelhouse)
        if options.offline and not any(name.endswith(".whl") for name, _ in listing):
            raise BadInput(
                f"--offline: the wheelhouse {options.wheelhouse} holds no .whl files",
                "fill it first, e.g. pip download -d DIR torch==X torchvision==Y",
            )
    if options.ca_cert:
        _read_ca_cert(options.ca_cert)


def ca_bundle(extra: Path, into: Path) -> Path:
    """The public CA bundle plus the user's extra certificates, as one secret file."""
    text = _read_ca_cert(extra)
    try:
        import certifi  # comes with the docker SDK's requests

        public = Path(certifi.where()).read_text(encoding="utf-8")
    except (ImportError, OSError):
        public = ""
    bundle = into / "ca.pem"
    fd = os.open(bundle, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(public.rstrip("\n") + "\n" + text)
    return bundle


def plan(entry: Entry, options: BuildOptions) -> tuple[str, dict[str, str], str]:
    """Dockerfile text, build args and content tag for an entry (touches the engine only to
    read the base image's id)."""
    options = options_for(entry, options)
    text = dockerfile.render(renderable(entry))
    args = build_args(entry, options)
    base_id = engine.image_id(options.base_image or entry.base_image)
    return text, args, content_hash(entry, text, args, options, base_id)


def build_entry(
    entry: Entry,
    options: BuildOptions,
    on_event: Callable[[str, engine.BuildEvent], None] | None = None,
) -> BuildResult:
    """Build one entry (or find it up to date) and return the outcome as a value."""
    options = options_for(entry, options)
    text, args, digest = plan(entry, options)
    return _build_or_reuse(
        entry.name,
        repository(entry.name, options),
        digest,
        text,
        args,
        labels(entry, digest, options.base_image),
        options.wheelhouse,
        options,
        on_event,
        index_secret=index_settings(entry, options),
    )


def _build_or_reuse(
    name: str,
    repo: str,
    digest: str,
    text: str,
    args: dict[str, str],
    image_labels: dict[str, str],
    context_dir: Path | None,
    options: BuildOptions,
    on_event: Callable[[str, engine.BuildEvent], None] | None,
    unpullable_fix: str = (
        "the base image {base} could not be pulled (no registry reachable, a deleted tag, or "
        "no access): make a local one with the entry's Python and remember it, "
        "`envkit base PYTHON` (see `envkit base --help`), or pass --base-image with a "
        "mirrored image"
    ),
    index_secret: str | None = None,
) -> BuildResult:
    """The content-tag check, then a BuildKit build of `text` when the tag is missing.
    `unpullable_fix` is the advice when the FROM image cannot be resolved ({base} names it);
    `index_secret` is passed as the INDEX_SECRET (see index_settings)."""
    started = time.monotonic()
    result = BuildResult(name, "failed", repo, digest)
    existing = engine.image_id(f"{repo}:{digest}")
    if existing and not (options.force or options.no_cache):  # --no-cache: built anew, as asked
        if engine.image_id(f"{repo}:latest") != existing:
            engine.tag_image(existing, repo, "latest")
        result.status, result.image_id = "up-to-date", existing
        push_result(result, options)
        result.seconds = time.monotonic() - started
        return result

    latest = engine.image_id(f"{repo}:latest")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_path = (
        _log_folder(options) / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}-{stamp}-{os.getpid()}.log"
    )
    result.log_path = str(log_path)
    with tempfile.TemporaryDirectory(prefix="envkit-build-") as tmp:
        tmp_path = Path(tmp)
        dockerfile_path = files.write_file(tmp_path / "Dockerfile", text)
        context = tmp_path / "context"
        context.mkdir()
        if context_dir:
            context = context_dir.resolve()
        secrets = {CA_SECRET: ca_bundle(options.ca_cert, tmp_path)} if options.ca_cert else {}
        if index_secret:
            secrets[INDEX_SECRET] = files.write_file(
                tmp_path / "index.sh", index_secret, mode=0o600
            )
        outcome = engine.build(
            context=context,
            dockerfile=dockerfile_path,
            tags=result.tags,
            build_args=args,
            labels=image_labels,
            log_path=log_path,
            secrets=secrets,
            no_cache=options.no_cache,
            pull=options.pull,
            on_event=(lambda event: on_event(name, event)) if on_event else None,
        )
    result.seconds = time.monotonic() - started
    if outcome.interrupted is not None:
        result.status, result.error = "interrupted", "build interrupted"
        raise outcome.interrupted
    if not outcome.ok:
        result.failing_step, result.tail = outcome.failing_step, outcome.tail
        result.error = f"build of {name} failed" + (
            f" at {outcome.failing_step}" if outcome.failing_step else ""
        )
        base = unpullable_base(outcome.tail or [])
        pip = None if base else pip_failure(outcome.tail or [])
        if pip:
            result.error += f": {pip.cause}"
        result.fix = (
            f"{unpullable_fix.format(base=base)}; full log: {log_path}"
            if base
            else f"{pip.fix}; full log: {log_path}"
            if pip
            else f"read the full log: {log_path}"
        )
        return result
    result.status, result.image_id = "built", outcome.image_id
    for replaced in {existing, latest} - {None, outcome.image_id}:
        engine.remove_if_unused(replaced)  # a rebuild leaves no untagged image behind
    push_result(result, options)
    return result


_METADATA_STEP = re.compile(r"^#(\d+) \[internal\] load metadata for (\S+)$")


def unpullable_base(log_lines: list[str]) -> str | None:
    """The image a BuildKit log failed to resolve for FROM, or None: the step
    `#N [internal] load metadata for IMAGE` followed by `#N ERROR: ...`."""
    images = {}
    for line in log_lines:
        step = _METADATA_STEP.match(line)
        if step:
            images[step.group(1)] = step.group(2)
        elif line.startswith("#") and " ERROR: " in line:
            vertex = line[1:].split(" ", 1)[0]
            if vertex in images:
                return images[vertex]
    return None


@dataclass(frozen=True)
class PipFailure:
    """Why a pip step failed, read from its own output, and what to do about it."""

    cause: str
    fix: str


_PIP_NOT_FOUND = re.compile(r"No matching distribution found for (\S+)")
_PIP_WRONG_PYTHON = re.compile(r"requires a different Python: \S+ not in '[^']*'")
_PIP_OSERROR = "Could not install packages due to an OSError: "
_TLS_FAILED = ("CERTIFICATE_VERIFY_FAILED", "SSLError", "ssl certificate")
_UNREACHABLE = (
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Connection refused",
    "Network is unreachable",
    "ProxyError",
    "Read timed out",
    "connection broken by",
    "Max retries exceeded",
)
_OTHER_PYTHON = (
    "the image's Python is not one these packages support: build on a base with the entry's "
    "Python (--base-image; `envkit show NAME` names it), or pick an entry for another Python"
)


def pip_failure(lines: list[str]) -> PipFailure | None:
    """What a failed step's output says went wrong in pip (a wrong Python, an unreachable or
    untrusted index, no matching version, a full disk), or None when it names no such cause."""
    text = "\n".join(lines)
    if any(word in text for word in _TLS_FAILED):
        return PipFailure(
            "pip could not verify the index's TLS certificate",
            "behind a TLS-inspecting proxy pass its CA bundle with --ca-cert FILE (PEM); or "
            "build from a folder of wheels: --wheelhouse DIR --offline",
        )
    if any(word in text for word in _UNREACHABLE):
        return PipFailure(
            "pip could not reach the package index",
            "check the network and the index (--index-url, --extra-index-url or the matrix "
            "index_url) from this host, e.g. `pip download --no-deps PACKAGE`; or build from "
            "a folder of wheels: --wheelhouse DIR --offline",
        )
    refused = _PIP_WRONG_PYTHON.search(text)
    if refused:
        return PipFailure(f"a package {refused.group()}", _OTHER_PYTHON)
    if _PIP_OSERROR in text:
        line = next(line for line in lines if _PIP_OSERROR in line)
        if "No space left on device" in line:
            return PipFailure(
                "no space left on the engine's disk",
                "free space where Docker keeps images and the build cache (`docker system df`, "
                "`docker builder prune`), then build again",
            )
        return PipFailure(
            line.split(_PIP_OSERROR, 1)[1],
            "pip could not write or fetch a file: fix what the line above names",
        )
    missing = _PIP_NOT_FOUND.search(text)
    if missing:
        requirement = missing.group(1)
        if "(from versions: none)" in text and "Requires-Python" in text:
            return PipFailure(
                f"{requirement} has no release for the image's Python (each needs another: "
                "'Requires-Python' above)",
                _OTHER_PYTHON,
            )
        return PipFailure(
            f"no version of {requirement} on the index matches",
            "compare the pin with the versions pip listed above (`pip index versions NAME`); "
            "wheels that live on another index need --index-url/--extra-index-url or "
            "--wheelhouse DIR",
        )
    return None


def push_result(result: BuildResult, options: BuildOptions) -> None:
    """With --push, send both tags to the registry (an up-to-date image too)."""
    if options.push:
        for tag in ("latest", result.content_tag):
            engine.push_image(result.repository, tag)


def project_repository(project, options: BuildOptions) -> str:
    """Image repository of a project: [registry/]prefix-project/<folder name>-<path hash>, so
    two projects in folders of the same name (src, repo) never share an image."""
    where = project.directory.resolve()
    # Docker allows separators only between letters and digits: "-" joins every other run.
    folder = re.sub(r"[^a-z0-9]+", "-", where.name.lower()).strip("-") or "project"
    path_hash = hashlib.sha256(str(where).encode()).hexdigest()[:8]
    return repository(
        f"{folder}-{path_hash}", replace(options, tag_prefix=f"{options.tag_prefix}-project")
    )


def _requirements_text(project) -> str:
    if not project.requirements_file:
        return ""
    return (project.directory / project.requirements_file).read_text(
        encoding="utf-8", errors="replace"
    )


def project_stamp(project) -> str:
    """A short hash of what the project adds to its entry (entry name, packages, requirements
    file, environment), as rendered: a comment in envkit.yaml does not change it."""
    from .project import render_project_dockerfile

    material = json.dumps(
        {
            "dockerfile": render_project_dockerfile(project, f"entry {project.entry}"),
            "requirements_file": _requirements_text(project),
        },
        sort_keys=True,
    )
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def current_project_image(project, options: BuildOptions) -> str:
    """`repository:latest` of the project image, refusing one that predates its envkit.yaml."""
    from .project import PROJECT_FILE

    ref = f"{project_repository(project, options)}:latest"
    built = engine.image_labels(ref)
    rebuild = f"build it: envkit build (in {project.directory})"
    if built is None:
        raise BuildFailed(f"no image {ref} for the project in {project.directory}", rebuild)
    if built.get("io.envkit.project-stamp") != project_stamp(project):
        was = built.get("io.envkit.entry")
        what = (
            f"{PROJECT_FILE} now names entry {project.entry}, the image has {was}"
            if was != project.entry
            else f"{PROJECT_FILE} or its requirements file changed since"
        )
        raise BuildFailed(f"{ref} is out of date: {what}", "re" + rebuild)
    return ref


def build_project(
    project,
    entry: Entry,
    options: BuildOptions,
    on_event: Callable[[str, engine.BuildEvent], None] | None = None,
    lock_file: str | None = None,
) -> list[BuildResult]:
    """Build the entry's image, then the project image on top of it (each cached); with
    `lock_file` (relative to the project folder) its packages are installed from that lock."""
    base = build_entry(entry, options, on_event)
    if not base.ok:
        return [base]
    return [base, build_project_image(project, entry, base, options, on_event, lock_file=lock_file)]


def build_project_image(
    project,
    entry: Entry,
    base: BuildResult,
    options: BuildOptions,
    on_event: Callable[[str, engine.BuildEvent], None] | None = None,
    *,
    lock_file: str | None = None,
    pins: tuple[str, ...] | None = None,
) -> BuildResult:
    """The project image on the entry's built image `base`: its packages resolved by pip in
    the image, or installed from `lock_file`, or exactly the `pins` (name==version lines)."""
    from .project import render_project_dockerfile

    text = render_project_dockerfile(
        project, f"{base.repository}:{base.content_tag}", lock_file, pins
    )
    stamp = project_stamp(project)  # covers the requirements file too
    locked = (project.directory / lock_file).read_text(encoding="utf-8") if lock_file else None
    material = json.dumps(
        # The stamp is also a label that `envkit run .` checks: hashed in, so it is never stale.
        {"dockerfile": text, "base": base.image_id, "stamp": stamp}
        | ({"lock": locked} if locked is not None else {}),
        sort_keys=True,
    )
    digest = hashlib.sha256(material.encode()).hexdigest()[:12]
    repo = project_repository(project, options)
    project_labels = {
        **labels(entry, base.content_tag, f"{base.repository}:{base.content_tag}"),
        "io.envkit.project": str(project.directory.resolve()),
        "io.envkit.project-stamp": stamp,
        "io.envkit.content-hash": digest,
    }
    # Only the project's options that make sense for it: no base override, no wheelhouse.
    own = replace(options, base_image=None, base_images=(), wheelhouse=None, offline=False)
    return _build_or_reuse(
        f"project {repo}",
        repo,
        digest,
        text,
        {},
        project_labels,
        project.directory,
        own,
        on_event,
        unpullable_fix=(
            "the entry's image {base}, built just before, is not visible to the builder (a "
            "buildx builder with the docker-container driver cannot see local images): "
            "`docker buildx use default`, or point ENVKIT_DOCKER at a client whose builder can"
        ),
    )


def build_many(
    entries: list[Entry],
    options: BuildOptions,
    jobs: int = 1,
    on_event: Callable[[str, engine.BuildEvent], None] | None = None,
    on_result: Callable[[BuildResult], None] | None = None,
) -> list[BuildResult]:
    """Build entries, `jobs` at a time; one failing entry does not stop the others."""
    check_options(options)
    engine.allow_builds()
    lock = threading.Lock()

    def one(entry: Entry) -> BuildResult:
        try:
            result = build_entry(entry, options, on_event)
        except EngineUnavailable:
            raise  # no other entry can build either
        except EnvkitError as exc:
            result = BuildResult(
                entry.name,
                "failed",
                repository(entry.name, options),
                "",
                error=exc.message,
                fix=exc.fix,
            )
        if on_result:
            with lock:
                on_result(result)
        return result

    if jobs <= 1 or len(entries) <= 1:
        return [one(entry) for entry in entries]
    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        return list(pool.map(one, entries))
    except KeyboardInterrupt:
        engine.cancel_builds()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# ------------------------------------------------------------------ what `envkit build` builds


def project_image(folder: Path, tag_prefix: str) -> tuple[str, str]:
    """The current image of the project in `folder` and its entry's name (`envkit run .`)."""
    from .project import PROJECT_FILE, load_project

    project = load_project(folder)
    if project is None:
        raise BadInput(
            f"no {PROJECT_FILE} in {folder}",
            "write one with `envkit init`, or name a matrix entry",
        )
    return current_project_image(project, BuildOptions(tag_prefix=tag_prefix)), project.entry


def requested_project(names, all_entries: bool, filtered: bool, folder: Path):
    """The project in `folder` when neither names, --all nor a filter say what to build; None
    when they do. Names together with --all, or nothing to build at all, is bad input."""
    from .project import PROJECT_FILE, load_project

    if names and all_entries:
        raise BadInput(
            "--all builds every entry (the filters narrow it); names build only those",
            "drop --all or the names: envkit build NAME..., or envkit build --all [--torch ...]",
        )
    if names or all_entries or filtered:
        return None
    project = load_project(folder)
    if project is None:
        raise BadInput(
            f"name an entry to build, pass --all / a filter, or run in a folder with "
            f"{PROJECT_FILE}",
            "e.g. envkit build torch1.4-cuda10; see envkit list, or envkit init",
        )
    return project


def build_requested(
    entries: list[Entry],
    options: BuildOptions,
    *,
    project=None,
    lock_path: Path | None = None,
    jobs: int = 1,
    on_event: Callable[[str, engine.BuildEvent], None] | None = None,
    on_result: Callable[[BuildResult], None] | None = None,
) -> list[BuildResult]:
    """Build what `envkit build` was asked for: with the lock at `lock_path` (--locked) the
    project, or the one entry, checked against it; else the project on its entry (with an
    `as_of`, its packages resolved as of that day), else every entry, `jobs` at a time."""
    if lock_path is not None and project is not None:
        from . import lock

        results = lock.build_project_locked(project, entries[0], options, lock_path, on_event)
    elif lock_path is not None:
        from . import lock

        if len(entries) != 1:
            raise BadInput("--locked builds exactly one entry", "name the locked entry")
        results = [lock.build_locked(entries[0], options, lock.read_lock(lock_path), on_event)]
    elif project is not None and project.as_of:
        from . import lock

        results = lock.build_project_as_of(project, entries[0], options, on_event)
    elif project is not None:
        results = build_project(project, entries[0], options, on_event)
    else:
        return build_many(entries, options, jobs, on_event, on_result)
    for result in results:
        if on_result:
            on_result(result)
    return results
