"""Reading, comparing, rendering and plotting bench reports (what envkit/inside/bench.py prints).

Host-side and pure: no torch and no Docker here, so `envkit bench compare` works anywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

from envkit import files
from envkit.errors import BadInput, EnvkitError
from envkit.gpu.host import sm_name
from envkit.table import format_table

SUPPORTED_SCHEMAS = (1,)
ROW_KEY = ("model", "precision", "channels_last", "batch")
THROUGHPUT_METRICS = ("images_per_s", "ms_per_step", "peak_mem_mb")
CONVERGENCE_METRICS = ("accuracy", "seconds")
_ROW_FIELDS = ROW_KEY + THROUGHPUT_METRICS + ("oom",)


class PlottingUnavailable(EnvkitError, ImportError):
    """matplotlib is not installed; plots are an optional extra."""


def _bad(source: str, problem: str) -> BadInput:
    return BadInput(
        f"{source}: not a usable bench report: {problem}",
        "pass the JSON that `envkit bench` (or `python bench.py`) wrote, unmodified",
    )


def validate_bench(doc, source: str = "bench report") -> dict:
    """Return `doc` if it has the shape of a bench report; raise BadInput naming the problem."""
    if not isinstance(doc, dict):
        raise _bad(source, f"expected a JSON object, got {type(doc).__name__}")
    if "schema" not in doc:
        raise _bad(source, "no 'schema' field")
    if doc["schema"] not in SUPPORTED_SCHEMAS:
        raise _bad(source, f"schema {doc['schema']!r} is not one of {list(SUPPORTED_SCHEMAS)}")
    if not isinstance(doc.get("status"), str):
        raise _bad(source, "no 'status' string")
    throughput = doc.get("throughput", [])
    if not isinstance(throughput, list):
        raise _bad(source, "'throughput' is not a list")
    for i, row in enumerate(throughput):
        if not isinstance(row, dict):
            raise _bad(source, f"throughput[{i}] is not an object")
        missing = [k for k in _ROW_FIELDS if k not in row]
        if missing:
            raise _bad(source, f"throughput[{i}] lacks {', '.join(missing)}")
        if not isinstance(row["batch"], int) or isinstance(row["batch"], bool):
            raise _bad(source, f"throughput[{i}].batch is {row['batch']!r}, not a whole number")
        for key in ("model", "precision"):
            if not isinstance(row[key], str):
                raise _bad(source, f"throughput[{i}].{key} is {row[key]!r}, not text")
    conv = doc.get("convergence")
    if conv is not None:
        if not isinstance(conv, dict):
            raise _bad(source, "'convergence' is not an object")
        missing = [k for k in ("accuracy", "seconds", "losses", "threshold") if k not in conv]
        if missing:
            raise _bad(source, f"convergence lacks {', '.join(missing)}")
        if not isinstance(conv["losses"], list):
            raise _bad(source, "convergence.losses is not a list")
    return doc


def load_bench(path) -> dict:
    """Read and validate a bench report file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise BadInput(f"cannot read {path}: {reason}", "check the path") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _bad(str(path), f"invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    return validate_bench(doc, str(path))


def _pair(a, b) -> dict:
    ratio = None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a:
        ratio = round(b / a, 4)
    return {"a": a, "b": b, "ratio": ratio}


def compare_bench(a: dict, b: dict) -> list[dict]:
    """Rows pairing two reports: one per throughput row key, then one for convergence.

    Each row has kind ("throughput" | "convergence"), the key fields (model, precision,
    channels_last, batch), and per metric a {"a", "b", "ratio"} dict where ratio is b/a (None
    when either side is missing, failed or zero). Throughput rows present on one side only are
    kept, with the other side None, so a configuration that stopped fitting in memory shows.
    """
    validate_bench(a, "first report")
    validate_bench(b, "second report")

    def index(doc):
        return {tuple(row[k] for k in ROW_KEY): row for row in doc.get("throughput", [])}

    ia, ib = index(a), index(b)
    keys = list(ia)
    keys += [k for k in ib if k not in ia]
    rows = []
    for key in sorted(keys, key=lambda k: (str(k[0]), str(k[1]), bool(k[2]), int(k[3]))):
        ra, rb = ia.get(key, {}), ib.get(key, {})
        row = {"kind": "throughput", **dict(zip(ROW_KEY, key))}
        for metric in THROUGHPUT_METRICS:
            row[metric] = _pair(ra.get(metric), rb.get(metric))
        row["oom"] = {"a": ra.get("oom"), "b": rb.get("oom")}
        rows.append(row)
    ca, cb = a.get("convergence") or {}, b.get("convergence") or {}
    if ca or cb:
        row = {
            "kind": "convergence",
            "model": ca.get("model") or cb.get("model"),
            "precision": None,
            "channels_last": None,
            "batch": ca.get("batch") or cb.get("batch"),
        }
        for metric in CONVERGENCE_METRICS:
            row[metric] = _pair(ca.get(metric), cb.get(metric))
        row["passed"] = {"a": ca.get("passed"), "b": cb.get("passed")}
        rows.append(row)
    return rows


def compare_files(a_path, b_path) -> list[dict]:
    """compare_bench rows for two report files (`envkit bench compare A.json B.json`)."""
    return compare_bench(load_bench(a_path), load_bench(b_path))


def _num(value, digits: int = 1):
    if value is None:
        return None
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _ratio(value):
    return None if value is None else f"{value:.3f}x"


def render_compare(rows: list[dict], a_label: str = "A", b_label: str = "B") -> str:
    """An aligned text table of compare_bench rows (ratio = B/A)."""
    lines = []
    tput = [r for r in rows if r["kind"] == "throughput"]
    if tput:
        headers = ["model", "precision", "layout", "batch"]
        for short in ("img/s", "ms/step", "mem MB"):
            headers += [f"{short} {a_label}", f"{short} {b_label}", "B/A"]
        table = []
        for r in tput:
            cells = [
                r["model"],
                r["precision"],
                "NHWC" if r["channels_last"] else "NCHW",
                r["batch"],
            ]
            for metric in THROUGHPUT_METRICS:
                pair = r[metric]
                a, b = pair["a"], pair["b"]
                if r["oom"]["a"]:
                    a = "OOM"
                if r["oom"]["b"]:
                    b = "OOM"
                cells += [_num(a), _num(b), _ratio(pair["ratio"])]
            table.append(cells)
        lines.append(format_table(headers, table))
    for r in rows:
        if r["kind"] != "convergence":
            continue
        acc, sec = r["accuracy"], r["seconds"]
        if lines:
            lines.append("")
        lines.append(
            format_table(
                ["convergence", a_label, b_label, "B/A"],
                [
                    ["accuracy", _num(acc["a"], 4), _num(acc["b"], 4), _ratio(acc["ratio"])],
                    ["seconds", _num(sec["a"]), _num(sec["b"]), _ratio(sec["ratio"])],
                    ["passed", r["passed"]["a"], r["passed"]["b"], None],
                ],
            )
        )
    return "\n".join(lines) if lines else "(nothing to compare)"


def render_bench(doc: dict) -> str:
    """A human summary of one bench report."""
    validate_bench(doc)
    env = doc.get("env") or {}
    out = [f"status: {doc['status']}"]
    if doc.get("failed_checks"):
        out.append("failed checks: " + ", ".join(doc["failed_checks"]))
    if doc.get("error"):
        out.append("error: " + str(doc["error"]))
    if env:
        gpu = env.get("gpu") or "none"
        if env.get("capability"):
            gpu += f" ({sm_name(env['capability'])})"
        out.append(
            f"torch {env.get('torch')}  cuda {env.get('cuda') or '-'}"
            f"  cudnn {env.get('cudnn') or '-'}  python {env.get('python')}"
            f"  device {env.get('device')}"
        )
        out.append(f"gpu {gpu}  driver {env.get('driver') or '-'}  cpus {env.get('cpu_count')}")
    conv = doc.get("convergence")
    if conv:
        verdict = "pass" if conv.get("passed") else "FAIL"
        out.append("")
        out.append(
            f"convergence ({conv.get('model', 'lenet5_bn')}): accuracy {conv['accuracy']:.4f} "
            f"(threshold {conv['threshold']}) {verdict}; {conv.get('epochs')} epochs in "
            f"{conv['seconds']:.1f} s; final loss {conv['losses'][-1] if conv['losses'] else '-'}"
        )
        step = conv.get("gpu_cpu_step")
        if step:
            out.append(
                "gpu/cpu one-step agreement: loss diff {:.2e} (tol {:.0e}), param diff {:.2e} "
                "(tol {:.0e}) {}".format(
                    step["loss_max_abs_diff"],
                    step["loss_tolerance"],
                    step["param_max_abs_diff"],
                    step["param_tolerance"],
                    "pass" if step["passed"] else "FAIL",
                )
            )
    rows = doc.get("throughput") or []
    if rows:
        out.append("")
        table = []
        for r in rows:
            if r["oom"] or r.get("error"):
                table.append(
                    [r["model"], r["precision"], _layout(r), r["batch"]]
                    + ["OOM" if r["oom"] else "error"]
                    + [None] * 5
                )
                continue
            table.append(
                [
                    r["model"],
                    r["precision"],
                    _layout(r),
                    r["batch"],
                    _num(r["images_per_s"]),
                    _num(r["ms_per_step"], 2),
                    _pct(r.get("spread")) + (" noisy" if r.get("noisy") else ""),
                    _num(r["peak_mem_mb"]),
                    _num(r.get("tflops"), 2),
                    _pct(r.get("mfu")) if r.get("mfu") is not None else None,
                ]
            )
        out.append(
            format_table(
                [
                    "model",
                    "precision",
                    "layout",
                    "batch",
                    "img/s",
                    "ms/step",
                    "spread",
                    "mem MB",
                    "TFLOP/s",
                    "MFU",
                ],
                table,
            )
        )
        for r in rows:
            if r.get("error") and not r["oom"]:
                first = str(r["error"]).splitlines()[0] if str(r["error"]).strip() else "?"
                out.append(f"error in {r['precision']} at batch {r['batch']}: {first}")
        biggest = doc.get("throughput_max_batch") or {}
        if biggest:
            out.append(
                "largest batch that fits: "
                + ", ".join(f"{p} {b if b is not None else 'none'}" for p, b in biggest.items())
            )
    for note in doc.get("notes") or []:
        out.append("note: " + note)
    if doc.get("seconds_total") is not None:
        out.append(f"total {doc['seconds_total']:.1f} s")
    return "\n".join(out)


def _layout(row) -> str:
    return "NHWC" if row.get("channels_last") else "NCHW"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def plot_bench(doc: dict, out_dir, prefix: str = "") -> list[Path]:
    """Write PREFIXthroughput.png (images/s against batch, one line per precision and layout)
    and, when the report has a convergence part, PREFIXconvergence.png (loss per epoch,
    accuracy in the title). Returns the paths written."""
    validate_bench(doc)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise PlottingUnavailable(
            "plotting needs matplotlib, which is not installed",
            "pip install 'envkit[plots]' (or pip install matplotlib)",
        ) from exc
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = doc.get("env") or {}
    where = env.get("gpu") or f"CPU ({env.get('cpu_count')} cores)"
    written = []

    rows = [r for r in doc.get("throughput") or [] if not r["oom"] and r["images_per_s"]]
    if rows:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        series = {}
        for r in rows:
            series.setdefault((r["model"], r["precision"], _layout(r)), []).append(r)
        for (model, precision, layout), points in sorted(series.items()):
            points.sort(key=lambda r: r["batch"])
            ax.plot(
                [p["batch"] for p in points],
                [p["images_per_s"] for p in points],
                marker="o",
                label=f"{model} {precision} {layout}",
            )
        ooms = [r for r in doc["throughput"] if r["oom"]]
        for r in ooms:
            ax.axvline(r["batch"], color="grey", linestyle=":", linewidth=1)
        ax.set_xscale("log", base=2)
        ticks = sorted({r["batch"] for r in doc["throughput"]})
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("batch size")
        ax.set_ylabel("images / s (median of windows)")
        ax.set_title(f"Training throughput, {where}, torch {env.get('torch')}")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out / f"{prefix}throughput.png"
        _save(fig, path)
        plt.close(fig)
        written.append(path)

    conv = doc.get("convergence")
    if conv and conv.get("losses"):
        fig, ax = plt.subplots(figsize=(7, 4.5))
        epochs = list(range(1, len(conv["losses"]) + 1))
        ax.plot(epochs, conv["losses"], marker=".", label="training loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("mean cross-entropy")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        verdict = "pass" if conv.get("passed") else "FAIL"
        ax.set_title(
            f"{conv.get('model', 'lenet5_bn')} on digits: test accuracy {conv['accuracy']:.4f} "
            f"(gate {conv['threshold']}, {verdict}), {where}"
        )
        ax.legend()
        fig.tight_layout()
        path = out / f"{prefix}convergence.png"
        _save(fig, path)
        plt.close(fig)
        written.append(path)
    return written


def _save(fig, path: Path) -> None:
    """A plot's PNG written whole or not at all (envkit.files), never through a link."""
    import io

    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120)
    files.write_file(path, png.getvalue(), fix="pass another --out folder")
