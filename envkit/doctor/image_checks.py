"""What an image says it needs (its labels and NVIDIA_REQUIRE_CUDA), against this host: pure.

envkit writes `io.envkit.arch_list`, `io.envkit.min_driver` and, for CUDA entries,
`NVIDIA_REQUIRE_CUDA` into every image it builds; the runner reads them back from the engine.
"""

from __future__ import annotations

import re

from .. import facts
from .finding import Check

_REQUIREMENT = re.compile(r"unsatisfied condition:\s*cuda\s*>=\s*([0-9.]+)", re.IGNORECASE)


def image_requirements(attrs: dict | None) -> dict:
    """The image's declared needs from its inspect data: labels and NVIDIA_REQUIRE_CUDA."""
    config = (attrs or {}).get("Config") or {}
    labels = config.get("Labels") or {}
    env = dict(item.split("=", 1) for item in config.get("Env") or () if "=" in item)
    return {
        "arch_list": labels.get("io.envkit.arch_list"),
        "min_driver": labels.get("io.envkit.min_driver"),
        "cuda": labels.get("io.envkit.cuda"),
        "require_cuda": env.get("NVIDIA_REQUIRE_CUDA"),
    }


def refused_cuda(text: str) -> str | None:
    """The CUDA version of the toolkit's "unsatisfied condition: cuda>=X" refusal, if it is one."""
    match = _REQUIREMENT.search(text or "")
    return match.group(1).rstrip(".") if match else None


def requirement_check(needs: dict, driver: str | None) -> Check:
    """`requires`: the minimum driver the image declares, against the host's driver."""
    minimum, required = needs.get("min_driver"), needs.get("require_cuda")
    if minimum is None:
        return Check(
            "requires",
            "skip",
            "the image carries no io.envkit.min_driver label (built by an older envkit)",
        )
    if minimum == "none":
        return Check("requires", "pass", "CPU-only image: it needs no NVIDIA driver")
    said = f"the image needs driver >= {minimum}"
    if required:
        said += f" (NVIDIA_REQUIRE_CUDA {required.split()[0]})"
    if needs.get("arch_list"):
        said += f", built for {needs['arch_list']}"
    if driver is None:
        return Check("requires", "skip", f"{said}; this host has no NVIDIA driver")
    if minimum != "unknown" and not facts.driver_satisfies(driver, minimum):
        return Check(
            "requires",
            "fail",
            f"{said}; this host's driver is {driver}",
            "upgrade the host's NVIDIA driver, or use an entry with an older CUDA",
        )
    return Check("requires", "pass", f"{said}; this host's driver is {driver}")
