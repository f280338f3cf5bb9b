"""The benchmark: envkit bench NAME | --host | compare A.json B.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .. import bench_run, engine, report
from .options import echo_err, emit_json, handles_errors, image_for, loaded_matrix, tag_option


def _saved(path: Path, doc: dict) -> bool:
    """Whether `path` holds this run's report (bench.py says on stderr when it could not
    write it; a file there may be an earlier run's)."""
    try:
        return json.loads(path.read_text(encoding="utf-8")) == doc
    except (OSError, ValueError):
        return False


def _compare(a_path: str, b_path: str, as_json: bool) -> None:
    rows = report.compare_files(a_path, b_path)
    if as_json:
        emit_json(rows)
    else:
        click.echo(report.render_compare(rows, Path(a_path).name, Path(b_path).name))


@click.command(
    epilog="""\b
Exit codes: 0 the report's status is ok; 1 it is failed, no_gpu or unsupported_arch, or the
benchmark printed no report or ran past its time limit (1 hour); 2 bad usage, or a report
given to compare that is missing or malformed.

\b
  envkit bench NAME [--quick]        in NAME's built image (GPUs attached when available)
  envkit bench --host [--quick]      with this machine's Python and torch
  envkit bench compare A.json B.json side by side, with ratios B/A""",
    context_settings={"ignore_unknown_options": False},
)
@click.argument("args", nargs=-1)
@click.option("--host", "on_host", is_flag=True, help="Run on this host's Python and torch.")
@click.option("--quick", is_flag=True, help="A CI-sized run (under 2 minutes on 2 CPU cores).")
@click.option(
    "--out",
    "out_dir",
    default="envkit-bench",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the JSON report and the PNG plots (plots need matplotlib).",
)
@click.option("--gpus", default="auto", show_default=True, help="GPUs to attach (as for run).")
@tag_option
@click.option("--json", "as_json", is_flag=True, help="Print the report (or comparison) as JSON.")
@click.pass_context
@handles_errors
def bench(ctx, args, on_host, quick, out_dir, gpus, tag_prefix, as_json):
    """Train and time the bundled benchmark: LeNet-5 with batch norm on real handwritten digits
    (>= 95% accuracy gate), then a ResNet-18 throughput sweep over batch sizes in fp32 and
    mixed precision (images/s, ms/step, peak memory, TFLOP/s, MFU)."""
    request = bench_run.read_request(args, on_host=on_host)
    if request.compare:
        _compare(*request.compare, as_json)
        return
    if request.entry is None:
        click.echo("running the benchmark on this host ...", err=True)
        doc = bench_run.on_host(out_dir, quick=quick, on_progress=echo_err)
        name = "host"
    else:
        image, name = image_for(ctx, request.entry, tag_prefix)
        engine.require_built(image, name)
        devices = bench_run.devices_for(gpus, loaded_matrix(ctx).get(name))
        if devices.note:
            click.secho(f"note: {devices.note}", fg="yellow", err=True)
        click.echo(f"running the benchmark in {image} (--device {devices.device}) ...", err=True)
        doc = bench_run.in_image(
            image,
            name,
            out_dir,
            quick=quick,
            gpus=devices.gpus,
            device=devices.device,
            on_progress=echo_err,
        )
    saved = out_dir / f"bench-{name}.json"
    if _saved(saved, doc):
        click.echo(f"report: {saved}", err=True)
    else:  # the results are not lost: the whole report goes to stdout
        click.secho(
            f"report: not saved to {saved} (the reason is above); it is on stdout as JSON",
            fg="yellow",
            err=True,
        )
        as_json = True
    try:
        for path in report.plot_bench(doc, out_dir, prefix=f"bench-{name}-"):
            click.echo(f"plot: {path}", err=True)
    except report.PlottingUnavailable as exc:
        click.echo(f"note: no plots ({exc.fix})", err=True)
    if as_json:
        emit_json(doc)
    else:
        click.echo(report.render_bench(doc))
    sys.exit(bench_run.exit_code(doc))
