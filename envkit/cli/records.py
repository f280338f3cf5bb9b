"""envkit records [list|show|import|export] and envkit report: the validation records."""

from __future__ import annotations

from pathlib import Path

import click

from .. import records
from .options import emit_json, handles_errors

STORE_HELP = "Record folder (default: $XDG_DATA_HOME/envkit/records)."


def _store(ctx: click.Context) -> Path | None:
    return (ctx.find_object(dict) or {}).get("records_store")


@click.group(
    invoke_without_command=True,
    epilog="""\b
  envkit records [--entry NAME] [--gpu TEXT] [--since YYYY-MM-DD] [--until YYYY-MM-DD]
  envkit records show ID            one record in words (--json: the file)
  envkit records import DIR         add the records under DIR (e.g. CI artifacts)
  envkit records export [DIR]       copy them out (default: ./envkit-records)
Exit codes: 0 ok; 2 an unknown id, or a file that is not a valid record.""",
)
@click.option("--entry", help="Only this entry's records.")
@click.option("--gpu", help="Only hosts whose kind contains this text (e.g. H100, cpu).")
@click.option("--since", metavar="DATE", help="Finished on or after this day (YYYY-MM-DD).")
@click.option("--until", metavar="DATE", help="Finished on or before this day.")
@click.option(
    "--store", type=click.Path(file_okay=False, path_type=Path), help=STORE_HELP, default=None
)
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
@click.pass_context
@handles_errors
def records_cmd(ctx, entry, gpu, since, until, store, as_json):
    """List the validation records that `envkit verify` wrote, newest last; filter by entry,
    host kind or date."""
    ctx.ensure_object(dict)
    ctx.obj["records_store"] = store
    if ctx.invoked_subcommand is not None:
        return
    chosen = records.select(records.load_all(store), entry=entry, gpu=gpu, since=since, until=until)
    if as_json:
        emit_json(chosen)
    elif chosen:
        click.echo(records.render_list(chosen))
    else:
        click.echo(f"no records in {store or records.records_dir()}", err=True)


@records_cmd.command("show")
@click.argument("record_id")
@click.option("--json", "as_json", is_flag=True, help="Print the record's JSON.")
@click.pass_context
@handles_errors
def show(ctx, record_id, as_json):
    """One record: what ran where, the doctor, the bench and the regressions."""
    record = records.find(record_id, _store(ctx))
    if as_json:
        emit_json(record)
    else:
        click.echo(records.render_record(record))


@records_cmd.command("import")
@click.argument("source", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.pass_context
@handles_errors
def import_cmd(ctx, source):
    """Add every record found under SOURCE (searched recursively) to the store."""
    added, known = records.import_folder(source, _store(ctx))
    for record_id in added:
        click.echo(f"imported {record_id}")
    click.echo(f"{len(added)} imported, {len(known)} already there", err=True)


@records_cmd.command("export")
@click.argument("target", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--entry", help="Only this entry's records.")
@click.pass_context
@handles_errors
def export_cmd(ctx, target, entry):
    """Copy the records (or one entry's) into TARGET as ID.json files."""
    target = target or Path("envkit-records")
    chosen = records.select(records.load_all(_store(ctx)), entry=entry)
    paths = records.export(target, chosen)
    click.echo(f"{len(paths)} records written to {target}", err=True)


@records_cmd.command("add-host")
@click.argument("doctor_json", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.argument("bench_json", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--quick", is_flag=True, help="The bench report is from a --quick run.")
@click.option("--source", default="gpu-evidence", show_default=True)
@click.pass_context
@handles_errors
def add_host(ctx, doctor_json, bench_json, quick, source):
    """Make a record of a run on this host's own Python from `envkit doctor --host --json` and
    a bench report (what scripts/gpu-evidence.sh writes), compared with the last good one."""
    import json

    from .. import report
    from .. import verify as verifier

    doctor_doc = json.loads(doctor_json.read_text(encoding="utf-8"))
    bench_doc = report.load_bench(bench_json)
    record = verifier.host_record(doctor_doc, bench_doc, source=source, quick=quick)
    store = _store(ctx)
    record = verifier.finish(record, verifier.VerifyOptions(store=store, source=source))
    click.echo(records.render_record(record))
    ctx.exit(verifier.exit_code(record))


@click.command(
    epilog="""\b
  envkit report                       envkit-report/index.html from the record store
  envkit report --records docs/records --out docs/records
The page is self-contained (inline CSS, plots as data: URIs); it needs no network."""
)
@click.option(
    "--records",
    "source",
    type=click.Path(file_okay=False, path_type=Path),
    help="Read the records from this folder instead of the store.",
)
@click.option(
    "--out",
    "out_dir",
    default="envkit-report",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for index.html.",
)
@click.option("--title", default="envkit validation records", show_default=True)
@handles_errors
def report_cmd(source, out_dir, title):
    """Write one self-contained HTML page of the validation records: a grid of entries x host
    kinds, each record's details and bench plots, and the regressions."""
    from .. import report_html

    found = records.load_all(source)
    path = report_html.write_report(found, out_dir, title=title)
    click.echo(f"report: {path} ({len(found)} records)")
