"""envkit config: the effective build settings and where each comes from; set and unset them."""

from __future__ import annotations

import click

from .. import settings
from ..table import format_table
from .options import EXIT_CODES, effective_settings, emit_json, handles_errors

SOURCES = """\b
Where a setting comes from, strongest first:
  1. the command-line option (--base-image, --ca-cert, --index-url, --extra-index-url,
     --wheelhouse, --registry, --tag)
  2. the environment: ENVKIT_BASE_IMAGE, ENVKIT_BASE_IMAGES (3.8=REF,3.11=REF),
     ENVKIT_CA_CERT, ENVKIT_INDEX_URL, ENVKIT_EXTRA_INDEX_URL, ENVKIT_WHEELHOUSE,
     ENVKIT_REGISTRY, ENVKIT_TAG_PREFIX
  3. settings: in this folder's envkit.yaml
  4. the user's config file: $ENVKIT_CONFIG, else $XDG_CONFIG_HOME/envkit/config.toml
     (~/.config/envkit/config.toml)
  5. envkit's default (tag_prefix envkit; the others unset)
A per-Python base image (base_images.3.8) beats base_image set in the same place or a weaker one."""


@click.group(invoke_without_command=True, epilog=SOURCES + "\n\n" + EXIT_CODES, name="config")
@click.option("--json", "as_json", is_flag=True, help="Print the settings as JSON.")
@click.pass_context
@handles_errors
def config(ctx, as_json):
    """Show each build setting's effective value and where it comes from (option, env var,
    envkit.yaml, config file or default); `envkit config set NAME VALUE` remembers one."""
    if ctx.invoked_subcommand is not None:
        return
    rows = effective_settings(ctx).rows()
    path = settings.config_path()
    if as_json:
        emit_json({"config_file": str(path), "settings": rows})
        return
    click.echo(
        format_table(
            ["SETTING", "VALUE", "ORIGIN"],
            [[row["name"], row["value"] or "-", row["origin"]] for row in rows],
        )
    )
    click.echo(f"config file: {path}" + ("" if path.exists() else " (none yet)"), err=True)


@config.command("set", epilog=EXIT_CODES)
@click.argument("name")
@click.argument("value")
@handles_errors
def set_cmd(name, value):
    """Remember a setting in the user's config file: envkit config set base_images.3.8 REF."""
    path = settings.set_in_config(settings.config_path(), name, value)
    click.echo(f"{path}: {name} = {settings.redact(value)}")


@config.command("unset", epilog=EXIT_CODES)
@click.argument("name")
@handles_errors
def unset_cmd(name):
    """Forget a setting in the user's config file."""
    path = settings.config_path()
    if not path.exists():
        click.echo(f"{path} does not exist: nothing to unset", err=True)
        return
    settings.set_in_config(path, name, None)
    click.echo(f"{path}: {name} removed")
