"""A project's envkit.yaml: which matrix entry it runs on, plus its own packages and settings."""

from __future__ import annotations

import codecs
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml
from packaging.requirements import InvalidRequirement, Requirement

from . import files
from .errors import BadInput, MatrixError
from .matrix import Problem, did_you_mean, node_line

PROJECT_FILE = "envkit.yaml"
CA_SECRET_PATH = "/run/secrets/envkit-ca"
REQUIREMENTS_IN_IMAGE = "/tmp/envkit/requirements.txt"
CONSTRAINTS_IN_IMAGE = "/tmp/envkit/torch-constraints.txt"

_KEYS = ("entry", "requirements", "requirements_file", "apt", "env")
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
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else ""
            if key not in _KEYS:
                self.problem(
                    key_node,
                    f"unknown key {key!r}",
                    did_you_mean(key, _KEYS) or f"known keys: {', '.join(_KEYS)}",
                )
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
            else:
                values[key] = self.env(node)
        if "entry" not in values:
            self.problem(
                root,
                "envkit.yaml has no 'entry'",
                "add `entry: NAME` (a name from `envkit list`), or run `envkit init`",
            )
        return values


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


def _pip_step(project: Project) -> list[str]:
    lines = []
    if project.requirements_file:
        lines += [f"COPY {project.requirements_file} {REQUIREMENTS_IN_IMAGE}", ""]
    sources = [f"-r {REQUIREMENTS_IN_IMAGE}"] if project.requirements_file else []
    sources += [shlex.quote(r) for r in project.requirements]
    lines.append("# The base image's torch family is a constraint, so no requirement can swap it.")
    if any("==" not in r for r in project.requirements):
        lines.append("# hadolint ignore=DL3013")
    lines += [
        "RUN --mount=type=secret,id=envkit-ca \\",
        f"    if [ -f {CA_SECRET_PATH} ]; then export PIP_CERT={CA_SECRET_PATH}; fi \\",
        f" && mkdir -p {PurePosixPath(CONSTRAINTS_IN_IMAGE).parent} \\",
        " && pip freeze | { grep -E '^(torch|torchvision|torchaudio)==' || true; }"
        f" > {CONSTRAINTS_IN_IMAGE} \\",
        f" && pip install --no-cache-dir -c {CONSTRAINTS_IN_IMAGE} {' '.join(sources)}",
        "",
    ]
    return lines


def render_project_dockerfile(project: Project, base_ref: str) -> str:
    """The Dockerfile of a project image: FROM the entry's built image, plus the project's."""
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
    if project.requirements or project.requirements_file:
        lines += _pip_step(project)
    if project.env:
        # Last, so that changing a variable does not reinstall packages.
        pairs = [f"{name}={_quoted(value)}" for name, value in sorted(project.env.items())]
        lines += ["ENV " + " \\\n    ".join(pairs), ""]
    lines += ["USER ${ENVKIT_UID}", ""]
    return "\n".join(lines)
