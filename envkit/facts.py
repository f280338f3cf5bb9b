"""Fact tables the matrix is checked against: torch releases, CUDA toolkits, wheel arch lists, GPUs.

The tables live in envkit/data/*.yaml (package data); see docs/facts.md for their sources.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version


@dataclass(frozen=True)
class TorchRelease:
    """One torch release with its paired domain libraries and published CUDA variants."""

    torch: str
    torchvision: str | None
    torchaudio: str | None
    python: tuple[str, ...]
    cuda: tuple[str, ...]
    pypi_cuda: str | None
    cudnn: dict[str, str | None]
    released: str
    yanked: bool
    note: str | None = None
    wheels: dict[str, str] = field(default_factory=dict)  # variant (cpu, 10.2) -> location
    python_by_variant: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Family members whose wheels live on PyPI alone, whatever the variant's own source
    # (torchvision 0.2.x: one pure-Python wheel, never on PyTorch's pages).
    pypi_only: tuple[str, ...] = ()

    @property
    def variants(self) -> tuple[str, ...]:
        """Every published build: 'cpu', then each CUDA version, oldest first."""
        return ("cpu", *self.cuda)

    def pythons_for(self, variant: str) -> tuple[str, ...]:
        """CPython versions with Linux x86_64 wheels for one variant ('cpu' or '10.2')."""
        return self.python_by_variant.get(variant, self.python)


@dataclass(frozen=True)
class WheelLocation:
    """Where a variant's wheels live: PyPI, a torch_stable.html page, or a per-variant index."""

    name: str
    url: str | None  # template with {index} and {variant}; None for PyPI
    source: str


@dataclass(frozen=True)
class CudaRelease:
    """A CUDA toolkit minor version: driver floors and the compute capabilities nvcc can target."""

    version: str
    min_driver: str
    min_driver_compat: str | None
    sm_min: str
    sm_max: str


@dataclass(frozen=True)
class ArchBuild:
    """The arch list of the official wheels for a torch range and one CUDA variant."""

    torch: SpecifierSet
    cuda: str
    arch: tuple[str, ...]
    source: str | None = None
    note: str | None = None
    # The wheel links cuBLAS, cuDNN, cuFFT and cuSPARSE in, as built by its CUDA toolkit and
    # without PTX: they run only on GPUs up to that toolkit's sm_max, whatever torch's own
    # kernels could be JIT-compiled for.
    static_libraries: bool = False


@dataclass(frozen=True)
class GpuModel:
    """A GPU model: name patterns, compute capability and peak dense TFLOP/s."""

    name: str
    match: tuple[str, ...]
    capability: str
    peak_tflops: dict[str, float | None]


def _load(name: str) -> Any:
    path = importlib.resources.files("envkit") / "data" / name
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


@functools.lru_cache(maxsize=1)
def torch_releases() -> tuple[TorchRelease, ...]:
    """All torch releases in torch.yaml, oldest first."""
    rows = _load("torch.yaml")["releases"]
    releases = [
        TorchRelease(
            torch=str(r["torch"]),
            torchvision=_opt(r.get("torchvision")),
            torchaudio=_opt(r.get("torchaudio")),
            python=tuple(str(p) for p in r["python"]),
            cuda=tuple(str(c) for c in r["cuda"]),
            pypi_cuda=_opt(r.get("pypi_cuda")),
            cudnn={str(k): _opt(v) for k, v in (r.get("cudnn") or {}).items()},
            released=str(r["released"]),
            yanked=bool(r.get("yanked", False)),
            note=_opt(r.get("note")),
            wheels={str(k): str(v) for k, v in (r.get("wheels") or {}).items()},
            python_by_variant={
                str(k): tuple(str(p) for p in v)
                for k, v in (r.get("python_by_variant") or {}).items()
            },
            pypi_only=tuple(str(p) for p in r.get("pypi_only") or ()),
        )
        for r in rows
    ]
    return tuple(sorted(releases, key=lambda r: Version(r.torch)))


@functools.lru_cache(maxsize=1)
def wheel_locations() -> dict[str, WheelLocation]:
    """The places torch wheels live (torch.yaml `locations`), by name."""
    rows = _load("torch.yaml")["locations"]
    return {
        str(name): WheelLocation(
            str(name), _opt(row.get("url")), " ".join(str(row["source"]).split())
        )
        for name, row in rows.items()
    }


def wheel_url(release: TorchRelease, variant: str, index: str) -> str | None:
    """The pip source of one variant's wheels (None: PyPI); `index` is PyTorch's index root.

    `variant` is 'cpu' or a CUDA version ('10.2'); the URL names it as a wheel tag (cu102).
    """
    location = wheel_locations().get(release.wheels.get(variant, ""))
    if location is None or location.url is None:
        return None
    tag = "cpu" if variant == "cpu" else "cu" + variant.replace(".", "")
    return location.url.format(index=index, variant=tag)


# ------------------------------------------------------------------- the one version parser


def parse_release(version: str | None) -> Version | None:
    """The release a version names, local tag dropped ("2.0.0+cu118" -> 2.0.0); None when it
    is no PEP 440 version."""
    try:
        return Version(Version(str(version)).public)
    except InvalidVersion:
        return None


def version_numbers(text: str | None) -> tuple[int, ...]:
    """The numbers of a dotted version as ints, for versions that are not PEP 440 ones:
    drivers ("535.104.05" -> (535, 104, 5)), cuDNN ("8.9.2"), Python ("3.8.18")."""
    return tuple(int(part) for part in re.findall(r"\d+", str(text or "")))


def same_release(have: str | None, want: str | None) -> bool:
    """Does `have` ("8.9.2") match `want` on every number `want` gives ("8.9")?"""
    if have is None or want is None:
        return have == want
    wanted = version_numbers(want)
    return version_numbers(have)[: len(wanted)] == wanted


def torch_release(version: str) -> TorchRelease | None:
    """The release for a torch version such as "2.0.0" or "2.0.0+cu118"; None if unknown."""
    wanted = parse_release(version)
    if wanted is None:
        return None
    for release in torch_releases():
        if Version(release.torch) == wanted:
            return release
    return None


@functools.lru_cache(maxsize=1)
def cuda_releases() -> tuple[CudaRelease, ...]:
    """All CUDA toolkit rows in cuda.yaml, oldest first."""
    rows = _load("cuda.yaml")["cuda"]
    releases = [
        CudaRelease(
            version=str(r["version"]),
            min_driver=str(r["min_driver"]),
            min_driver_compat=_opt(r.get("min_driver_compat")),
            sm_min=str(r["sm_min"]),
            sm_max=str(r["sm_max"]),
        )
        for r in rows
    ]
    return tuple(sorted(releases, key=lambda r: Version(r.version)))


def _major_minor(cuda: str) -> str | None:
    # Accept "12.1", "12.1.105" and "cu121" alike; the tables are keyed by major.minor.
    text = str(cuda).strip().lower()
    if text.startswith("cu") and text[2:].isdigit() and len(text) >= 4:
        return f"{text[2:-1]}.{text[-1]}"
    parts = text.split(".")
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return f"{int(parts[0])}.{int(parts[1])}"


@functools.cache
def cuda_release(version: str) -> CudaRelease | None:
    """The toolkit row for a CUDA version ("12.1", "12.1.105" or "cu121"); None if unknown."""
    key = _major_minor(version)
    for release in cuda_releases():
        if release.version == key:
            return release
    return None


def min_driver_for(cuda: str) -> str | None:
    """Minimum Linux x86_64 driver of the toolkit's GA release; None for an unknown CUDA."""
    release = cuda_release(cuda)
    return release.min_driver if release else None


def min_driver_compat_for(cuda: str) -> str | None:
    """Oldest driver that runs this CUDA's runtime through minor-version compatibility.

    None before CUDA 11 (no such compatibility) and for an unknown CUDA. A driver between this
    and `min_driver_for` runs the wheels' kernels but cannot JIT the toolkit's newer PTX.
    """
    release = cuda_release(cuda)
    return release.min_driver_compat if release else None


def min_driver_to_run(cuda: str) -> str | None:
    """The oldest driver that runs this CUDA's runtime at all: the lower of the toolkit's own
    driver and the minor-version compatibility floor (CUDA 11.0's own driver, 450.51.05, is
    older than the 11.x floor). None for an unknown CUDA."""
    known = [d for d in (min_driver_compat_for(cuda), min_driver_for(cuda)) if d]
    return min(known, key=driver_version) if known else None


driver_version = version_numbers


def driver_satisfies(installed: str, required: str) -> bool:
    """True if the installed driver is at least the required one, compared as dotted integers."""
    return version_numbers(installed) >= version_numbers(required)


@functools.lru_cache(maxsize=1)
def arch_builds() -> tuple[ArchBuild, ...]:
    """All rows of arch.yaml."""
    rows = _load("arch.yaml")["builds"]
    return tuple(
        ArchBuild(
            torch=SpecifierSet(str(r["torch"])),
            cuda=str(r["cuda"]),
            arch=tuple(str(a) for a in r["arch"]),
            source=_opt(r.get("source")),
            note=_opt(r.get("note")),
            static_libraries=bool(r.get("static_libraries", False)),
        )
        for r in rows
    )


@functools.cache
def arch_build(torch: str, cuda: str) -> ArchBuild | None:
    """The arch.yaml row for the official wheel of this torch and CUDA variant; None if unknown."""
    version = parse_release(torch)
    key = _major_minor(cuda)
    if version is None or key is None:
        return None
    for build in arch_builds():
        if build.cuda == key and build.torch.contains(version, prereleases=True):
            return build
    return None


def arch_list(torch: str, cuda: str) -> tuple[str, ...] | None:
    """get_arch_list() of the official wheel for this torch and CUDA variant; None if unknown."""
    build = arch_build(torch, cuda)
    return build.arch if build else None


def library_limit(torch: str, cuda: str) -> str | None:
    """The newest compute capability the CUDA libraries inside this wheel run on ("7.5").

    None when the wheel does not link them in (later wheels load them from separate packages)
    or nothing is known of it.
    """
    build = arch_build(torch, cuda)
    release = cuda_release(cuda) if build is not None and build.static_libraries else None
    return release.sm_max if release else None


def beyond_libraries(torch: str, cuda: str, capability: str) -> bool:
    """True when this wheel's linked-in CUDA libraries have no code for a GPU of `capability`."""
    limit = library_limit(torch, cuda)
    return limit is not None and _capability(capability) > _capability(limit)


_ARCH = re.compile(r"^(sm|compute)_(\d+)([af]?)$")


def _capability(text: str) -> tuple[int, int]:
    major, _, minor = str(text).strip().partition(".")
    return int(major), int(minor or 0)


def _parse_arch(entry: str) -> tuple[str, int, int, str] | None:
    m = _ARCH.match(entry.strip().lower())
    if not m:
        return None
    digits = m.group(2)
    # The last digit is the minor revision: sm_86 -> 8.6, sm_120 -> 12.0.
    return m.group(1), int(digits[:-1]), int(digits[-1]), m.group(3)


def kernel_supports(arch_list: tuple[str, ...] | list[str], capability: str) -> bool:
    """True if a build with this arch list has kernels for a GPU of this compute capability."""
    # CUDA rules (CUDA C++ Programming Guide, "Binary Compatibility" and "PTX Compatibility"):
    # a cubin for X.y runs on X.z only when z >= y and never across major versions; PTX for X.Y
    # can be JIT-compiled by the driver for any GPU of capability >= X.Y. Arch-specific code
    # (sm_90a, compute_90a) runs only on that exact capability; family-specific code (sm_100f,
    # compute_100f) only within the same major, like a plain cubin.
    gpu = _capability(capability)
    for entry in arch_list:
        parsed = _parse_arch(entry)
        if parsed is None:
            continue
        kind, major, minor, suffix = parsed
        if kind == "sm":
            if suffix == "a":
                if (major, minor) == gpu:
                    return True
            elif major == gpu[0] and minor <= gpu[1]:
                return True
        elif suffix == "a":
            if (major, minor) == gpu:  # arch-specific PTX: that capability only
                return True
        elif suffix == "f":
            if major == gpu[0] and minor <= gpu[1]:  # family PTX: the same major only
                return True
        elif (major, minor) <= gpu:
            return True
    return False


@functools.lru_cache(maxsize=1)
def gpu_models() -> tuple[GpuModel, ...]:
    """All GPU rows of gpus.yaml."""
    rows = _load("gpus.yaml")["gpus"]
    return tuple(
        GpuModel(
            name=str(r["name"]),
            match=tuple(str(m) for m in r["match"]),
            capability=str(r["capability"]),
            peak_tflops={
                str(k): (None if v is None else float(v)) for k, v in r["peak_tflops"].items()
            },
        )
        for r in rows
    )


def _bounded_find(pattern: str, name: str) -> bool:
    # Word-boundary match so that "NVIDIA A10" does not claim "NVIDIA A100" or "NVIDIA A10G".
    regex = r"(?<![A-Za-z0-9])" + re.escape(pattern) + r"(?![A-Za-z0-9])"
    return re.search(regex, name, flags=re.IGNORECASE) is not None


def gpu_model_for(device_name: str) -> GpuModel | None:
    """The GPU row whose longest match pattern occurs in a device name; None if none does."""
    best: tuple[int, GpuModel] | None = None
    for model in gpu_models():
        for pattern in model.match:
            if _bounded_find(pattern, device_name) and (best is None or len(pattern) > best[0]):
                best = (len(pattern), model)
    return best[1] if best else None


@functools.lru_cache(maxsize=1)
def _pin_rules() -> tuple[dict, ...]:
    return tuple(_load("pins.yaml")["pins"])


def required_pins(torch: str, torchvision: str | None) -> list[dict]:
    """The pin rules (pin, why) that apply to a torch/torchvision pair, in file order."""
    versions = {"torch": torch, "torchvision": torchvision}
    out = []
    for rule in _pin_rules():
        applies = True
        for package, spec in rule["when"].items():
            version = versions.get(package)
            if version is None or Version(version) not in SpecifierSet(spec):
                applies = False
        if applies:
            out.append({"pin": rule["pin"], "why": " ".join(rule["why"].split())})
    return out


@dataclass(frozen=True)
class UbuntuRelease:
    """An Ubuntu release: the python3 it ships and the name of NVIDIA's CUDA apt repository."""

    release: str
    codename: str
    python: str
    cuda_repo: str


@functools.lru_cache(maxsize=1)
def ubuntu_releases() -> tuple[UbuntuRelease, ...]:
    """All rows of ubuntu.yaml, oldest first."""
    rows = _load("ubuntu.yaml")["ubuntu"]
    releases = [
        UbuntuRelease(
            release=str(r["release"]),
            codename=str(r["codename"]),
            python=str(r["python"]),
            cuda_repo=str(r["cuda_repo"]),
        )
        for r in rows
    ]
    return tuple(sorted(releases, key=lambda r: version_numbers(r.release)))


def ubuntu_release(release: str) -> UbuntuRelease | None:
    """The row for an Ubuntu release such as "22.04"; None if unknown."""
    for row in ubuntu_releases():
        if row.release == release:
            return row
    return None


# ------------------------------------------------- what NVIDIA's images ask of the driver


@dataclass(frozen=True)
class NvidiaRequirement:
    """NVIDIA_REQUIRE_CUDA of NVIDIA's own image for a CUDA minor version, as its parts."""

    cuda: str
    brands: tuple[str, ...]
    branches: tuple[str, ...]  # driver branches ("470") the image may start on besides cuda>=
    extra: tuple[str, ...]  # clauses NVIDIA wrote outside the brand x branch pattern
    source: str | None  # the Dockerfile in NVIDIA's repository it was read from

    def clauses(self, branches: tuple[str, ...] | None = None) -> list[str]:
        """The space-separated clauses after `cuda>=X.Y`, for `branches` (default: all)."""
        chosen = self.branches if branches is None else branches
        out = [
            f"brand={brand},driver>={branch},driver<{int(branch) + 1}"
            for branch in chosen
            for brand in self.brands
        ]
        return out + list(self.extra)

    def text(self) -> str:
        """NVIDIA's own string, as its image sets it."""
        return " ".join([f"cuda>={self.cuda}", *self.clauses()])


@functools.lru_cache(maxsize=1)
def nvidia_requirements() -> tuple[NvidiaRequirement, ...]:
    """All rows of nvidia_require_cuda in cuda.yaml."""
    data = _load("cuda.yaml")
    brand_sets = {str(k): tuple(str(b) for b in v) for k, v in data["nvidia_brands"].items()}
    return tuple(
        NvidiaRequirement(
            cuda=str(r["cuda"]),
            brands=brand_sets[str(r["brands"])] if r.get("brands") else (),
            branches=tuple(str(b) for b in r.get("branches") or ()),
            extra=tuple(str(c) for c in r.get("extra") or ()),
            source=_opt(r.get("source")),
        )
        for r in data["nvidia_require_cuda"]
    )


def nvidia_requirement(cuda: str) -> NvidiaRequirement | None:
    """NVIDIA's NVIDIA_REQUIRE_CUDA parts for a CUDA version ("12.1", "cu121"); None if unknown."""
    key = _major_minor(cuda)
    for row in nvidia_requirements():
        if row.cuda == key:
            return row
    return None
