"""envkit bench in a container built by envkit (CPU), and bench compare on real reports."""

from __future__ import annotations

import json
import os

import pytest
from conftest import CI_MATRIX, run_envkit

pytestmark = pytest.mark.docker


def test_quick_bench_in_the_cpu_image_and_compare_with_the_host(cpu_image, tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "results"
    ran = run_envkit(
        "--matrix",
        str(CI_MATRIX),
        "bench",
        "ci-cpu",
        "--quick",
        "--json",
        "--out",
        str(out),
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    doc = json.loads(ran.stdout)
    assert doc["status"] == "ok"
    assert doc["env"]["torch"].startswith("2.13.0") and doc["env"]["python"].startswith("3.11")
    assert doc["convergence"]["accuracy"] >= 0.95
    assert any(row["images_per_s"] for row in doc["throughput"])
    saved = out / "bench-ci-cpu.json"
    assert json.loads(saved.read_text())["status"] == "ok"
    assert saved.stat().st_uid == os.getuid()  # written by the container as the invoking user

    host = run_envkit("bench", "--host", "--quick", "--json", "--out", str(out), timeout=600)
    assert host.returncode == 0, host.stderr[-3000:]
    compared = run_envkit("bench", "compare", str(out / "bench-host.json"), str(saved), "--json")
    assert compared.returncode == 0, compared.stderr
    rows = json.loads(compared.stdout)
    assert rows and any(r.get("kind") == "convergence" for r in rows)
    text = run_envkit("bench", "compare", str(out / "bench-host.json"), str(saved))
    assert "bench-host.json" in text.stdout and "bench-ci-cpu.json" in text.stdout
