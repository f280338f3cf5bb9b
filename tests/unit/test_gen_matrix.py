"""The shipped matrix is what the facts generate, and covers what users need."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from packaging.version import Version

from envkit import facts, matrix

REPO = Path(__file__).resolve().parents[2]


def test_shipped_matrix_is_the_generated_one():
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen_matrix.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == (REPO / "matrix.yaml").read_text().strip(), (
        "matrix.yaml is stale: python scripts/gen_matrix.py > matrix.yaml"
    )


def test_every_minor_has_cpu_oldest_newest_and_pypi_variants():
    entries = matrix.load().entries
    minors = {".".join(r.torch.split(".")[:2]) for r in facts.torch_releases()}
    assert {"1.0", "1.4", "1.13", "2.0", "2.15"} <= minors
    for minor in minors:
        mine = [
            e
            for e in entries
            if e.flavour == "runtime" and ".".join(e.torch.split(".")[:2]) == minor
        ]
        release = max(
            (r for r in facts.torch_releases() if r.torch.startswith(minor + ".")),
            key=lambda r: Version(r.torch),
        )
        cudas = {e.cuda for e in mine}
        assert None in cudas, f"{minor}: no CPU entry"
        assert {release.cuda[0], release.cuda[-1]} <= cudas, minor
        if release.pypi_cuda:
            assert release.pypi_cuda in cudas, minor
        assert all(e.torch == release.torch for e in mine), "the newest patch is used"
