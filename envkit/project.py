"""A project's envkit.yaml: which matrix entry it runs on, plus its own packages and settings."""

from __future__ import annotations

import codecs
import datetime as _dt
import json
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml
from packaging.requirements import InvalidRequirement, Requirement

from . import files
from . import settings as known_settings
from .errors import BadInput, MatrixError
from .matrix import Problem, did_you_mean, node_line

PROJECT_FILE = "envkit.yaml"
CA_SECRET_PATH = "/run/secrets/envkit-ca"
REQUIREMENTS_IN_IMAGE = "/tmp/envkit/requirements.txt"
CONSTRAINTS_IN_IMAGE = "/tmp/envkit/torch-constraints.txt"
LOCK_IN_IMAGE = "/tmp/envkit/envkit.lock.txt"

_KEYS = ("entry", "requirements", "requirements_file", "apt", "env", "as_of", "test", "settings")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# A Debian package name, optionally pinned: libgl1 or libgl1=1.6.0-1.
# Both matched whole (fullmatch): `$` alone would let a trailing newline through.
_APT = re.compile(r"[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+:~-]+)?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Deeper nesting than any envkit.yaml needs; PyYAML's composer recurses once a level.
MAX_DEPTH = 64
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


@dataclass(frozen=True)
class Project:
    """A project environment: a matrix entry plus extra pip and apt packages and env vars."""

    path: str
    entry: str
    requirements: tuple[str, ...] = ()
    requirements_file: str | None = None
    apt: tuple[str, ...] = ()
    env: dict = field(default_factory=dict, hash=False)
    as_of: str | None = None  # YYYY-MM-DD: resolve the project's packages as the index was then
    # Build settings for this project (envkit.settings): key -> (value, line in the file),
    # with per-Python base images as `base_images.3.8`.
    settings: dict = field(default_factory=dict, hash=False)
    # The project's own test command, run in its image by CI (`envkit ci init`).
    test: str | None = None

    @property
    def directory(self) -> Path:
        """The project folder (the build context of the project image)."""
        return Path(self.path).parent

    def to_dict(self) -> dict:
        """Plain data, in the file's key order, leaving out what is empty."""
        data: dict = {"entry": self.entry}
        if self.requirements:
            data["requirements"] = list(self.requirements)
        if self.requirements_file:
            data["requirements_file"] = self.requirements_file
        if self.apt:
            data["apt"] = list(self.apt)
        if self.env:
            data["env"] = dict(self.env)
        if self.as_of:
            data["as_of"] = self.as_of
        if self.test:
            data["test"] = self.test
        if self.settings:
            nested: dict = {}
            for key, (value, _) in self.settings.items():
                name, _, python = key.partition(".")
                if python:
                    nested.setdefault(name, {})[python] = value
                else:
                    nested[name] = value
            data["settings"] = nested
        return data


class _Reader:
    def __init__(self, path: str):
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, where, message: str, fix: str | None = None) -> None:
        line = where if isinstance(where, int) else node_line(where)
        self.problems.append(Problem(self.path, line, message, fix))

    def string(self, key: str, node: yaml.Node) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag.endswith(":null"):
            self.problem(node, f"{key!r} must be a single string", f"write {key}: ...")
            return None
        return node.value

    def strings(self, key: str, node: yaml.Node) -> tuple[str, ...] | None:
        if not isinstance(node, yaml.SequenceNode) or not all(
            isinstance(n, yaml.ScalarNode) for n in node.value
        ):
            self.problem(node, f"{key!r} must be a list of strings", f'write {key}: ["..."]')
            return None
        return tuple(n.value for n in node.value)

    def requirements(self, node: yaml.Node) -> tuple[str, ...]:
        values = self.strings("requirements", node) or ()
        for item, text in zip(node.value, values):
            try:
                Requirement(text)
            except InvalidRequirement as exc:
                self.problem(
                    item,
                    f"requirement {text!r} is not valid: {exc}",
                    "write it as pip does, e.g. tqdm==4.66.1",
                )
        return values

    def requirements_file(self, node: yaml.Node, folder: Path) -> str | None:
        text = self.string("requirements_file", node)
        if text is None:
            return None
        relative = PurePosixPath(text)
        # The file is copied from the build context, which is the project folder.
        if relative.is_absolute() or ".." in relative.parts:
            self.problem(
                node,
                f"requirements_file {text!r} is outside the project folder",
                "give a path relative to the folder that holds envkit.yaml",
            )
            return None
        if not (folder / relative).is_file():
            self.problem(
                node,
                f"requirements_file {text!r} does not exist",
                f"create {folder / relative} or fix the path",
            )
            return text
        # A link is followed on the host but not by the build, whose context is the folder.
        target = os.path.realpath(folder / relative)
        if os.path.commonpath([target, os.path.realpath(folder)]) != os.path.realpath(folder):
            self.problem(
                node,
                f"requirements_file {text!r} is a link to {target}, outside the project folder "
                "(the build sees only the folder)",
                f"copy the file into {folder} instead of linking to it",
            )
            return None
        return text

    def apt(self, node: yaml.Node) -> tuple[str, ...]:
        values = self.strings("apt", node) or ()
        for item, name in zip(node.value, values):
            if not _APT.fullmatch(name):
                self.problem(
                    item,
                    f"apt package {name!r} is not a Debian package name",
                    "write the name as apt-get takes it, e.g. libgl1",
                )
        return values

    def env(self, node: yaml.Node) -> dict:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, "'env' must be a mapping", 'write env: {NAME: "value"}')
            return {}
        out = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else ""
            if not _ENV_NAME.fullmatch(name):
                self.problem(
                    key,
                    f"env name {name!r} is not a variable name",
                    "use letters, digits and '_', not starting with a digit",
                )
                continue
            if not isinstance(value, yaml.ScalarNode) or value.tag.endswith(":null"):
                self.problem(value, f"env {name} must be a single value", f'write {name}: "..."')
                continue
            # The source text, so that 4 and "4" and 1.10 all stay what the user wrote.
            out[name] = value.value
        return out

    def as_of(self, node: yaml.Node) -> str | None:
        text = self.string("as_of", node)
        if text is None:
            return None
        problem = date_problem(text)
        if problem:
            self.problem(node, f"as_of {text!r} {problem}", "write a date: as_of: 2021-03-01")
            return None
        return text

    def known_key(self, node: yaml.Node, known, what: str) -> str | None:
        """The key's text when it is one of `known`; else a problem (with a did-you-mean)."""
        name = node.value if isinstance(node, yaml.ScalarNode) else ""
        if name in known:
            return name
        self.problem(
            node,
            f"unknown {what} {name!r}",
            did_you_mean(name, known) or f"known {what}s: {', '.join(known)}",
        )
        return None

    def settings(self, node: yaml.Node) -> dict:
        names = known_settings.NAMES
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, "'settings' must be a mapping", "write settings: {index_url: ...}")
            return {}
        out: dict = {}
        for key, value in node.value:
            name = self.known_key(key, names, "setting")
            if name is None:
                continue
            if known_settings.BY_NAME[name].kind == "images":
                if not isinstance(value, yaml.MappingNode):
                    self.problem(
                        value, f"{name!r} must be a mapping", f'write {name}: {{"3.8": REF}}'
                    )
                    continue
                pairs = [(k, v) for k, v in value.value]
            else:
                pairs = [(None, value)]
            for python_node, item in pairs:
                python = python_node.value if python_node is not None else None
                if not isinstance(item, yaml.ScalarNode) or item.tag.endswith(":null"):
                    self.problem(
                        item, f"setting {name} must be a single string", f"write {name}: ..."
                    )
                    continue
                problem = known_settings.check_value(
                    name, {python: item.value} if python is not None else item.value
                )
                if problem:
                    self.problem(python_node or item, problem, "see envkit config for the settings")
                    continue
                out[f"{name}.{python}" if python is not None else name] = (
                    item.value,
                    node_line(python_node or key),
                )
        return out

    def read(self, text: str, folder: Path) -> dict:
        try:
            root = _compose(text)
        except _Unreadable as exc:
            self.problem(exc.line, exc.message, exc.fix)
            return {}
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            self.problem(
                mark.line + 1 if mark else 1,
                f"YAML syntax error: {exc.problem or exc}",
                "fix the YAML syntax",
            )
            return {}
        if not isinstance(root, yaml.MappingNode):
            self.problem(
                root if root is not None else 1,
                "envkit.yaml must be a mapping",
                "start with `entry: NAME`",
            )
            return {}
        values: dict = {}
        for key_node, node in root.value:
            key = self.known_key(key_node, _KEYS, "key")
            if key is None:
                continue
            if key in values:
                self.problem(key_node, f"duplicate key {key!r}", "remove one of them")
                continue
            if key == "entry":
                values[key] = self.string(key, node)
            elif key == "requirements":
                values[key] = self.requirements(node)
            elif key == "requirements_file":
                values[key] = self.requirements_file(node, folder)
            elif key == "apt":
                values[key] = self.apt(node)
            elif key == "as_of":
                values[key] = self.as_of(node)
            elif key == "settings":
                values[key] = self.settings(node)
            elif key == "test":
                values[key] = self.string(key, node)
                if values[key] is not None and (not values[key].strip() or "\n" in values[key]):
                    self.problem(node, "'test' must be one command line", "e.g. test: pytest -q")
            else:
                values[key] = self.env(node)
        if "entry" not in values:
            self.problem(
                root,
                "envkit.yaml has no 'entry'",
                "add `entry: NAME` (a name from `envkit list`), or run `envkit init`",
            )
        return values


def date_problem(text: str, today: _dt.date | None = None) -> str | None:
    """Why `text` is not a usable as-of date (YYYY-MM-DD, a real day, not in the future)."""
    if not _DATE.match(text):
        return "is not a date in the form YYYY-MM-DD"
    try:
        day = _dt.date.fromisoformat(text)
    except ValueError as exc:
        return f"is not a date ({exc})"
    if day > (today or _dt.date.today()):
        return "is in the future"
    return None


class _Unreadable(Exception):
    """A file that is no YAML envkit can read, at `line`."""

    def __init__(self, line: int, message: str, fix: str):
        super().__init__(message)
        self.line, self.message, self.fix = line, message, fix


def _compose(text: str) -> yaml.Node | None:
    """The YAML node tree of `text`, after its depth was measured without recursion: a
    character YAML forbids (NUL) or nesting deeper than MAX_DEPTH raise _Unreadable."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise _Unreadable(
                        event.start_mark.line + 1,
                        f"nested more than {MAX_DEPTH} levels deep",
                        "envkit.yaml needs two levels; remove the nesting",
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.reader.ReaderError as exc:
        raise _Unreadable(
            text[: exc.position].count("\n") + 1,
            f"character U+{exc.character:04X} is not allowed in YAML "
            "(NUL and other control characters)",
            'remove it; write such values with YAML escapes in double quotes ("\\t")',
        ) from None


def decode(data: bytes, path: str | Path) -> str:
    """The text of a YAML file envkit reads: UTF-8, with or without a byte order mark;
    anything else is MatrixError naming the line."""
    for bom, encoding in _WIDE_BOMS:
        if data.startswith(bom):
            raise MatrixError(
                [Problem(str(path), 1, f"the file is {encoding}, not UTF-8")],
                "save it as UTF-8",
            )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MatrixError(
            [Problem(str(path), line, f"not UTF-8: byte {data[exc.start]:#04x} cannot be read")],
            "save the file as UTF-8",
        ) from None


def parse_project(text: str, path: str | Path) -> Project:
    """Parse envkit.yaml text; raises MatrixError listing every problem with its line."""
    path = Path(path)
    reader = _Reader(str(path))
    values = reader.read(text, path.parent)
    if reader.problems:
        raise MatrixError(reader.problems, "fix the lines above")
    return Project(
        path=str(path),
        entry=values["entry"],
        requirements=values.get("requirements") or (),
        requirements_file=values.get("requirements_file"),
        apt=values.get("apt") or (),
        env=values.get("env") or {},
        as_of=values.get("as_of"),
        settings=values.get("settings") or {},
        test=values.get("test"),
    )


def load_project(directory: str | Path) -> Project | None:
    """The project in `directory`, or None when it has no envkit.yaml."""
    path = Path(directory) / PROJECT_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MatrixError([Problem(str(path), 0, f"cannot read: {exc.strerror or exc}")]) from None
    return parse_project(decode(data, path), path)


def write_project(directory: str | Path, project: Project, overwrite: bool = False) -> Path:
    """Write envkit.yaml into `directory`; refuses to replace one unless `overwrite`."""
    path = Path(directory) / PROJECT_FILE
    files.refuse_link(path)  # a dangling link does not `exist`, yet writing would create its target
    if path.exists() and not overwrite:
        raise BadInput(f"{path} already exists", "pass --force to replace it")
    text = (
        "# envkit project environment: the matrix entry's image plus these (docs/project.md).\n"
        + yaml.safe_dump(project.to_dict(), sort_keys=False, default_flow_style=False)
    )
    return files.write_file(path, text, fix="run it in a folder you can write")


def _quoted(text: str) -> str:
    # JSON string escapes are what a Dockerfile's double quotes accept; `$` must not expand.
    return json.dumps(text).replace("$", "\\$")


def _apt_step(packages: tuple[str, ...]) -> list[str]:
    names = " ".join(packages)
    return [
        "# The CA bundle is a BuildKit secret: mounted for this step only, never in a layer.",
        "# Packages named without =VERSION follow the Debian release's security updates;",
        "# $ca holds apt options that must split into words.",
        "# hadolint ignore=DL3008,SC2086",
        "RUN --mount=type=secret,id=envkit-ca \\",
        f'    ca=""; if [ -f {CA_SECRET_PATH} ]; then '
        f'ca="-o Acquire::https::CAInfo={CA_SECRET_PATH}"; fi \\',
        " && apt-get $ca update \\",
        " && DEBIAN_FRONTEND=noninteractive apt-get $ca install -y --no-install-recommends "
        f"{names} \\",
        " && rm -rf /var/lib/apt/lists/*",
        "",
    ]


def _pip_run(*commands: str) -> list[str]:
    """A RUN step whose pip trusts the envkit-ca secret when the build has one: the
    `commands` follow with `&&`."""
    return [
        "RUN --mount=type=secret,id=envkit-ca \\",
        f"    if [ -f {CA_SECRET_PATH} ]; then export PIP_CERT={CA_SECRET_PATH}; fi \\",
        " \\\n".join(f" && {command}" for command in commands),
        "",
    ]


def _pip_step(project: Project) -> list[str]:
    lines = []
    if project.requirements_file:
        lines += [f"COPY {project.requirements_file} {REQUIREMENTS_IN_IMAGE}", ""]
    sources = [f"-r {REQUIREMENTS_IN_IMAGE}"] if project.requirements_file else []
    sources += [shlex.quote(r) for r in project.requirements]
    if project.as_of:
        lines.append(
            f"# as_of {project.as_of}: envkit build resolves these on the host as of that day and"
            " installs exactly that set instead."
        )
    lines.append("# The base image's torch family is a constraint, so no requirement can swap it.")
    if any("==" not in r for r in project.requirements):
        lines.append("# hadolint ignore=DL3013")
    return lines + _pip_run(
        f"mkdir -p {PurePosixPath(CONSTRAINTS_IN_IMAGE).parent}",
        "pip freeze | { grep -E '^(torch|torchvision|torchaudio)==' || true; }"
        f" > {CONSTRAINTS_IN_IMAGE}",
        f"pip install --no-cache-dir -c {CONSTRAINTS_IN_IMAGE} {' '.join(sources)}",
    )


def _pinned_step(as_of: str | None, pins: Sequence[str]) -> list[str]:
    when = f"as of {as_of}" if as_of else "on the host"
    if not pins:
        return [f"# The project's packages, resolved {when}: all are in the entry's image.", ""]
    return [
        f"# The project's packages, resolved {when} over this image's (envkit/resolve.py):",
        "# exactly these, nothing resolved here (--no-deps).",
        *_pip_run(
            "pip install --no-cache-dir --no-deps \\\n"
            + " \\\n".join(f"        {shlex.quote(pin)}" for pin in pins)
        ),
    ]


def _locked_step(lock_file: str) -> list[str]:
    return [
        f"COPY {lock_file} {LOCK_IN_IMAGE}",
        "",
        "# Exactly the lock: every file hash-checked, nothing resolved (--no-deps).",
        *_pip_run(f"pip install --no-cache-dir --no-deps --require-hashes -r {LOCK_IN_IMAGE}"),
    ]


def render_project_dockerfile(
    project: Project,
    base_ref: str,
    lock_file: str | None = None,
    pins: Sequence[str] | None = None,
) -> str:
    """The Dockerfile of a project image: FROM the entry's built image, plus the project's.
    With `lock_file` (a path in the project folder) its packages come from that lock, with
    `pins` (exact `name==version` lines, resolved on the host as of `as_of`) exactly those:
    either way nothing is resolved in the image."""
    lines = [
        f"# envkit project image: entry {project.entry} plus the packages of {PROJECT_FILE}.",
        "# Build with BuildKit from the project folder; --ca-cert passes the envkit-ca secret.",
        f"FROM {base_ref}",
        "",
        "ARG ENVKIT_UID=1000",
        "# The base image ends as its non-root user; packages install as root (0), then back.",
        "USER 0",
        'SHELL ["/bin/bash", "-o", "pipefail", "-c"]',
        "",
    ]
    if project.apt:
        lines += _apt_step(project.apt)
    if lock_file:
        lines += _locked_step(lock_file)
    elif pins is not None:
        lines += _pinned_step(project.as_of, pins)
    elif project.requirements or project.requirements_file:
        lines += _pip_step(project)
    if project.env:
        # Last, so that changing a variable does not reinstall packages.
        pairs = [f"{name}={_quoted(value)}" for name, value in sorted(project.env.items())]
        lines += ["ENV " + " \\\n    ".join(pairs), ""]
    lines += ["USER ${ENVKIT_UID}", ""]
    return "\n".join(lines)
