"""envkit verify NAME | .: build (or reuse), doctor, bench and the project's test; one record."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import build, records
from .. import verify as verifier
from ..errors import BadInput
from .options import (
    EXIT_CODES,
    build_options,
    catch_interrupts,
    echo_err,
    emit_json,
    handles_errors,
    loaded_matrix,
)


@click.command(
    epilog=EXIT_CODES
    + """

\b
  envkit verify torch1.4-cuda10 --quick     build or reuse, doctor, quick bench: one record
  envkit verify .                           the project here, and its envkit.yaml `test:`
  envkit verify NAME --baseline ID          compare with that record instead of the last good
Records: $XDG_DATA_HOME/envkit/records (default ~/.local/share/envkit/records); see
`envkit records`. A regression (accuracy under the gate, throughput or convergence time
worse than the baseline beyond the measured noise, a doctor check that newly fails) exits 1."""
)
@click.argument("name")
@click.option("--quick", is_flag=True, help="The CI-sized bench (15 epochs, a small sweep).")
@click.option("--gpus", default="auto", show_default=True, help="GPUs to attach (as for run).")
@click.option(
    "--allow-cpu",
    is_flag=True,
    help="A CUDA entry on a host without usable GPUs: GPU-only doctor failures warn.",
)
@click.option("--no-test", is_flag=True, help="Skip the project's own test command.")
@click.option("--baseline", metavar="ID", help="Compare with this record (default: last good).")
@click.option("--source", default="local", show_default=True, help="Where this run happens.")
@click.option(
    "--store",
    type=click.Path(file_okay=False, path_type=Path),
    help="Record folder instead of the user data folder.",
)
@click.option("--tag", "tag_prefix", default="envkit", show_default=True, help="Tag prefix.")
@build_options
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.pass_context
@handles_errors
def verify(
    ctx,
    name,
    quick,
    gpus,
    allow_cpu,
    no_test,
    baseline,
    source,
    store,
    tag_prefix,
    as_json,
    **settings,
):
    """Prove an entry's image on this host and keep the proof: build (or reuse), doctor, bench
    and the project's own test, written as one record and compared with the last good one."""
    catch_interrupts(ctx)
    project = None
    if name == ".":
        from ..project import PROJECT_FILE, load_project

        project = load_project(Path.cwd())
        if project is None:
            raise BadInput(
                f"no {PROJECT_FILE} in {Path.cwd()}",
                "write one with `envkit init`, or name an entry",
            )
        name = project.entry
    loaded = loaded_matrix(ctx)
    entry = loaded.get(name)
    verifier.check_baseline_folder(store)
    build_settings = build.BuildOptions(tag_prefix=tag_prefix, **settings)
    build.check_options(build_settings)
    options = verifier.VerifyOptions(
        quick=quick,
        gpus=gpus,
        allow_cpu=allow_cpu,
        run_tests=not no_test,
        baseline=baseline,
        source=source,
        store=store,
    )
    record = verifier.verify(
        entry,
        list(loaded.entries),
        build_settings,
        options,
        project=project,
        on_progress=echo_err,
        quiet_stdout=as_json,
    )
    folder = store or records.records_dir()
    click.echo(f"record: {folder / (record['id'] + records.RECORD_SUFFIX)}", err=True)
    if as_json:
        emit_json(record)
    else:
        click.echo(records.render_record(record))
    sys.exit(verifier.exit_code(record))
