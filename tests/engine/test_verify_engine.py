"""envkit verify on a real engine: a small CPU entry gives a record that validates; a baseline
that was faster than this run is flagged as a regression with exit 1."""

from __future__ import annotations

import json

import pytest
from conftest import CI_MATRIX, cpu_source, run_envkit

from envkit import records

pytestmark = pytest.mark.docker


def test_verify_writes_a_valid_record_and_flags_a_forced_regression(
    cpu_image, cpu_wheelhouse, tmp_path
):
    store = tmp_path / "records"
    args = ["--matrix", str(CI_MATRIX), "verify", "ci-cpu", "--quick", "--store", str(store)]
    first = run_envkit(*args, *cpu_source(cpu_wheelhouse), "--json", timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    made = json.loads(first.stdout)
    files = list(store.glob("*.json"))
    assert [f.stem for f in files] == [made["id"]]
    saved = records.read(files[0])  # validates against the shipped schema
    assert saved["status"] == "pass" and saved["entry"]["name"] == "ci-cpu"
    assert saved["image"]["id"].startswith("sha256:")
    assert saved["image"]["labels"]["io.envkit.min_driver"] == "none"
    assert saved["host"]["kind"].startswith("cpu: ")
    assert saved["bench"]["report"]["status"] == "ok"
    assert any(c["id"] == "requires" for c in saved["doctor"]["checks"])

    # A baseline ten times faster with quiet windows: this machine cannot match it.
    baseline = json.loads(json.dumps(saved))
    for row in baseline["bench"]["report"]["throughput"]:
        if row.get("images_per_s"):
            row["images_per_s"] *= 10
            row["spread"] = 0.01
    baseline["id"] = saved["id"][:-8] + "00000000"
    records.save(baseline, store)
    second = run_envkit(
        *args, *cpu_source(cpu_wheelhouse), "--baseline", baseline["id"], "--json", timeout=900
    )
    assert second.returncode == 1, second.stderr[-3000:]
    flagged = json.loads(second.stdout)
    assert flagged["status"] == "fail" and "regression" in flagged["failed"]
    assert flagged["baseline"] == baseline["id"]
    found = [f for f in flagged["regressions"] if f["check"].startswith("throughput.")]
    assert found and found[0]["baseline"] > found[0]["value"]
    listed = run_envkit("records", "--store", str(store), "--entry", "ci-cpu")
    assert listed.returncode == 0 and flagged["id"] in listed.stdout
