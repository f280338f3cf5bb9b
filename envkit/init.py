"""envkit init: read a project's torch pins and the host's GPU, pick the newest entry that fits.

Pins come from the files a project already has (requirements, pyproject.toml, setup.py read with
`ast`, setup.cfg, environment.yml); nothing of the project is executed.
"""

from __future__ import annotations

import ast
import configparser
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from . import facts as fact_tables
from .errors import BadInput, CheckFailed
from .facts import parse_release
from .gpu import fit as gpu_fit
from .gpu import host as gpu_host
from .gpu.host import GpuHost
from .matrix import Entry, Matrix, select
from .project import Project, write_project

# Package names as projects spell them -> what they constrain in an entry.
_PACKAGES = {
    "torch": "torch",
    "pytorch": "torch",
    "torchvision": "torchvision",
    "cudatoolkit": "cuda",
    "pytorch-cuda": "cuda",
    "cuda-version": "cuda",
}
_LOCAL_CUDA = re.compile(r"^cu(\d+)(\d)$")
_CONDA_SPEC = re.compile(r"^([A-Za-z0-9_.-]+)\s*(.*)$")
_ANY = SpecifierSet()


class Facts(Protocol):
    """The facts init consults (envkit.facts provides them): those envkit.gpu.fit reads."""

    def min_driver_for(self, cuda: str) -> str | None: ...

    def min_driver_to_run(self, cuda: str) -> str | None: ...

    def arch_list(self, torch: str, cuda: str) -> tuple | None: ...

    def kernel_supports(self, arch_list, capability: str) -> bool: ...

    def library_limit(self, torch: str, cuda: str) -> str | None: ...

    def beyond_libraries(self, torch: str, cuda: str, capability: str) -> bool: ...


@dataclass(frozen=True)
class Pin:
    """One constraint found in a project file: what it constrains, the allowed versions, where."""

    package: str  # torch, torchvision, cuda or python
    specs: tuple[SpecifierSet, ...]  # any one of them (Poetry's and conda's `||`)
    text: str
    source: str  # FILE:LINE
    cpu_only: bool = False

    def allows(self, version: str) -> bool:
        """Whether `version` satisfies this pin."""
        return any(version in spec for spec in self.specs)

    def __str__(self) -> str:
        return f"{self.text} ({self.source})"


@dataclass(frozen=True)
class Choice:
    """The chosen entry and the lines that explain the choice."""

    entry: Entry
    pins: tuple[Pin, ...]
    host: GpuHost
    explanation: tuple[str, ...]
    requirements_file: str | None = None

    def to_dict(self) -> dict:
        """Plain data for --json."""
        return {
            "entry": self.entry.name,
            "pins": [{"package": p.package, "spec": p.text, "source": p.source} for p in self.pins],
            "host": {"driver": self.host.driver, "capabilities": list(self.host.capabilities)},
            "explanation": list(self.explanation),
            "requirements_file": self.requirements_file,
        }


@dataclass
class _Found:
    pins: list[Pin] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    includes: dict[str, bool] = field(default_factory=dict)


# ---------------------------------------------------------------------------- reading pins


def _spec(text: str, where: str) -> SpecifierSet:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise BadInput(
            f"{where}: {text!r} is not a version specifier", "fix the constraint in that file"
        ) from None


def _pin_from_requirement(req: Requirement, text: str, source: str) -> list[Pin]:
    """Pins from a PEP 508 requirement; a torch local tag (+cu101, +cpu) also pins the CUDA."""
    package = _PACKAGES.get(req.name.lower())
    if package is None or package == "cuda":
        return []
    pins = []
    kept = []
    for spec in req.specifier:
        version = spec.version
        if "+" in version:
            # PEP 440: a local tag in == must match exactly, and entries carry none.
            version, local = version.split("+", 1)
            match = _LOCAL_CUDA.match(local)
            if local == "cpu":
                pins.append(Pin("cuda", (_ANY,), text, source, cpu_only=True))
            elif match and package == "torch":
                cuda = f"{match.group(1)}.{match.group(2)}"
                pins.append(Pin("cuda", (SpecifierSet(f"=={cuda}"),), text, source))
        kept.append(f"{spec.operator}{version}")
    spec = SpecifierSet(",".join(kept))
    pins.insert(0, Pin(package, (spec,), text, source))
    return pins


def _requirement_line(text: str, source: str) -> list[Pin]:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return []
    # The user's own spelling (markers and spaces dropped) is what the explanation quotes.
    return _pin_from_requirement(req, re.sub(r"\s+", "", text.split(";")[0]), source)


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """Lines of a requirements file with comments dropped and `\\` continuations joined."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield start, (pending + line).strip()
        pending = ""
    if pending.strip():
        yield start, pending.strip()


def read_requirements(path: Path, root: Path, found: _Found, seen: set[Path]) -> None:
    """Pins from a pip requirements file, following -r and -c includes."""
    path = path.resolve()
    if path in seen or not path.is_file():
        return
    seen.add(path)
    name = _relative(path, root)
    for number, line in _logical_lines(path.read_text(encoding="utf-8", errors="replace")):
        if not line:
            continue
        include = re.match(r"^(-r|--requirement|-c|--constraint)[\s=]+(\S+)", line)
        if include:
            found.includes[name] = True
            target = path.parent / include.group(2)
            if not target.is_file():
                found.notes.append(f"{name}:{number}: included file {include.group(2)} not found")
            read_requirements(target, root, found, seen)
            continue
        if line.startswith("-"):
            continue  # --index-url, -f, -e and other options
        found.pins.extend(_requirement_line(line, f"{name}:{number}"))


def _poetry_spec(text: str, source: str) -> str:
    """A Poetry constraint (^1.4, ~1.4, 1.4.*, >=1,<2, 1.4.0) as a PEP 440 specifier."""
    parts = []
    for part in re.split(r"\s*,\s*|\s+(?=[<>=!~^])", text.strip()):
        if not part or part == "*":
            continue
        if part[0] in "^~" and not part.startswith("~="):
            base = part[1:].strip()
            try:
                numbers = list(Version(base).release)  # ^2.0.0rc1 bumps on 2.0.0
            except InvalidVersion:
                raise BadInput(
                    f"{source}: {part!r} is not a Poetry version constraint",
                    "fix the constraint in that file",
                ) from None
            if part[0] == "^":
                # Bump the first non-zero component: ^1.4 -> <2, ^0.5 -> <0.6, ^0.0.3 -> <0.0.4.
                index = next((i for i, n in enumerate(numbers) if n != 0), len(numbers) - 1)
            else:
                # ~1.4.2 -> <1.5, ~1.4 -> <1.5, ~1 -> <2.
                index = 0 if len(numbers) == 1 else 1
            upper = numbers[: index + 1]
            upper[index] += 1
            parts += [f">={base}", "<" + ".".join(map(str, upper))]
        elif part[0].isdigit():
            parts.append(f"=={part}")
        else:
            parts.append(part)
    return ",".join(parts)


def _poetry_pin(name: str, value, source: str) -> list[Pin]:
    package = "python" if name == "python" else _PACKAGES.get(name.lower())
    if package is None or package == "cuda":
        return []
    values = value if isinstance(value, list) else [value]
    alternatives = []
    for item in values:
        text = item.get("version") if isinstance(item, dict) else item
        if not isinstance(text, str):
            return []  # a path, git or url dependency: no version to read
        alternatives += [_spec(_poetry_spec(alt, source), source) for alt in text.split("||")]
    return [Pin(package, tuple(alternatives), f"{name} {' | '.join(map(str, values))}", source)]


def _toml(path: Path) -> dict:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        try:
            import tomli as tomllib
        except ImportError:
            raise BadInput(
                f"reading {path.name} needs Python 3.11+ or the tomli package", "pip install tomli"
            ) from None
    try:
        return tomllib.loads(path.read_text(encoding="utf-8", errors="replace"))
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"{path}: not valid TOML: {exc}", "fix the file's syntax") from None


def _line_of(text: str, needle: str) -> int:
    """The first line mentioning `needle` (TOML and cfg parsers keep no line numbers)."""
    pattern = re.compile(rf"(^|[^A-Za-z0-9_-]){re.escape(needle)}($|[^A-Za-z0-9_-])", re.I)
    for number, line in enumerate(text.splitlines(), 1):
        if pattern.search(line):
            return number
    return 0


def read_pyproject(path: Path, root: Path, found: _Found) -> None:
    """Pins from [project], [dependency-groups] and [tool.poetry]."""
    data = _toml(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    name = _relative(path, root)

    def shaped(value, kind: type, where: str):
        """`value` when it has the type the spec gives it; a note and an empty one otherwise."""
        if value is None:
            return kind()
        if not isinstance(value, kind):
            shape = "table" if kind is dict else "array"  # TOML's words
            found.notes.append(f"{name}: {where} is not a {shape}, not read")
            return kind()
        return value

    project = shaped(data.get("project"), dict, "[project]")
    lists = [shaped(project.get("dependencies"), list, "project.dependencies")]
    optional = shaped(project.get("optional-dependencies"), dict, "project.optional-dependencies")
    lists += [shaped(v, list, f"optional-dependencies.{k}") for k, v in optional.items()]
    groups = shaped(data.get("dependency-groups"), dict, "[dependency-groups]")
    lists += [g for g in groups.values() if isinstance(g, list)]
    for items in lists:
        for item in items:
            if isinstance(item, str):
                source = f"{name}:{_line_of(text, item)}"
                found.pins.extend(_requirement_line(item, source))
    python = project.get("requires-python")
    if isinstance(python, str) and python:
        source = f"{name}:{_line_of(text, 'requires-python')}"
        found.pins.append(Pin("python", (_spec(python, source),), f"python{python}", source))
    tool = shaped(data.get("tool"), dict, "[tool]")
    poetry = shaped(tool.get("poetry"), dict, "[tool.poetry]")
    tables = [shaped(poetry.get("dependencies"), dict, "tool.poetry.dependencies")]
    poetry_groups = shaped(poetry.get("group"), dict, "tool.poetry.group")
    for group, table in poetry_groups.items():
        table = shaped(table, dict, f"tool.poetry.group.{group}")
        tables.append(shaped(table.get("dependencies"), dict, f"group.{group}.dependencies"))
    for table in tables:
        for package, value in table.items():
            source = f"{name}:{_line_of(text, package)}"
            found.pins.extend(_poetry_pin(package, value, source))


def _literal(node: ast.AST, names: dict[str, ast.AST]):
    """A literal value, following one level of module-level names; None when computed."""
    if isinstance(node, ast.Name) and node.id in names:
        node = names[node.id]
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def read_setup_py(path: Path, root: Path, found: _Found) -> None:
    """Pins from setup(install_requires=, extras_require=, python_requires=), read statically."""
    name = _relative(path, root)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
    except (SyntaxError, ValueError) as exc:  # ValueError: a NUL byte in the source
        where = f"{name}:{exc.lineno}" if getattr(exc, "lineno", None) else name
        found.notes.append(f"{where}: not valid Python, not read")
        return
    names = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        func = call.func
        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if called != "setup":
            continue
        for keyword in call.keywords:
            if keyword.arg not in ("install_requires", "extras_require", "python_requires"):
                continue
            value = _literal(keyword.value, names)
            source = f"{name}:{keyword.value.lineno}"
            if value is None:
                found.notes.append(
                    f"{source}: {keyword.arg} is computed when setup.py runs; "
                    "envkit does not run it, so it was not read"
                )
            elif keyword.arg == "python_requires" and isinstance(value, str):
                found.pins.append(Pin("python", (_spec(value, source),), f"python{value}", source))
            elif keyword.arg == "extras_require" and isinstance(value, dict):
                for items in value.values():
                    for item in [items] if isinstance(items, str) else items:
                        found.pins.extend(_requirement_line(item, source))
            elif isinstance(value, (list, tuple)):
                for item in value:
                    if isinstance(item, str):
                        found.pins.extend(_requirement_line(item, source))


def read_setup_cfg(path: Path, root: Path, found: _Found) -> None:
    """Pins from [options] install_requires / python_requires and [options.extras_require]."""
    name = _relative(path, root)
    text = path.read_text(encoding="utf-8", errors="replace")
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        found.notes.append(f"{name}: not a valid setup.cfg ({exc.message}), not read")
        return
    values = []
    if parser.has_option("options", "install_requires"):
        values.append(parser.get("options", "install_requires"))
    if parser.has_section("options.extras_require"):
        values += [value for _, value in parser.items("options.extras_require")]
    for value in values:
        for item in value.splitlines():
            item = item.strip()
            if item and not item.startswith("#"):
                found.pins.extend(_requirement_line(item, f"{name}:{_line_of(text, item)}"))
    if parser.has_option("options", "python_requires"):
        python = parser.get("options", "python_requires").strip()
        source = f"{name}:{_line_of(text, 'python_requires')}"
        found.pins.append(Pin("python", (_spec(python, source),), f"python{python}", source))


def _conda_spec(text: str) -> str:
    """A conda version constraint (1.4, =1.4, 1.4.*, >=1.8,<1.10, 1.4=build) as PEP 440."""
    text = text.strip()
    if text.startswith("=") and not text.startswith("=="):
        text = text[1:]
    if text and text[0].isdigit():
        version = text.split("=")[0].strip()  # "1.4=py3.7_cuda10.1_0": drop the build string
        # conda's bare 1.4 means the 1.4 line, like 1.4.*
        return f"=={version}" if version.endswith("*") else f"=={version}.*"
    return text.split(" ")[0]


def read_environment_yml(path: Path, root: Path, found: _Found) -> None:
    """Pins from a conda environment file, its pip: section included."""
    name = _relative(path, root)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        root_node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        found.notes.append(f"{name}: not valid YAML ({exc}), not read")
        return
    deps = None
    if isinstance(root_node, yaml.MappingNode):
        deps = next((v for k, v in root_node.value if k.value == "dependencies"), None)
    if not isinstance(deps, yaml.SequenceNode):
        return
    for item in deps.value:
        source = f"{name}:{item.start_mark.line + 1}"
        if isinstance(item, yaml.MappingNode):
            for key, value in item.value:
                if key.value == "pip" and isinstance(value, yaml.SequenceNode):
                    for line in value.value:
                        text = str(line.value).strip()
                        line_source = f"{name}:{line.start_mark.line + 1}"
                        include = re.match(r"^(-r|--requirement)[\s=]+(\S+)", text)
                        if include:
                            read_requirements(path.parent / include.group(2), root, found, set())
                        elif not text.startswith("-"):
                            found.pins.extend(_requirement_line(text, line_source))
            continue
        if not isinstance(item, yaml.ScalarNode):
            continue
        text = item.value.strip().split("::")[-1]  # pytorch::pytorch=1.4 names a channel
        match = _CONDA_SPEC.match(text)
        if not match:
            continue
        package, constraint = match.group(1).lower(), match.group(2)
        if package == "cpuonly":
            found.pins.append(Pin("cuda", (_ANY,), "cpuonly", source, cpu_only=True))
            continue
        target = "python" if package == "python" else _PACKAGES.get(package)
        if target is None:
            continue
        specs = tuple(
            _spec(_conda_spec(alt), source) for alt in constraint.split("|") if alt.strip()
        ) or (_ANY,)
        found.pins.append(Pin(target, specs, text, source))


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def find_pins(directory: str | Path) -> tuple[list[Pin], list[str], dict[str, bool]]:
    """Every torch / torchvision / CUDA / Python pin in a project folder, with notes."""
    root = Path(directory)
    found = _Found()
    seen: set[Path] = set()
    requirement_files = [
        *sorted(root.glob("requirements*.txt")),  # requirements.txt, requirements-dev.txt, ...
        *sorted(root.glob("requirements/*.txt")),
    ]
    for path in requirement_files:
        read_requirements(path, root, found, seen)
    readers = [
        ("pyproject.toml", read_pyproject),
        ("setup.py", read_setup_py),
        ("setup.cfg", read_setup_cfg),
        ("environment.yml", read_environment_yml),
        ("environment.yaml", read_environment_yml),
    ]
    for filename, reader in readers:
        if (root / filename).is_file():
            reader(root / filename, root, found)
    return found.pins, found.notes, found.includes


# ----------------------------------------------------------------------------- the host


def detect_host(timeout: float = 20) -> GpuHost:
    """The host's driver and GPUs from nvidia-smi (empty when none)."""
    return gpu_host.detect(timeout)


# ------------------------------------------------------------------------------ choosing


def _version(text: str) -> Version:
    return parse_release(text) or Version("0")


def _python_allowed(pin: Pin, python: str) -> bool:
    # An entry names a minor (3.8); any of its patch releases may satisfy requires-python.
    return pin.allows(python) or pin.allows(f"{python}.999")


# The order constraints are applied in; an entry that fails a later one came closer to fitting.
_PIN_ORDER = ("torch", "torchvision", "python", "cuda")
_STAGE_CUDA_OPTION, _STAGE_CPU_ON_GPU, _STAGE_HOST = 4, 5, 6


def _pin_reason(entry: Entry, pin: Pin) -> str | None:
    """Why `entry` breaks `pin`, or None when it keeps it."""
    if pin.package == "torch" and not pin.allows(entry.torch):
        return f"torch is outside {pin}"
    if pin.package == "torchvision":
        if not entry.torchvision:
            return f"no torchvision in the entry, and the project needs it ({pin})"
        if not pin.allows(entry.torchvision):
            return f"torchvision is outside {pin}"
    if pin.package == "python" and not _python_allowed(pin, entry.python):
        return f"Python {entry.python} is outside {pin}"
    if pin.package == "cuda":
        if pin.cpu_only and entry.cuda is not None:
            return f"a CUDA entry, and the project is CPU-only ({pin})"
        if not pin.cpu_only and entry.cuda is None:
            return f"a CPU entry, and the project pins CUDA ({pin})"
        if not pin.cpu_only and not pin.allows(entry.cuda):
            return f"CUDA {entry.cuda} is outside {pin}"
    return None


def _rejection(
    entry: Entry, pins: list[Pin], host: GpuHost, cuda: str | None, wanted: set[str], facts: Facts
) -> tuple[int, str] | None:
    """(stage, reason) for the first constraint `entry` breaks, or None when it fits."""
    for pin in pins:
        reason = _pin_reason(entry, pin)
        if reason:
            return _PIN_ORDER.index(pin.package), reason
    if cuda and entry.name not in wanted:
        return _STAGE_CUDA_OPTION, f"--cuda {cuda} asks for another CUDA"
    cpu_pinned = any(p.cpu_only for p in pins)
    if host.has_gpu and entry.cuda is None and not cuda and not cpu_pinned:
        # A GPU host asks for a GPU image; a CPU image is chosen only on request.
        return _STAGE_CPU_ON_GPU, "a CPU entry, and the host has a GPU (--cuda cpu picks one)"
    if host.has_gpu:
        reason = gpu_fit.assess(entry, host, facts).reason()
        if reason:
            return _STAGE_HOST, reason
    return None


def _rank(entry: Entry) -> tuple:
    """Newest torch first; then newest CUDA; runtime before devel."""
    return (_version(entry.torch), _version(entry.cuda or "0"), entry.flavour == "runtime")


def _grouped(rejected: list[tuple[Entry, str]]) -> list[str]:
    """One line per distinct reason, naming the entries it rejected."""
    order: dict[str, list[str]] = {}
    for entry, reason in rejected:
        order.setdefault(reason, []).append(entry.name)
    lines = []
    for reason, names in order.items():
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        lines.append(f"rejected {shown}: {reason}")
    return lines


def choose(
    matrix: Matrix,
    pins: list[Pin],
    host: GpuHost,
    *,
    cuda: str | None = None,
    facts: Facts | None = None,
) -> tuple[Entry, list[str]]:
    """The newest entry that keeps every pin and runs on the host, and why the newer did not."""
    if facts is None:
        facts = fact_tables
    candidates = sorted(matrix.entries, key=_rank, reverse=True)
    wanted = {e.name for e in select(candidates, cuda=cuda)} if cuda else set()
    if cuda and not wanted:
        raise BadInput(f"--cuda {cuda} matches no entry", "see envkit list")
    pins = sorted(pins, key=lambda p: _PIN_ORDER.index(p.package))
    rejected: list[tuple[Entry, int, str]] = []
    fitting: list[Entry] = []
    for entry in candidates:
        why = _rejection(entry, pins, host, cuda, wanted, facts)
        if why:
            rejected.append((entry, *why))
        else:
            fitting.append(entry)
    if not fitting:
        raise CheckFailed(_no_fit_message(rejected), _no_fit_fix(rejected))
    newest = _version(fitting[0].torch)
    same_torch = [e for e in fitting if _version(e.torch) == newest]
    chosen = same_torch[0]
    if not host.has_gpu and not cuda:
        # No GPU to use: the CPU build of the same torch is smaller and behaves the same.
        chosen = next((e for e in same_torch if e.cuda is None), chosen)
    position = candidates.index(chosen)
    lines = _grouped([(e, r) for e, _, r in rejected if candidates.index(e) < position])
    passed_over = [e.name for e in fitting if candidates.index(e) < position]
    if passed_over:
        lines.append(
            f"preferred the CPU entry {chosen.name} (no GPU on this host) over "
            f"{', '.join(passed_over)}; pass --cuda to choose a CUDA one"
        )
    return chosen, lines


def _farthest(rejected: list[tuple[Entry, int, str]]) -> list[str]:
    """Distinct reasons of the entries that came closest to fitting."""
    if not rejected:
        return []
    stage = max(s for _, s, _ in rejected)
    return list(dict.fromkeys(r for _, s, r in rejected if s == stage))


def _no_fit_message(rejected: list[tuple[Entry, int, str]]) -> str:
    reasons = _farthest(rejected)
    if not reasons:
        return "no entry fits: the matrix has no entries"
    more = f" (and {len(reasons) - 3} more reasons)" if len(reasons) > 3 else ""
    return "no entry fits: " + "; ".join(reasons[:3]) + more


def _no_fit_fix(rejected: list[tuple[Entry, int, str]]) -> str:
    stage = max((s for _, s, _ in rejected), default=0)
    if stage == _STAGE_HOST:
        fixes = []
        reasons = " ".join(_farthest(rejected))
        if "driver" in reasons:
            fixes.append("upgrade the NVIDIA driver")
        if "kernels" in reasons or "libraries" in reasons:
            fixes.append("loosen the torch pin to a release built for this GPU")
        return " or ".join(fixes) + "; or pass --cuda cpu for a CPU image"
    if stage == _STAGE_CPU_ON_GPU:
        return "pass --cuda cpu to choose a CPU image on this GPU host"
    if stage == _STAGE_CUDA_OPTION:
        return "change or drop --cuda: the project's pins fit entries with another CUDA"
    return "loosen the pins named above, or add an entry that has them to the matrix"


def init_project(
    directory: str | Path,
    matrix: Matrix,
    host: GpuHost,
    *,
    cuda: str | None = None,
    facts: Facts | None = None,
) -> Choice:
    """Read the project's pins and choose its entry (nothing is written)."""
    root = Path(directory)
    if not root.is_dir():
        raise BadInput(f"{root} is not a folder", "pass the project folder")
    pins, notes, includes = find_pins(root)
    # one line a pin as written (torch==1.4.0+cu92 pins both torch and the CUDA)
    explanation = list(dict.fromkeys(f"found {pin}" for pin in pins)) or [
        "found no torch pin: the newest entry that runs here is chosen"
    ]
    explanation += notes
    explanation.append(host.describe())
    entry, why = choose(matrix, pins, host, cuda=cuda, facts=facts)
    explanation += why
    explanation.append(
        f"chose {entry.name}: torch {entry.torch}, "
        f"torchvision {entry.torchvision or 'none'}, {entry.variant}, "
        f"Python {entry.python}"
    )
    requirements = None
    if (root / "requirements.txt").is_file():
        if includes.get("requirements.txt"):
            explanation.append(
                "requirements.txt includes other files: set requirements_file "
                "in envkit.yaml to a file that holds them all"
            )
        else:
            requirements = "requirements.txt"
    return Choice(entry, tuple(pins), host, tuple(explanation), requirements)


def write_choice(directory: str | Path, choice: Choice, force: bool = False) -> Path:
    """Write envkit.yaml for a choice; refuses to replace an existing one unless `force`."""
    path = Path(directory) / "envkit.yaml"
    project = Project(
        path=str(path), entry=choice.entry.name, requirements_file=choice.requirements_file
    )
    return write_project(directory, project, overwrite=force)
