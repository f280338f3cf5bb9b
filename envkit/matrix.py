"""Load and validate matrix.yaml into frozen Entry values, keeping each value's line number."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import BadInput, MatrixError, UnknownEntry

FLAVOURS = ("runtime", "devel")
PYTORCH_INDEX = "https://download.pytorch.org/whl"

_VERSION = re.compile(r"^\d+(\.\d+){1,2}$")
_PYTHON = re.compile(r"^3\.\d+$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a matrix file, located at FILE:LINE."""

    file: str
    line: int
    message: str
    fix: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}: {self.message}"
        return f"{text} — {self.fix}" if self.fix else text


@dataclass(frozen=True)
class Entry:
    """One cell of the matrix: a named, buildable PyTorch stack."""

    name: str
    torch: str
    torchvision: str | None
    torchaudio: str | None
    cuda: str | None
    cudnn: str | None
    python: str
    flavour: str
    base_image: str
    index_url: str | None
    aliases: tuple[str, ...] = ()
    pins: tuple[str, ...] = ()
    dockerfile: str = "runtime"
    description: str = ""
    line: int = 0
    lines: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def variant(self) -> str:
        """The wheel variant tag: 'cpu' or 'cuXYZ'."""
        return "cpu" if self.cuda is None else "cu" + self.cuda.replace(".", "")

    def line_of(self, key: str) -> int:
        """Line of `key` in the matrix file (the entry's own line when the key is absent)."""
        return self.lines.get(key, self.line)

    def to_dict(self) -> dict:
        """Plain data for --json output."""
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "torch": self.torch,
            "torchvision": self.torchvision,
            "torchaudio": self.torchaudio,
            "cuda": self.cuda,
            "cudnn": self.cudnn,
            "python": self.python,
            "flavour": self.flavour,
            "base_image": self.base_image,
            "index_url": self.index_url,
            "pins": list(self.pins),
            "dockerfile": self.dockerfile,
            "variant": self.variant,
            "description": self.description,
        }


@dataclass(frozen=True)
class Matrix:
    """All entries of one matrix file, with name and alias lookup."""

    path: str
    entries: tuple[Entry, ...]

    def suggest(self, wanted: str, n: int = 3) -> list[str]:
        """Entry names close to `wanted`: the same torch release first, each entry once."""
        owner = {alias.lower(): e.name for e in self.entries for alias in (e.name, *e.aliases)}
        ranked = difflib.get_close_matches(wanted, list(owner), n=len(owner), cutoff=0.6)
        release = re.match(r"torch\d+\.\d+(?=[-.]|$)", wanted)
        if release:  # torch1.4-cuda10.2 is a torch 1.4 question before it is a CUDA one
            same = [a for a in owner if re.match(re.escape(release.group()) + r"(-|$)", a)]
            if same:
                ranked = difflib.get_close_matches(wanted, same, n=len(same), cutoff=0) + ranked
        return list(dict.fromkeys(owner[a] for a in ranked))[:n]

    def get(self, name: str) -> Entry:
        """The entry called `name` (or aliased so), or the stack a name like
        torch1.7.0-cu102-py3.8 derives (envkit.stacks); raises UnknownEntry with suggestions."""
        from . import stacks

        wanted = name.strip().lower()
        for entry in self.entries:
            if wanted == entry.name.lower() or wanted in (a.lower() for a in entry.aliases):
                return entry
        try:
            derived = stacks.resolve(wanted, self.entries)
        except UnknownEntry as exc:
            raise UnknownEntry(f"unknown entry {name!r}: {exc.message}", exc.fix) from None
        if derived is not None:
            return derived
        close = list(dict.fromkeys(stacks.suggest(wanted) + self.suggest(wanted)))[:3]
        fix = (
            f"did you mean {', '.join(repr(c) for c in close)}?"
            if close
            else "run `envkit list` to see every entry"
        )
        raise UnknownEntry(f"unknown entry {name!r} in {self.path}", fix)


# Schema: key -> (required, kind). "version" keeps YAML's source text so that 3.10 stays "3.10".
_ENTRY_KEYS = {
    "torch": (True, "release"),
    "torchvision": (False, "release?"),
    "torchaudio": (False, "release?"),
    "cuda": (True, "version?"),
    "cudnn": (False, "version?"),
    "python": (True, "python"),
    "flavour": (False, "flavour"),
    "base_image": (True, "image"),
    "index_url": (False, "url?"),
    "aliases": (False, "list"),
    "pins": (False, "pins"),
    "dockerfile": (False, "template"),
    "description": (False, "str"),
}
_TOP_KEYS = ("version", "defaults", "entries")


_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
# What an index URL may hold to be rendered into a Dockerfile and split by a shell as it is:
# no quotes, spaces, shell metacharacters or control characters (percent-encode those).
SAFE_URL = re.compile(r"^(?:https?|file)://[A-Za-z0-9._~:/@%+=,-]+$")
# torch, torchvision and torchaudio pins name a release in full, as pip and the facts do.
_RELEASE = re.compile(r"^\d+\.\d+\.\d+$")
_TEMPLATE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # a file in dockerfiles/, never a path


def _requirement_problem(text: str) -> str | None:
    """Why `text` is not a PEP 508 requirement (None when it is)."""
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        Requirement(text)
    except InvalidRequirement as exc:
        return f"is not a requirement ({str(exc).splitlines()[0]})"
    return None


def did_you_mean(word: str, choices) -> str | None:
    """A "did you mean 'x'?" hint naming the choice closest to a misspelt word; None if none is."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def node_line(node: yaml.Node) -> int:
    """The 1-based line a composed YAML node starts on."""
    return node.start_mark.line + 1


class _Reader:
    """Turns the composed YAML node tree into Entries, collecting Problems on the way."""

    def __init__(self, path: str):
        self.path = path
        self.problems: list[Problem] = []

    def problem(self, node_or_line, message: str, fix: str | None = None) -> None:
        line = node_or_line if isinstance(node_or_line, int) else node_line(node_or_line)
        self.problems.append(Problem(self.path, line, message, fix))

    def mapping(self, node: yaml.Node, what: str) -> list[tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, f"{what} must be a mapping", "write `key: value` lines under it")
            return None
        seen: dict[str, int] = {}
        pairs = []
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            if name is None:
                self.problem(key, f"{what} has a key that is not a plain name")
                continue
            if name in seen:
                self.problem(
                    key,
                    f"duplicate key {name!r} in {what} (first at line {seen[name]})",
                    "remove or rename one of them",
                )
                continue
            seen[name] = node_line(key)
            pairs.append((key, value))
        return pairs

    def value(self, key: str, kind: str, node: yaml.Node):
        optional = kind.endswith("?")
        kind = kind.rstrip("?")
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            if optional:
                return None
            self.problem(node, f"{key!r} must not be null", f"give {key} a value")
            return None
        if kind in ("list", "pins"):
            if not isinstance(node, yaml.SequenceNode) or not all(
                isinstance(n, yaml.ScalarNode) for n in node.value
            ):
                self.problem(node, f"{key!r} must be a list of strings", f'write {key}: ["..."]')
                return None
            if kind == "pins":
                for item in node.value:
                    if any(ord(c) < 32 or c in "\\`$" for c in item.value):
                        self.problem(
                            item,
                            f"pin {item.value!r} has a line break, a control character, a "
                            "backslash, `$` or a backquote",
                            'one requirement per item, e.g. "numpy<2"',
                        )
                        return None
                    problem = _requirement_problem(item.value)
                    if problem:
                        self.problem(item, f"pin {item.value!r} {problem}", 'e.g. "numpy<2"')
                        return None
            return tuple(n.value for n in node.value)
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, f"{key!r} must be a single value, not a list or mapping")
            return None
        text = node.value
        if key == "cuda" and text.lower() in ("cpu", "none"):
            self.problem(node, f"cuda {text!r}: a CPU-only entry has no CUDA", "write cuda: null")
            return None
        if kind == "version" and not _VERSION.fullmatch(text):
            self.problem(node, f"{key} {text!r} is not a version like 1.4.0", "use digits and dots")
            return None
        if kind == "image" and not _IMAGE.fullmatch(text):
            self.problem(
                node,
                f"{key} {text!r} is not an image reference",
                "e.g. python:3.8-slim-bookworm or registry.example/team/base:1",
            )
            return None
        if kind == "url" and not text.startswith(("https://", "http://", "file://")):
            self.problem(
                node, f"{key} {text!r} is not a URL", "e.g. https://download.pytorch.org/whl/cu118"
            )
            return None
        if kind == "url" and not SAFE_URL.fullmatch(text):
            self.problem(
                node,
                f"{key} {text!r} has characters a Dockerfile cannot carry (quotes, spaces, "
                "shell metacharacters, line breaks)",
                "percent-encode them (%20 for a space, %22 for a quote)",
            )
            return None
        if kind == "release" and not _RELEASE.fullmatch(text):
            self.problem(
                node,
                f"{key} {text!r} is not a version like 1.4.0 (all three numbers)",
                f"write the release in full: pip finds no {key}=={text} wheel otherwise, after "
                "the downloads",
            )
            return None
        if kind == "template" and not _TEMPLATE.fullmatch(text):
            self.problem(
                node,
                f"dockerfile {text!r} is not a template name",
                f"name a template in dockerfiles/ without its suffix: {', '.join(FLAVOURS)}",
            )
            return None
        if kind == "python" and not _PYTHON.fullmatch(text):
            self.problem(node, f"python {text!r} is not a version like 3.8", 'quote it: "3.10"')
            return None
        if kind == "flavour" and text not in FLAVOURS:
            fix = did_you_mean(text, FLAVOURS) or f"use one of {', '.join(FLAVOURS)}"
            self.problem(node, f"flavour {text!r} is not one of {', '.join(FLAVOURS)}", fix)
            return None
        if kind == "str" and node.tag.endswith((":int", ":float", ":bool")):
            self.problem(node, f"{key!r} must be a string, got {text!r}", f'quote it: "{text}"')
            return None
        return text

    def entry(self, name_node: yaml.Node, node: yaml.Node, defaults: dict) -> Entry | None:
        name = name_node.value
        before = len(self.problems)
        if not _NAME.fullmatch(name):
            self.problem(
                name_node,
                f"entry name {name!r} must be lower-case letters, digits, '.', '-' or '_'",
                "rename it, e.g. torch1.4-cuda10",
            )
        pairs = self.mapping(node, f"entry {name!r}")
        if pairs is None:
            return None
        values = dict(defaults)
        lines = {}
        for key_node, value_node in pairs:
            key = key_node.value
            if key == "<<":
                self.problem(
                    key_node,
                    "YAML merge keys (<<) are not supported",
                    "put shared values under the top-level `defaults:` mapping",
                )
                continue
            if key not in _ENTRY_KEYS:
                self.problem(
                    key_node,
                    f"unknown key {key!r} in entry {name!r}",
                    did_you_mean(key, _ENTRY_KEYS) or f"known keys: {', '.join(_ENTRY_KEYS)}",
                )
                continue
            values[key] = self.value(key, _ENTRY_KEYS[key][1], value_node)
            lines[key] = node_line(key_node)
        for key, (required, _) in _ENTRY_KEYS.items():
            if required and key not in values:
                self.problem(name_node, f"entry {name!r} is missing {key!r}", f"add `{key}: ...`")
        if len(self.problems) > before:
            return None
        return Entry(
            name=name,
            torch=values["torch"],
            torchvision=values.get("torchvision"),
            torchaudio=values.get("torchaudio"),
            cuda=values["cuda"],
            cudnn=values.get("cudnn"),
            python=values["python"],
            flavour=values.get("flavour") or "runtime",
            base_image=values["base_image"],
            index_url=values.get("index_url"),
            aliases=values.get("aliases") or (),
            pins=values.get("pins") or (),
            dockerfile=values.get("dockerfile") or values.get("flavour") or "runtime",
            description=values.get("description") or "",
            line=node_line(name_node),
            lines=lines,
        )

    def read(self, text: str) -> list[Entry]:
        try:
            root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark else 1
            self.problem(line, f"YAML syntax error: {exc.problem or exc}", "fix the YAML syntax")
            return []
        except yaml.YAMLError as exc:  # ReaderError: a control character YAML does not allow
            position = getattr(exc, "position", None)
            line = text.count("\n", 0, position) + 1 if isinstance(position, int) else 1
            reason = str(exc).splitlines()[0]
            self.problem(line, f"not readable as YAML: {reason}", "remove the control character")
            return []
        if root is None:
            self.problem(1, "the matrix file is empty", "add an `entries:` mapping")
            return []
        top = self.mapping(root, "the matrix file")
        if top is None:
            return []
        sections = {}
        for key_node, value_node in top:
            if key_node.value not in _TOP_KEYS:
                self.problem(
                    key_node,
                    f"unknown top-level key {key_node.value!r}",
                    did_you_mean(key_node.value, _TOP_KEYS)
                    or f"known keys: {', '.join(_TOP_KEYS)}",
                )
            sections[key_node.value] = value_node
        if "version" in sections and sections["version"].value != "1":
            self.problem(sections["version"], "unsupported matrix version", "use `version: 1`")
        defaults = {}
        if "defaults" in sections:
            for key_node, value_node in self.mapping(sections["defaults"], "defaults") or []:
                key = key_node.value
                if key not in _ENTRY_KEYS or key in ("aliases",):
                    self.problem(key_node, f"unknown or per-entry key {key!r} in defaults")
                    continue
                defaults[key] = self.value(key, _ENTRY_KEYS[key][1], value_node)
        if "entries" not in sections:
            self.problem(root, "the matrix file has no `entries:` mapping", "add one")
            return []
        entries = []
        for name_node, node in self.mapping(sections["entries"], "entries") or []:
            entry = self.entry(name_node, node, defaults)
            if entry is not None:
                entries.append(entry)
        self.check_names(entries)
        return entries

    def check_names(self, entries: list[Entry]) -> None:
        owner: dict[str, Entry] = {}
        for entry in entries:
            for alias in (entry.name, *entry.aliases):
                key = alias.lower()
                other = owner.get(key)
                if other is not None and other is not entry:
                    self.problem(
                        entry.line_of("aliases") if alias != entry.name else entry.line,
                        f"name {alias!r} of entry {entry.name!r} is already used by "
                        f"{other.name!r} (line {other.line})",
                        "each name and alias must be unique",
                    )
                owner[key] = entry


def parse(text: str, path: str = "matrix.yaml") -> Matrix:
    """Parse matrix text; raises MatrixError listing every schema problem."""
    reader = _Reader(path)
    entries = reader.read(text)
    if reader.problems:
        raise MatrixError(reader.problems, "fix the lines above, then run `envkit check`")
    return Matrix(path=path, entries=tuple(entries))


def shipped_path() -> Path:
    """The matrix.yaml that ships with envkit."""
    return Path(__file__).with_name("matrix.yaml")


def load(path: str | Path | None = None) -> Matrix:
    """Load a matrix file (the shipped one when `path` is None)."""
    path = Path(path) if path else shipped_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MatrixError(
            [Problem(str(path), 0, f"cannot read matrix file: {exc.strerror or exc}")],
            "pass an existing, readable matrix file",
        ) from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise MatrixError(
            [Problem(str(path), line, f"not UTF-8 text (byte {exc.object[exc.start]:#04x})")],
            "save the matrix file as UTF-8",
        ) from None
    return parse(text, str(path))


def _cuda_matches(entry: Entry, wanted: str) -> bool:
    wanted = wanted.strip().lower()
    if wanted in ("cpu", "none"):
        return entry.cuda is None
    if entry.cuda is None:
        return False
    tag = wanted.startswith("cu") and not wanted.startswith("cuda")  # cu101, cu92: wheel tags
    wanted = wanted.removeprefix("cuda").removeprefix("cu")
    if "." in wanted:
        return entry.cuda == wanted
    # "10" selects every 10.x; "101" and "92" are wheel-tag spellings of 10.1 and 9.2
    # (no CUDA major is 20 or more, so two digits from 20 up can only be a tag).
    if tag or len(wanted) >= 3 or (wanted.isdigit() and int(wanted) >= 20):
        return entry.variant == "cu" + wanted
    return entry.cuda.split(".")[0] == wanted


def select(
    entries,
    *,
    torch: str | None = None,
    cuda: str | None = None,
    python: str | None = None,
    flavour: str | None = None,
    names: tuple[str, ...] = (),
) -> list[Entry]:
    """Entries matching every given filter (`torch` is a version specifier like '>=1.4,<1.6')."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    spec = None
    for option, value in (("--torch", torch), ("--cuda", cuda), ("--python", python)):
        if value is not None and not value.strip():
            raise BadInput(f"{option} is empty", f"give a value, or leave {option} out")
    if cuda is not None and not re.fullmatch(
        r"cpu|none|(?:cuda|cu)?\d+(?:\.\d+)?", cuda.strip().lower()
    ):
        raise BadInput(
            f"--cuda {cuda!r} is not a CUDA version", "e.g. --cuda 10, 10.1, cu101 or cpu"
        )
    if python is not None and not re.fullmatch(r"\d+\.\d+", python.strip()):
        raise BadInput(f"--python {python!r} is not a version like 3.8", "give major.minor")
    if python is not None:
        python = python.strip()
    if torch:
        parts = [part.strip() for part in torch.split(",") if part.strip()]
        if not parts:
            raise BadInput(f"--torch {torch!r} names no version", "write it like '>=1.4,<1.6'")
        # a bare version means that release line: "1.4" -> 1.4.*, "1.4.0" -> exactly that
        parts = [
            (f"=={p}.*" if p.count(".") < 2 else f"=={p}") if p[:1].isdigit() else p for p in parts
        ]
        text = ",".join(parts)
        try:
            spec = SpecifierSet(text)
        except InvalidSpecifier:
            raise BadInput(
                f"--torch {torch!r} is not a version specifier",
                "write it like '>=1.4,<1.6' or '1.4'",
            ) from None
    if names:
        from . import stacks

        # A derived stack's name (torch1.7.0-cu102-py3.8) selects it though no file lists it.
        listed = {e.name for e in entries}
        entries = [*entries, *(stacks.resolve(n) for n in names if n not in listed)]
        entries = [e for e in entries if e is not None]
    out = []
    for entry in entries:
        if spec is not None and entry.torch not in spec:
            continue
        if cuda and not _cuda_matches(entry, cuda):
            continue
        if python and entry.python != python:
            continue
        if flavour and entry.flavour != flavour:
            continue
        if names and entry.name not in names:
            continue
        out.append(entry)
    return out
