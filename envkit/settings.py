"""Remembered build settings: what each one is, where it may be set, and which value wins.

A setting comes from the first of these that sets it: a command-line option, an environment
variable, the project's envkit.yaml (`settings:`), the user's config file (TOML), or envkit's
built-in default. Every effective value remembers where it came from, for `envkit config`.

Pure: reads files and the environment it is given, never the engine.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import BadInput

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.9 and 3.10 only
    import tomli as tomllib

CONFIG_ENV = "ENVKIT_CONFIG"
CONFIG_NAME = "config.toml"
PER_PYTHON = "base_images"
# A Python version as the matrix writes it: 3.8, 3.11.
PYTHON_KEY = re.compile(r"^3\.\d{1,2}$")


@dataclass(frozen=True)
class Spec:
    """One setting: its name (in config.toml and envkit.yaml), env var, option and kind."""

    name: str
    env: str
    option: str | None
    kind: str  # "text", "url", "file", "folder", or "images" (a Python version -> image table)
    help: str
    default: str | None = None


SPECS: tuple[Spec, ...] = (
    Spec(
        "base_image",
        "ENVKIT_BASE_IMAGE",
        "--base-image",
        "text",
        "base image for every entry, instead of the entry's own",
    ),
    Spec(
        PER_PYTHON,
        "ENVKIT_BASE_IMAGES",
        None,
        "images",
        "base image per Python (env: 3.8=REF,3.11=REF); beats base_image set in the same place",
    ),
    Spec(
        "ca_cert",
        "ENVKIT_CA_CERT",
        "--ca-cert",
        "file",
        "extra CA certificates (PEM) for pip/apt behind a TLS proxy",
    ),
    Spec("index_url", "ENVKIT_INDEX_URL", "--index-url", "url", "package index"),
    Spec("extra_index_url", "ENVKIT_EXTRA_INDEX_URL", "--extra-index-url", "url", "extra index"),
    Spec("wheelhouse", "ENVKIT_WHEELHOUSE", "--wheelhouse", "folder", "folder of wheels"),
    Spec("registry", "ENVKIT_REGISTRY", "--registry", "text", "registry host to prefix tags with"),
    Spec(
        "tag_prefix",
        "ENVKIT_TAG_PREFIX",
        "--tag",
        "text",
        "repository prefix of image tags",
        "envkit",
    ),
)
BY_NAME: dict[str, Spec] = {spec.name: spec for spec in SPECS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
PATH_KINDS = ("file", "folder")

# Where a value came from, lowest first: a higher rank wins.
DEFAULT, USER, PROJECT, ENV, COMMAND_LINE = range(5)


@dataclass(frozen=True)
class Value:
    """One effective setting (`base_images.3.8` for a per-Python one) and where it came from."""

    key: str
    value: str | Path
    origin: str
    rank: int

    @property
    def spec(self) -> Spec:
        return BY_NAME[self.key.split(".", 1)[0]]


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The user's config file: $ENVKIT_CONFIG, else $XDG_CONFIG_HOME/envkit/config.toml (by
    default ~/.config/envkit/config.toml)."""
    environ = os.environ if environ is None else environ
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV]).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "envkit" / CONFIG_NAME


def redact(text: str) -> str:
    """A URL with its user:password@ part shown as ***@ (anything else unchanged)."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return text
    if "@" not in parts.netloc:
        return text
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def check_value(name: str, value) -> str | None:
    """Why `value` cannot be setting `name` (None when it can)."""
    spec = BY_NAME[name]
    if spec.kind == "images":
        if not isinstance(value, dict):
            return f'{name} must be a table of Python version -> image, e.g. "3.8" = "REF"'
        for python, image in value.items():
            if isinstance(image, dict):
                return (
                    f'{name}: quote the Python version as a key, e.g. "3.8" = ... (3.8 = ... '
                    "is a dotted key)"
                )
            if not PYTHON_KEY.match(str(python)):
                return f"{name}: {python!r} is not a Python version like 3.8"
            if not isinstance(image, str) or not image.strip():
                return f"{name}.{python} must be an image reference (a non-empty string)"
        return None
    if not isinstance(value, str) or not value.strip():
        return f"{name} must be a non-empty string"
    if spec.kind == "url" and urlsplit(value).scheme not in ("http", "https", "file"):
        return f"{name} {redact(value)!r} is not an http(s) or file URL"
    return None


def _typed(spec: Spec, text: str, folder: Path | None) -> str | Path:
    if spec.kind not in PATH_KINDS:
        return text
    path = Path(text).expanduser()
    return path if path.is_absolute() or folder is None else folder / path


def _flatten(key: str, value, origin: str, rank: int, folder: Path | None) -> list[Value]:
    spec = BY_NAME[key]
    if spec.kind == "images":
        return [Value(f"{key}.{python}", image, origin, rank) for python, image in value.items()]
    return [Value(key, _typed(spec, value, folder), origin, rank)]


# ------------------------------------------------------------------------- the sources


def _toml_line(text: str, key: str, table: str | None = None) -> int:
    """The line that sets `key` (inside `[table]` when given), for FILE:LINE messages; 0 if
    it cannot be found (tomllib keeps no positions)."""
    inside = table is None
    pattern = re.compile(rf"""^\s*["']?{re.escape(key)}["']?\s*[=.]""")
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"^\s*\[\s*([^\]]+?)\s*\]", line)
        if header:
            inside = header.group(1).strip("\"'") == table
            if table is None:
                inside = False
            continue
        if inside and pattern.match(line):
            return number
    return 0


def read_config(path: Path) -> list[Value]:
    """The settings in a user config file (none when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}", f"fix or remove {path}") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> list[Value]:
    """Settings from config.toml text; BadInput names FILE:LINE of the first problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: not valid TOML: {exc}", f"fix the syntax of {path}") from None
    values: list[Value] = []
    for key, value in data.items():
        line = _toml_line(text, key)
        where = f"{path}:{line}" if line else str(path)
        if key not in BY_NAME:
            from .matrix import did_you_mean

            raise BadInput(
                f"{where}: unknown setting {key!r}",
                did_you_mean(key, NAMES) or f"known settings: {', '.join(NAMES)}",
            )
        problem = check_value(key, value)
        if problem:
            raise BadInput(f"{where}: {problem}", f"fix {path}")
        if BY_NAME[key].kind == "images":
            for python, image in value.items():
                found = _toml_line(text, python, key)
                values.append(
                    Value(f"{key}.{python}", image, f"{path}:{found}" if found else where, USER)
                )
        else:
            values += _flatten(key, value, where, USER, path.parent)
    return values


def from_environment(environ: Mapping[str, str]) -> list[Value]:
    """The settings given as ENVKIT_* environment variables (empty ones are unset)."""
    values: list[Value] = []
    for spec in SPECS:
        text = environ.get(spec.env, "").strip()
        if not text:
            continue
        origin = f"env {spec.env}"
        if spec.kind == "images":
            table = {}
            for item in filter(None, (part.strip() for part in text.split(","))):
                python, sep, image = item.partition("=")
                if not sep:
                    raise BadInput(
                        f"{spec.env}: {item!r} is not PYTHON=IMAGE",
                        f"e.g. {spec.env}=3.8=envkit-base:py3.8,3.11=envkit-base:bookworm",
                    )
                table[python.strip()] = image.strip()
            value = table
        else:
            value = text
        problem = check_value(spec.name, value)
        if problem:
            raise BadInput(f"{spec.env}: {problem}", f"fix or unset {spec.env}")
        values += _flatten(spec.name, value, origin, ENV, Path.cwd())
    return values


def from_project(settings: Mapping[str, tuple[str, int]], path: Path) -> list[Value]:
    """The settings of an envkit.yaml, as its parser found them (key -> (value, line))."""
    return [
        Value(
            key,
            _typed(BY_NAME[key.split(".", 1)[0]], value, path.parent),
            f"{path}:{line}",
            PROJECT,
        )
        for key, (value, line) in settings.items()
    ]


def from_command_line(given: Mapping[str, object]) -> list[Value]:
    """The settings given as options (None: not given)."""
    return [
        Value(name, value, f"command line ({BY_NAME[name].option})", COMMAND_LINE)
        for name, value in given.items()
        if name in BY_NAME and value is not None and BY_NAME[name].option
    ]


# ---------------------------------------------------------------------- the resolution


@dataclass(frozen=True)
class Settings:
    """The effective value of every setting that has one, with where it came from."""

    values: dict[str, Value]

    def get(self, key: str):
        """The effective value of a setting (`base_images.3.8` for one Python), or None."""
        found = self.values.get(key)
        return found.value if found else None

    def base_images(self) -> dict[str, str]:
        """Per-Python base images that apply: those set in a place at least as strong as the
        one base_image came from (a `--base-image` on the command line beats the config's
        table; a table in the same file as base_image refines it)."""
        flat = self.values.get("base_image")
        floor = flat.rank if flat and flat.rank > DEFAULT else DEFAULT
        return {
            key.split(".", 1)[1]: str(value.value)
            for key, value in self.values.items()
            if key.startswith(PER_PYTHON + ".") and value.rank >= floor
        }

    def base_image_for(self, python: str) -> Value | None:
        """The base image setting an entry for `python` builds on (None: the entry's own)."""
        if python in self.base_images():
            return self.values[f"{PER_PYTHON}.{python}"]
        return self.values.get("base_image")

    def image_prefix(self) -> str:
        """The prefix of image names: [registry/]tag_prefix."""
        prefix = str(self.get("tag_prefix")).strip("/")
        registry = self.get("registry")
        return f"{str(registry).rstrip('/')}/{prefix}" if registry else prefix

    def missing_paths(self) -> list[str]:
        """A line for each file or folder setting that names nothing there."""
        out = []
        for value in self.values.values():
            kind = value.spec.kind
            path = Path(value.value)
            if kind == "file" and not path.is_file() or kind == "folder" and not path.is_dir():
                what = "file" if kind == "file" else "folder"
                out.append(f"{value.key} {path} (from {value.origin}) is not a {what}")
        return out

    def rows(self) -> list[dict]:
        """Every setting, effective value (credentials hidden) and origin, for `envkit config`."""
        out = []
        for spec in SPECS:
            keys = sorted(
                (k for k in self.values if k.split(".", 1)[0] == spec.name),
                key=lambda k: [int(p) for p in k.split(".")[1:] if p.isdigit()],
            )
            if not keys:
                out.append(_row(spec, spec.name, None, "not set"))
            for key in keys:
                value = self.values[key]
                origin = value.origin
                if spec.kind == "images" and key.split(".", 1)[1] not in self.base_images():
                    origin += " (overridden by base_image)"
                out.append(_row(spec, key, redact(str(value.value)), origin))
        return out


def _row(spec: Spec, key: str, value: str | None, origin: str) -> dict:
    return {"name": key, "value": value, "origin": origin, "env": spec.env, "option": spec.option}


def resolve(*layers: list[Value]) -> Settings:
    """The effective settings from layers of values (any order): per key the highest rank
    wins; built-in defaults fill the rest."""
    chosen: dict[str, Value] = {
        spec.name: Value(spec.name, spec.default, "default", DEFAULT)
        for spec in SPECS
        if spec.default is not None
    }
    for layer in layers:
        for value in layer:
            if value.key not in chosen or value.rank >= chosen[value.key].rank:
                chosen[value.key] = value
    return Settings(chosen)


def gather(
    given: Mapping[str, object],
    project: tuple[Mapping[str, tuple[str, int]], Path] | None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """The effective settings: options given, env vars, the project's settings (its parsed
    `settings` and the envkit.yaml path), the user's config file, defaults."""
    environ = os.environ if environ is None else environ
    return resolve(
        read_config(config_path(environ)),
        from_project(*project) if project else [],
        from_environment(environ),
        from_command_line(given),
    )


# ------------------------------------------------------------------- changing the file


def _toml_string(text: str) -> str:
    # A JSON string is a TOML basic string (same quotes and escapes).
    import json

    return json.dumps(text)


def updated_config(text: str, key: str, value: str | None, path: Path) -> str:
    """config.toml text with one setting (`base_images.3.8` for one Python) set to `value`, or
    removed when `value` is None; every other line, comments included, is kept."""
    name, _, python = key.partition(".")
    if name not in BY_NAME or bool(python) != (BY_NAME[name].kind == "images"):
        from .matrix import did_you_mean

        known = [n if BY_NAME[n].kind != "images" else f"{n}.X.Y" for n in NAMES]
        if name in BY_NAME:  # a per-Python table without its version, or one with
            hint = f"name one Python: {name}.3.8" if not python else f"drop .{python}"
        else:
            hint = did_you_mean(name, NAMES) or f"known settings: {', '.join(known)}"
        raise BadInput(f"unknown setting {key!r}", hint)
    if value is not None:
        problem = check_value(name, {python: value} if python else value)
        if problem:
            raise BadInput(problem, f"give another value for {key}")
    lines = text.splitlines()
    table = name if python else None
    target = _toml_line(text, python or name, table)
    # A bare key for a setting; a quoted one for a Python version (3.8 = would be dotted).
    written_key = _toml_string(python) if python else name
    new_line = None if value is None else f"{written_key} = {_toml_string(value)}"
    if target:
        if new_line is None:
            del lines[target - 1]
        else:
            lines[target - 1] = new_line
    elif new_line is not None:
        headers = [i for i, line in enumerate(lines) if re.match(r"^\s*\[", line)]
        if table is None:
            at = headers[0] if headers else len(lines)
            lines.insert(at, new_line)
        else:
            header = next(
                (i for i in headers if re.match(rf"^\s*\[\s*{table}\s*\]", lines[i])), None
            )
            if header is None:
                lines += ([""] if lines and lines[-1].strip() else []) + [f"[{table}]", new_line]
            else:
                lines.insert(header + 1, new_line)
    out = "\n".join(lines) + "\n"
    found = {v.key: v.value for v in parse_config(out, path)}
    if found.get(key) != (None if value is None else _typed(BY_NAME[name], value, path.parent)):
        raise BadInput(
            f"{path}: cannot change {key} without rewriting lines envkit does not understand",
            f"edit {path} by hand",
        )
    return out


def set_in_config(path: Path, key: str, value: str | None) -> Path:
    """Set (or with None remove) one setting in the user's config file, creating it."""
    from .files import write_file

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = (
            "# envkit settings (envkit config shows the effective ones and where they come from)\n"
        )
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}", f"fix or remove {path}") from None
    new_text = updated_config(text, key, value, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(
            f"cannot make {path.parent}: {exc.strerror or exc}", f"set {CONFIG_ENV}"
        ) from None
    return write_file(path, new_text, fix="set ENVKIT_CONFIG to a file you can write")
