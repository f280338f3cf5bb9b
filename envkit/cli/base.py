"""envkit base: a local base image for a Python, made without a registry."""

from __future__ import annotations

from pathlib import Path

import click

from .options import EXIT_CODES, echo_err, emit_json, handles_errors


@click.command(
    epilog=EXIT_CODES
    + """

\b
  envkit base 3.11                                  # debootstrap bookworm -> envkit-base:bookworm
  envkit base 3.8 --from-prefix ~/.pyenv/versions/3.8.18   # -> envkit-base:py3.8
Debootstrap needs root and the debootstrap package; a copied CPython needs a host glibc no
newer than bookworm's. Mirror: ENVKIT_DEBIAN_MIRROR (default http://deb.debian.org/debian)."""
)
@click.argument("python", metavar="X.Y")
@click.option(
    "--from-prefix",
    "prefix",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="A CPython installation on this host to copy onto the Debian base (pyenv's, or "
    "./configure --prefix=DIR --enable-shared && make install).",
)
@click.option(
    "--tag", "image", metavar="NAME", help="Image name [default: envkit-base:RELEASE or :pyX.Y]."
)
@click.option("--rebuild", is_flag=True, help="Make the image again even when it exists.")
@click.option(
    "--no-record", is_flag=True, help="Do not record the image in the user's config file."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handles_errors
def base(python, prefix, image, rebuild, no_record, as_json):
    """Make a local base image for Python X.Y without a registry, and remember it as that
    Python's base image (setting base_images.X.Y)."""
    from .. import base as bases

    result = bases.make_base(
        python,
        prefix=prefix,
        image=image,
        rebuild=rebuild,
        record=not no_record,
        on_line=echo_err,
    )
    if as_json:
        emit_json(result.to_dict())
        return
    click.secho(f"{result.image}: {result.version_line}", fg="green", err=True)
    if result.recorded_as:
        click.echo(
            f"recorded in {result.config_file}: {result.recorded_as} = {result.image}", err=True
        )
    click.echo(result.image)
