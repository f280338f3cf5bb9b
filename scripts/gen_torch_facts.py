#!/usr/bin/env python3
"""Check envkit/data/torch.yaml against PyPI's JSON API, and write the fields a rule derives.

    python scripts/gen_torch_facts.py --check [--json torch.json] [--cafile CA]
    python scripts/gen_torch_facts.py --write-wheels

--check reads https://pypi.org/pypi/torch/json (or a saved copy of it) and compares, for every
torch release on PyPI: that torch.yaml has a row, the CPython versions with a Linux x86_64 wheel
(free-threaded builds left out), the first upload date and the yanked flag. It prints one line per
disagreement and exits 1 when there is any.

--write-wheels rewrites each row's `wheels:` line (where each variant's wheels live: pypi,
stable or index, see `locations:` at the top of torch.yaml) from the rule in `location_for`,
keeping every comment. Variants that are not on PyPI cannot be listed from here
(download.pytorch.org is not reachable); the rule follows the stored copies of
download.pytorch.org/whl/torch_stable.html and /whl/<variant>/torch/ (docs/facts.md).
"""

from __future__ import annotations

import argparse
import json
import re
import ssl
import sys
import urllib.request
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
TORCH_YAML = ROOT / "envkit" / "data" / "torch.yaml"
PYPI_JSON = "https://pypi.org/pypi/torch/json"
# torch_stable.html lists every variant up to the 1.12 releases; from 1.13 pip commands name the
# per-variant simple index (/whl/cu117), which is what envkit installs from.
INDEX_FROM = Version("1.13")
_WHEEL = re.compile(r"^torch-[^-]+(?:-\d+)?-cp(\d)(\d+)-cp\d+(m|t)?-(.+)\.whl$")


def location_for(torch: str, variant: str, pypi_cuda: str | None) -> str:
    """Where the wheels of one variant of a torch release live: pypi, stable or index."""
    if variant != "cpu" and variant == pypi_cuda:
        return "pypi"
    return "stable" if Version(torch) < INDEX_FROM else "index"


def linux_pythons(files: list[dict]) -> list[str]:
    """CPython versions with a Linux x86_64 wheel among a release's files."""
    found = set()
    for item in files:
        match = _WHEEL.match(item["filename"])
        if not match or match.group(3) == "t":
            continue
        platform = match.group(4)
        if "x86_64" in platform and "linux" in platform:
            found.add(f"{match.group(1)}.{match.group(2)}")
    return sorted(found, key=Version)


def read_pypi(path: str | None, cafile: str | None) -> dict:
    """PyPI's JSON document for torch, from a saved file or the API."""
    if path:
        return json.loads(Path(path).read_text())
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    with urllib.request.urlopen(PYPI_JSON, context=context, timeout=60) as response:
        return json.load(response)


def check(pypi: dict) -> list[str]:
    """One line per disagreement between torch.yaml and PyPI."""
    sys.path.insert(0, str(ROOT))
    from envkit import facts

    rows = {r.torch: r for r in facts.torch_releases()}
    out = []
    for version, files in sorted(pypi["releases"].items(), key=lambda kv: Version(kv[0])):
        parsed = Version(version)
        if not files or parsed.is_prerelease or parsed < Version("1.0.0"):
            continue
        row = rows.get(version)
        if row is None:
            out.append(f"torch {version}: on PyPI, no row in torch.yaml")
            continue
        pythons = linux_pythons(files)
        if pythons != list(row.python):
            out.append(f"torch {version}: python {list(row.python)}, PyPI has {pythons}")
        uploaded = min(f["upload_time"][:10] for f in files)
        if uploaded != row.released:
            out.append(f"torch {version}: released {row.released}, PyPI upload {uploaded}")
        yanked = any(f.get("yanked") for f in files)
        if yanked != row.yanked:
            out.append(f"torch {version}: yanked {row.yanked}, PyPI says {yanked}")
    for version in rows:
        if version not in pypi["releases"]:
            out.append(f"torch {version}: in torch.yaml, not on PyPI")
    return out


def write_wheels(text: str) -> str:
    """torch.yaml text with every row's `wheels:` line (re)written from the rule."""
    import yaml

    rows = {str(r["torch"]): r for r in yaml.safe_load(text)["releases"]}
    out, current = [], None
    for line in text.splitlines():
        started = re.match(r'^  - torch: "([^"]+)"', line)
        if started:
            current = rows[started.group(1)]
        if current is not None and re.match(r"^    wheels:", line):
            continue
        out.append(line)
        if current is not None and re.match(r"^    pypi_cuda:", line):
            pypi = current.get("pypi_cuda")
            variants = ["cpu"] + [str(c) for c in current["cuda"]]
            pairs = []
            for variant in variants:
                key = "cpu" if variant == "cpu" else f'"{variant}"'
                where = location_for(current["torch"], variant, pypi and str(pypi))
                pairs.append(f"{key}: {where}")
            out.append("    wheels: {" + ", ".join(pairs) + "}")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare torch.yaml with PyPI")
    parser.add_argument("--json", help="a saved copy of https://pypi.org/pypi/torch/json")
    parser.add_argument("--cafile", help="CA bundle for a TLS proxy")
    parser.add_argument("--write-wheels", action="store_true", help="rewrite the wheels: lines")
    args = parser.parse_args()
    if args.write_wheels:
        TORCH_YAML.write_text(write_wheels(TORCH_YAML.read_text()))
    if args.check:
        problems = check(read_pypi(args.json, args.cafile))
        for line in problems:
            print(line)
        print(f"{len(problems)} disagreements with PyPI", file=sys.stderr)
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
