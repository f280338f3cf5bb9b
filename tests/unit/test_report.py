"""envkit.report on real bench outputs, made by running envkit/inside/bench.py with host torch."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from envkit import report
from envkit.errors import BadInput, EnvkitError

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "envkit" / "inside" / "bench.py"


def _run_once(tmp_path_factory, name: str, *args: str) -> dict:
    """A bench report, run once per session and cached in the session temp folder (test_bench.py
    stores its quick run under the same name, so whichever file runs first pays for it)."""
    pytest.importorskip("torch")
    folder = tmp_path_factory.getbasetemp() / name
    out = folder / "report.json"
    if out.exists():
        return json.loads(out.read_text())
    folder.mkdir(exist_ok=True)
    partial = folder / "partial.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args, "--out", str(partial)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    partial.rename(out)
    return json.loads(out.read_text())


@pytest.fixture(scope="session")
def quick(tmp_path_factory):
    return _run_once(tmp_path_factory, "bench-quick", "--quick", "--device", "cpu")


@pytest.fixture(scope="session")
def adam_convergence(tmp_path_factory):
    """A second, different real report: convergence only, with Adam."""
    return _run_once(
        tmp_path_factory,
        "bench-adam",
        "--quick",
        "--device",
        "cpu",
        "--parts",
        "convergence",
        "--optimizer",
        "adam",
    )


@pytest.mark.torch
def test_compare_a_report_with_itself_gives_unit_ratios(quick):
    rows = report.compare_bench(quick, quick)
    tput = [r for r in rows if r["kind"] == "throughput"]
    assert len(tput) == len(quick["throughput"])
    for row in tput:
        assert row["images_per_s"]["ratio"] == 1.0
        assert row["ms_per_step"]["ratio"] == 1.0
        assert row["peak_mem_mb"]["a"] is None and row["peak_mem_mb"]["ratio"] is None  # CPU
    conv = rows[-1]
    assert conv["kind"] == "convergence"
    assert conv["accuracy"] == {
        "a": quick["convergence"]["accuracy"],
        "b": quick["convergence"]["accuracy"],
        "ratio": 1.0,
    }


@pytest.mark.torch
def test_compare_two_different_runs(quick, adam_convergence):
    rows = report.compare_bench(quick, adam_convergence)
    tput = [r for r in rows if r["kind"] == "throughput"]
    # rows measured only in the first report stay, with the second side empty
    assert tput and all(r["images_per_s"]["b"] is None for r in tput)
    assert all(r["images_per_s"]["ratio"] is None for r in tput)
    conv = rows[-1]
    a, b = quick["convergence"], adam_convergence["convergence"]
    assert conv["accuracy"]["ratio"] == pytest.approx(b["accuracy"] / a["accuracy"], abs=1e-4)
    assert conv["seconds"]["ratio"] == pytest.approx(b["seconds"] / a["seconds"], abs=1e-4)

    text = report.render_compare(rows, "sgd", "adam")
    assert "img/s sgd" in text and "img/s adam" in text
    assert "accuracy" in text and "seconds" in text


@pytest.mark.torch
def test_compare_marks_out_of_memory_rows(quick):
    # The second report is the first with its largest fp32 batch turned into an OOM row, as the
    # bench writes it when the allocator fails.
    b = copy.deepcopy(quick)
    row = [r for r in b["throughput"] if r["precision"] == "fp32"][-1]
    row.update(images_per_s=None, ms_per_step=None, oom=True)
    rows = report.compare_bench(quick, b)
    match = [
        r
        for r in rows
        if r["kind"] == "throughput" and r["precision"] == "fp32" and r["batch"] == row["batch"]
    ][0]
    assert match["oom"] == {"a": False, "b": True}
    assert match["images_per_s"]["ratio"] is None
    assert "OOM" in report.render_compare(rows)


@pytest.mark.torch
def test_render_compare_columns_are_aligned(quick):
    text = report.render_compare(report.compare_bench(quick, quick))
    table = text.split("\n\n")[0].splitlines()
    header = table[0]
    starts = [header.index(h) for h in ("precision", "layout", "batch")]
    for line in table[1:]:
        for start in starts:
            assert line[start - 2 : start] == "  " and line[start] != " "
    assert "1.000x" in text


@pytest.mark.torch
def test_render_bench_summarises_a_real_report(quick):
    text = report.render_bench(quick)
    assert text.startswith("status: ok")
    assert f"accuracy {quick['convergence']['accuracy']:.4f}" in text
    assert f"torch {quick['env']['torch']}" in text
    for row in quick["throughput"]:
        assert row["precision"] in text
        assert f"{row['images_per_s']:.1f}" in text
    assert "largest batch that fits" in text


@pytest.mark.torch
def test_render_bench_of_a_failed_run(adam_convergence):
    failed = copy.deepcopy(adam_convergence)
    failed["status"] = "failed"
    failed["failed_checks"] = ["convergence.accuracy"]
    failed["convergence"]["passed"] = False
    text = report.render_bench(failed)
    assert "failed checks: convergence.accuracy" in text and "FAIL" in text


@pytest.mark.torch
def test_render_bench_shows_oom_and_error_rows_in_their_columns(quick):
    doc = copy.deepcopy(quick)
    good = doc["throughput"][0]
    doc["throughput"] += [
        dict(good, batch=4096, images_per_s=None, oom=True, error="CUDA out of memory."),
        dict(good, batch=8192, images_per_s=None, error="RuntimeError: cuDNN error: X\nmore"),
    ]
    text = report.render_bench(report.validate_bench(doc))
    oom_line = next(line for line in text.splitlines() if " 4096 " in line)
    err_line = next(line for line in text.splitlines() if " 8192 " in line)
    header = next(line for line in text.splitlines() if "img/s" in line)
    assert oom_line.index("OOM") == err_line.index("error") == header.index("img/s")
    assert "error in " + good["precision"] + " at batch 8192: RuntimeError: cuDNN error: X" in text


ROW = {
    "model": "resnet18",
    "precision": "fp32",
    "channels_last": False,
    "batch": 8,
    "images_per_s": 10.0,
    "ms_per_step": 800.0,
    "peak_mem_mb": None,
    "oom": False,
}


@pytest.mark.parametrize(
    "doc,problem",
    [
        ([], "expected a JSON object"),
        ({"status": "ok"}, "no 'schema'"),
        ({"schema": 99, "status": "ok"}, "schema 99"),
        ({"schema": 1, "status": "ok", "throughput": {}}, "not a list"),
        ({"schema": 1, "status": "ok", "throughput": [{"model": "x"}]}, "lacks precision"),
        ({"schema": 1, "status": "ok", "convergence": {"accuracy": 1}}, "convergence lacks"),
        ({"schema": 1, "status": "ok", "throughput": [ROW | {"batch": None}]}, "not a whole"),
        ({"schema": 1, "status": "ok", "throughput": [ROW | {"batch": "x"}]}, "not a whole"),
        ({"schema": 1, "status": "ok", "throughput": [ROW | {"model": 18}]}, "model is 18"),
    ],
)
def test_malformed_reports_are_bad_input(doc, problem):
    with pytest.raises(BadInput, match=problem) as info:
        report.compare_bench(doc, doc)
    assert info.value.fix


def test_load_bench_rejects_invalid_json(tmp_path):
    path = tmp_path / "bench.json"
    path.write_text("{not json")
    with pytest.raises(BadInput, match="invalid JSON"):
        report.load_bench(path)
    with pytest.raises(BadInput, match="cannot read"):
        report.load_bench(tmp_path / "absent.json")
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"schema": 1, "status": "caf\xe9"}')
    with pytest.raises(BadInput, match="cannot read"):
        report.load_bench(latin)


@pytest.mark.torch
def test_load_bench_reads_a_real_report(quick, tmp_path):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(quick))
    assert report.load_bench(path) == quick


@pytest.mark.torch
def test_plot_bench_writes_pngs(quick, tmp_path):
    pytest.importorskip("matplotlib")
    paths = report.plot_bench(quick, tmp_path / "plots")
    assert [p.name for p in paths] == ["throughput.png", "convergence.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.torch
def test_plot_bench_without_matplotlib_says_how_to_get_it(quick, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError) as info:
        report.plot_bench(quick, tmp_path)
    assert isinstance(info.value, EnvkitError)
    assert "matplotlib" in str(info.value) and "pip install" in info.value.fix
