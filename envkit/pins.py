"""Reading a project's pins: torch, torchvision, CUDA and Python constraints from the files a
project already has, each with the FILE:LINE it came from. Nothing of the project is executed.

The main chain decides: requirements.txt (or --requirements FILE) with its -r/-c includes,
pyproject.toml, setup.py (read with ast), setup.cfg, environment.yml, Pipfile.lock or Pipfile.
Other requirement files (requirements/docs.txt, requirements-gpu.txt) are listed as notes,
never merged into a conflict; a Dockerfile's `pip install torch==...` is noted when nothing
else pins torch.
"""

from __future__ import annotations

import ast
import configparser
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from .errors import BadInput

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
# A PyTorch index or find-links page for one variant: .../whl/cu113, .../whl/cpu/torch_stable.html
_INDEX_VARIANT = re.compile(r"download\.pytorch\.org/whl/(?:nightly/|test/)?(cu\d{2,3}|cpu)\b")
# conda's pytorch build strings: py3.8_cuda10.2.89_cudnn7.6.5_0, py3.8_cpu_0, cuda112py38h...
_CONDA_BUILD_CUDA = re.compile(r"cuda(\d+)\.?(\d+)")
# The image envkit builds, for environment markers (python_version is the entry's).
IMAGE_ENVIRONMENT = {
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}
_PYTHONS = tuple(f"3.{minor}" for minor in range(6, 16))


@dataclass(frozen=True)
class Pin:
    """One constraint found in a project file: what it constrains, the allowed versions, where."""

    package: str  # torch, torchvision, cuda or python
    specs: tuple[SpecifierSet, ...]  # any one of them (Poetry's and conda's `||`)
    text: str
    source: str  # FILE:LINE
    cpu_only: bool = False
    marker: str | None = None  # the line's environment marker, evaluated for the image

    def allows(self, version: str) -> bool:
        """Whether `version` satisfies this pin."""
        return any(version in spec for spec in self.specs)

    def applies(self, python: str) -> bool:
        """Whether the line is for an image (linux, x86_64) with this Python ("3.8")."""
        return marker_holds(self.marker, python)

    def __str__(self) -> str:
        return f"{self.text} ({self.source})"


@dataclass
class Found:
    """What reading a project's files found: pins, notes on what was not read, and which
    requirement files include others."""

    pins: list[Pin] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    includes: dict[str, bool] = field(default_factory=dict)


def marker_holds(marker: str | None, python: str) -> bool:
    """Does an environment marker hold in the image (linux, x86_64, CPython `python`)?"""
    if not marker:
        return True
    from packaging.markers import InvalidMarker, Marker

    try:
        parsed = Marker(marker)
    except InvalidMarker:
        return True  # an unreadable marker is the user's to fix; the line is kept
    environment = {
        **IMAGE_ENVIRONMENT,
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_version": f"{python}.0",
    }
    return parsed.evaluate(environment)


# ---------------------------------------------------------------------------- reading pins


def _spec(text: str, where: str) -> SpecifierSet:
    try:
        return SpecifierSet(text)
    except InvalidSpecifier:
        raise BadInput(
            f"{where}: {text!r} is not a version specifier", "fix the constraint in that file"
        ) from None


def _local_tag_pins(local: str, package: str, text: str, source: str) -> list[Pin]:
    """The CUDA pin a local version tag gives: +cpu a CPU stack, torch's +cu101 CUDA 10.1."""
    match = _LOCAL_CUDA.match(local)
    if local == "cpu":
        return [Pin("cuda", (_ANY,), text, source, cpu_only=True)]
    if match and package == "torch":
        cuda = f"{match.group(1)}.{match.group(2)}"
        return [Pin("cuda", (SpecifierSet(f"=={cuda}"),), text, source)]
    return []


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
            pins += _local_tag_pins(local, package, text, source)
        kept.append(f"{spec.operator}{version}")
    spec = SpecifierSet(",".join(kept))
    pins.insert(0, Pin(package, (spec,), text, source))
    return pins


def _wheel_url_pins(req: Requirement, source: str) -> list[Pin]:
    """Pins a direct wheel URL gives (torch @ https://.../torch-1.11.0%2Bcu113-cp38-...whl):
    its version, the CUDA of its local tag, the Python of its cp tag."""
    from urllib.parse import unquote

    from packaging.utils import InvalidWheelFilename, parse_wheel_filename

    filename = unquote(req.url.split("#")[0].split("?")[0].rsplit("/", 1)[-1])
    try:
        _, version, _, tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return []
    package = _PACKAGES.get(req.name.lower())
    text = f"{req.name} @ {filename}"
    pins = [Pin(package, (SpecifierSet(f"=={version.public}"),), text, source)]
    pins += _local_tag_pins(version.local or "", package, text, source)
    pythons = {f"{t.interpreter[2]}.{t.interpreter[3:]}" for t in tags if t.interpreter[:2] == "cp"}
    if len(pythons) == 1 and package == "torch":
        python = pythons.pop()
        pins.append(Pin("python", (SpecifierSet(f"=={python}.*"),), text, source))
    return pins


def _requirement_line(text: str, source: str) -> list[Pin]:
    try:
        req = Requirement(text)
    except InvalidRequirement:
        return []
    package = _PACKAGES.get(req.name.lower())
    if package is None or package == "cuda":
        return []
    marker = str(req.marker) if req.marker else None
    if req.url:
        pins = _wheel_url_pins(req, source)
    else:
        # The user's own spelling (markers and spaces dropped) is what the explanation quotes.
        pins = _pin_from_requirement(req, re.sub(r"\s+", "", text.split(";")[0]), source)
    return [replace(pin, marker=marker) for pin in pins] if marker else pins


def _index_pin(line: str, source: str) -> list[Pin]:
    """A CUDA (or CPU) pin from an index option naming a PyTorch variant
    (--extra-index-url https://download.pytorch.org/whl/cu113)."""
    match = _INDEX_VARIANT.search(line)
    if not match:
        return []
    text = re.sub(r"\s+", " ", line.strip())
    variant = match.group(1)
    if variant == "cpu":
        return [Pin("cuda", (_ANY,), text, source, cpu_only=True)]
    cuda = f"{variant[2:-1]}.{variant[-1]}"
    return [Pin("cuda", (SpecifierSet(f"=={cuda}"),), text, source)]


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


def read_requirements(path: Path, root: Path, found: Found, seen: set[Path]) -> None:
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
            # --index-url / --extra-index-url / -f naming a PyTorch variant pin its CUDA
            found.pins.extend(_index_pin(line, f"{name}:{number}"))
            continue
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


def read_pyproject(path: Path, root: Path, found: Found) -> None:
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


def read_setup_py(path: Path, root: Path, found: Found) -> None:
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


def read_setup_cfg(path: Path, root: Path, found: Found) -> None:
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


def read_environment_yml(path: Path, root: Path, found: Found) -> None:
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
                        elif text.startswith("-"):
                            found.pins.extend(_index_pin(text, line_source))
                        else:
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
        texts = [_conda_spec(alt) for alt in constraint.split("|") if alt.strip()]
        if target == "cuda":  # cudatoolkit=10.2.89 is CUDA 10.2
            texts = [re.sub(r"^==(\d+\.\d+)\.[\d.]*\*$", r"==\1.*", s) for s in texts]
        specs = tuple(_spec(s, source) for s in texts) or (_ANY,)
        found.pins.append(Pin(target, specs, text, source))
        build = constraint.lstrip("=").partition("=")[2]  # `conda env export`'s build string
        if target == "torch" and build:
            cuda = _CONDA_BUILD_CUDA.search(build)
            if cuda:
                version = f"{cuda.group(1)}.{cuda.group(2)}"
                found.pins.append(Pin("cuda", (SpecifierSet(f"=={version}.*"),), text, source))
            elif "cpu" in build:
                found.pins.append(Pin("cuda", (_ANY,), text, source, cpu_only=True))


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def read_pipfile(path: Path, root: Path, found: Found) -> None:
    """Pins from a Pipfile: [packages], [dev-packages], [requires] python_version and the
    [[source]] indexes (a PyTorch variant index pins the CUDA)."""
    data = _toml(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    name = _relative(path, root)
    for source in data.get("source") or []:
        if isinstance(source, dict) and isinstance(source.get("url"), str):
            found.pins.extend(_index_pin(source["url"], f"{name}:{_line_of(text, source['url'])}"))
    for section in ("packages", "dev-packages"):
        table = data.get(section) or {}
        if not isinstance(table, dict):
            continue
        for package, value in table.items():
            spec = value.get("version") if isinstance(value, dict) else value
            if not isinstance(spec, str):
                continue
            line = f"{package}{'' if spec.strip() == '*' else spec}"
            if isinstance(value, dict) and isinstance(value.get("markers"), str):
                line += f"; {value['markers']}"
            found.pins.extend(_requirement_line(line, f"{name}:{_line_of(text, package)}"))
    requires = data.get("requires") or {}
    python = requires.get("python_full_version") or requires.get("python_version")
    if isinstance(python, str) and python:
        source = f"{name}:{_line_of(text, 'python_')}"
        found.pins.append(
            Pin("python", (_spec(f"=={python}.*", source),), f"python {python}", source)
        )


def read_pipfile_lock(path: Path, root: Path, found: Found) -> None:
    """Pins from Pipfile.lock: its exact versions (markers kept) and the Python it was locked
    for."""
    import json

    name = _relative(path, root)
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except ValueError as exc:
        found.notes.append(f"{name}: not valid JSON ({exc}), not read")
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    for section in ("default", "develop"):
        for package, value in (data.get(section) or {}).items():
            if not isinstance(value, dict) or not isinstance(value.get("version"), str):
                continue
            line = package + value["version"]
            if isinstance(value.get("markers"), str):
                line += f"; {value['markers']}"
            found.pins.extend(_requirement_line(line, f"{name}:{_line_of(text, package)}"))
    requires = (data.get("_meta") or {}).get("requires") or {}
    python = requires.get("python_full_version") or requires.get("python_version")
    if isinstance(python, str) and python:
        source = f"{name}:{_line_of(text, 'python_')}"
        found.pins.append(
            Pin("python", (_spec(f"=={python}.*", source),), f"python {python}", source)
        )


_DOCKERFILE_TORCH = re.compile(r"pip3?\s+install\b[^\n]*?\btorch==(\S+)")


def dockerfile_torch(root: Path) -> list[str]:
    """`pip install torch==X` lines in the project's Dockerfiles, as notes."""
    notes = []
    for path in sorted(root.glob("Dockerfile*")) + sorted(root.glob("docker/Dockerfile*")):
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.replace("\\\n", " ").splitlines(), 1):
            match = _DOCKERFILE_TORCH.search(line)
            if match:
                version = match.group(1).split("+")[0]
                notes.append(
                    f"{_relative(path, root)}:{number}: installs torch=={match.group(1)} and "
                    f"nothing else pins torch: add torch=={version} to requirements.txt to pin it"
                )
    return notes


def _main_requirements(root: Path, requirements: Path | None) -> Path | None:
    """The requirements file of the main chain: the one asked for, requirements.txt, or the
    project's only requirements file."""
    if requirements is not None:
        return requirements
    if (root / "requirements.txt").is_file():
        return root / "requirements.txt"
    files = [*root.glob("requirements*.txt"), *root.glob("requirements/*.txt")]
    return files[0] if len(files) == 1 else None


def find_pins(
    directory: str | Path, requirements: str | Path | None = None
) -> tuple[list[Pin], list[str], dict[str, bool]]:
    """Every torch / torchvision / CUDA / Python pin of a project's main chain, with notes
    (other requirement files, lines whose markers exclude the image, a Dockerfile's torch)."""
    root = Path(directory)
    chosen = None
    if requirements is not None:
        chosen = Path(requirements) if Path(requirements).is_absolute() else root / requirements
        if not chosen.is_file():
            raise BadInput(f"--requirements {requirements}: no such file", "name a file in it")
    found = Found()
    seen: set[Path] = set()
    main = _main_requirements(root, chosen)
    if main is not None:
        read_requirements(main, root, found, seen)
    readers = [
        ("pyproject.toml", read_pyproject),
        ("setup.py", read_setup_py),
        ("setup.cfg", read_setup_cfg),
        ("environment.yml", read_environment_yml),
        ("environment.yaml", read_environment_yml),
        ("Pipfile.lock", read_pipfile_lock),
    ]
    if not (root / "Pipfile.lock").is_file():
        readers.append(("Pipfile", read_pipfile))
    for filename, reader in readers:
        if (root / filename).is_file():
            reader(root / filename, root, found)
    # Other requirement files are alternatives (docs, GPU, CPU variants): notes, not pins.
    for path in sorted({*root.glob("requirements*.txt"), *root.glob("requirements/*.txt")}):
        if path.resolve() in seen:
            continue
        other = Found()
        read_requirements(path, root, other, set())
        if other.pins:
            what = ", ".join(dict.fromkeys(str(pin) for pin in other.pins))
            found.notes.append(
                f"not read: {_relative(path, root)} ({what}) is not included by the main "
                f"requirements; pass --requirements {_relative(path, root)} to use it"
            )
    pins = []
    for pin in found.pins:
        if any(pin.applies(python) for python in _PYTHONS):
            pins.append(pin)
        else:
            found.notes.append(f"skipped {pin}: its marker ({pin.marker}) excludes linux x86_64")
    if not any(pin.package == "torch" for pin in pins):
        found.notes += dockerfile_torch(root)
    return pins, found.notes, found.includes
