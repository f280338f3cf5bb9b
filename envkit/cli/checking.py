"""Checking a host and an image: envkit doctor."""

from __future__ import annotations

import sys

import click

from .. import doctor as diagnosis
from ..errors import BadInput
from .options import handles_errors, loaded_matrix, tag_option


@click.command(
    epilog="""\b
Exit codes:
  0  nothing failed (warnings allowed)
  1  at least one check failed
  2  bad usage or input"""
)
@click.argument("name", required=False)
@click.option(
    "--host",
    "host_probe",
    is_flag=True,
    help="Run the probe on this machine's own Python instead of in a container "
    "(for machines without Docker).",
)
@tag_option
@click.option(
    "--static",
    "static_only",
    is_flag=True,
    help="Only the checks that run nothing: this host's driver and GPUs against NAME's CUDA "
    "and GPU architectures.",
)
@click.option(
    "--allow-cpu",
    is_flag=True,
    help="A CPU-only result is acceptable: report missing GPUs as warnings.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object: ok, checks[{id, status, detail, fix}], ...",
)
@click.pass_context
@handles_errors
def doctor(ctx, name, host_probe, tag_prefix, static_only, allow_cpu, as_json):
    """Check that this host (and NAME's image) can really use the GPU, with a fix for each
    problem: engine, GPU runtime, driver, GPUs, /dev/shm; for NAME also the driver's CUDA,
    the build's GPU architectures, and a probe run inside the image (real kernels on every
    GPU, DataLoader workers, versions against the matrix)."""
    if host_probe and static_only:
        raise BadInput(
            "--host runs the probe and --static runs nothing: pick one",
            "--static predicts from nvidia-smi alone; --host also runs torch on this machine",
        )
    loaded = loaded_matrix(ctx) if name or not host_probe else None
    entry = loaded.get(name) if name else None
    report = diagnosis.run_doctor(
        entry,
        host_probe=host_probe,
        all_entries=loaded.entries if loaded else (),
        image=f"{tag_prefix}/{entry.name}:latest" if entry else None,
        allow_cpu=allow_cpu,
        static_only=static_only,
    )
    click.echo(report.to_json() if as_json else report.to_text())
    sys.exit(0 if report.ok else 1)
