"""envkit bake: the matrix as a docker-bake.json file, one target per entry, for `buildx bake`."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from . import build, dockerfile, files
from .errors import BadInput, EngineUnavailable, make_folder
from .matrix import Entry

BAKE_FILE = "docker-bake.json"
# The secrets a bake file names live in envkit's cache, never beside it (where `git add .`
# would commit them): the CA bundle and, per target with index credentials, its settings.
CA_FILE = "ca.pem"
INDEX_FILE = "index-{target}.sh"
# An empty folder beside the bake file: the build context when there is no wheelhouse.
EMPTY_CONTEXT = ".envkit-context"
_TARGET = re.compile(r"[^A-Za-z0-9_-]")


def literal(text: str) -> str:
    """Text bake keeps as is: its strings are HCL templates, where ${ and %{ interpolate."""
    return text.replace("${", "$${").replace("%{", "%%{")


def target_name(entry: Entry) -> str:
    """The entry's bake target name: bake allows only letters, digits, '_' and '-'."""
    return _TARGET.sub("_", entry.name)


def engine_base_ids() -> Callable[[str], str | None]:
    """A lookup of base image ids (so tags match `envkit build`'s) that asks the engine once a
    reference, and not again after it failed to answer: bake files are written without one."""
    from . import engine

    known: dict[str, str | None] = {}
    reachable = True

    def lookup(ref: str) -> str | None:
        nonlocal reachable
        if reachable and ref not in known:
            try:
                known[ref] = engine.image_id(ref)
            except EngineUnavailable:
                reachable = False
        return known.get(ref)

    return lookup


def secrets_folder(bake_path: Path) -> Path:
    """The private folder (0700) for the secrets of the bake file at `bake_path`: one per bake
    file, in envkit's cache."""
    digest = hashlib.sha256(str(Path(bake_path).resolve()).encode()).hexdigest()[:16]
    return build.cache_folder() / "bake" / digest


def index_secrets(entries: list[Entry], options: build.BuildOptions) -> dict[str, str]:
    """The index settings with credentials (build.index_settings) of each target that has any."""
    found = {}
    for entry in entries:
        settings = build.index_settings(entry, options)
        if settings:
            found[target_name(entry)] = settings
    return found


def bake_definition(
    entries: list[Entry],
    options: build.BuildOptions,
    *,
    context: Path,
    ca_bundle: Path | None = None,
    base_id: Callable[[str], str | None] = lambda ref: None,
    secrets: Path | None = None,
) -> dict:
    """The bake file's content: a target per entry and a default group of them all. Targets
    are what `envkit build` builds: an index URL's credentials are not in it but in the
    build.INDEX_SECRET, read from INDEX_FILE in the `secrets` folder."""
    targets: dict[str, dict] = {}
    owners: dict[str, str] = {}
    for entry in entries:
        name = target_name(entry)
        if name in owners:
            raise BadInput(
                f"entries {owners[name]!r} and {entry.name!r} share bake target {name}",
                "rename one of them",
            )
        owners[name] = entry.name
        text = dockerfile.render(build.renderable(entry))
        own = build.options_for(entry, options)  # the base image set for its Python
        args = build.build_args(entry, own)
        digest = build.content_hash(
            entry, text, args, own, base_id(own.base_image or entry.base_image)
        )
        repository = build.repository(entry.name, options)
        target = {
            "context": literal(str(context)),
            "dockerfile-inline": literal(text),
            "args": {key: literal(value) for key, value in args.items()},
            "tags": [literal(f"{repository}:{tag}") for tag in ("latest", digest)],
            "labels": {
                key: literal(value)
                for key, value in build.labels(entry, digest, own.base_image).items()
            },
        }
        secret = []
        if ca_bundle is not None:
            secret.append(literal(f"id={build.CA_SECRET},src={ca_bundle}"))
        if build.index_settings(entry, options):
            if secrets is None:
                raise ValueError(f"{entry.name}: index credentials need a secrets folder")
            index_file = secrets / INDEX_FILE.format(target=name)
            secret.append(literal(f"id={build.INDEX_SECRET},src={index_file}"))
        if secret:
            target["secret"] = secret
        if options.no_cache:
            target["no-cache"] = True
        if options.pull:
            target["pull"] = True
        targets[name] = target
    return {"group": {"default": {"targets": list(targets)}}, "target": targets}


def _write_ca_bundle(ca_cert: Path, folder: Path) -> Path:
    """The public CA bundle plus the user's certificates, as `envkit build` passes them."""
    path = folder / CA_FILE
    with tempfile.TemporaryDirectory(prefix="envkit-ca-", dir=folder) as tmp:
        os.replace(build.ca_bundle(ca_cert, Path(tmp)), path)
    return path


def _write_secrets(folder: Path, ca_cert: Path | None, index: dict[str, str]) -> Path | None:
    """Write the bake file's secrets into `folder` (made 0700, files 0600), removing those an
    earlier bake left there that this one does not name; returns the CA bundle's path."""
    files.private_folder(folder, "XDG_CACHE_HOME")
    with contextlib.suppress(OSError):  # a folder left by an earlier envkit
        folder.chmod(0o700)
    wanted = {INDEX_FILE.format(target=name) for name in index}
    for old in folder.glob(INDEX_FILE.format(target="*")):
        if old.name not in wanted:
            old.unlink()
    for name, settings in index.items():
        files.write_file(folder / INDEX_FILE.format(target=name), settings, mode=0o600)
    if ca_cert is None:
        with contextlib.suppress(FileNotFoundError):
            (folder / CA_FILE).unlink()
        return None
    return _write_ca_bundle(ca_cert, folder)


def write_bake(
    entries: list[Entry],
    options: build.BuildOptions,
    path: Path,
    base_id: Callable[[str], str | None] | None = None,
) -> Path:
    """Write the bake file (and its empty context beside it, its secrets in secrets_folder);
    returns its path."""
    if not entries:
        raise BadInput("no entry matches", "see envkit list")
    files.refuse_link(path)  # before resolve(), which would follow it
    path = path.resolve()
    folder = path.parent
    make_folder(folder, "--output")
    if options.wheelhouse:
        context = options.wheelhouse.resolve()
    else:
        context = folder / EMPTY_CONTEXT
        context.mkdir(exist_ok=True)
    index = index_secrets(entries, options)
    secrets = secrets_folder(path)
    ca_bundle = secrets / CA_FILE if options.ca_cert else None
    data = bake_definition(
        entries,
        options,
        context=context,
        ca_bundle=ca_bundle,
        base_id=base_id or engine_base_ids(),
        secrets=secrets,
    )
    if options.ca_cert or index or secrets.exists():
        _write_secrets(secrets, options.ca_cert, index)
    return files.write_file(path, json.dumps(data, indent=2) + "\n", fix="pick another --output")
