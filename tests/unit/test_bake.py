"""envkit bake: the bake file's structure, as `docker buildx bake` documents it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from envkit import build, dockerfile, matrix
from envkit.bake import EMPTY_CONTEXT, bake_definition, literal, target_name, write_bake
from envkit.errors import BadInput

DATA = Path(__file__).resolve().parent.parent / "data"
CI = matrix.load(DATA / "matrix-ci.yaml")
INIT = matrix.load(DATA / "matrix-init.yaml")
PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def test_file_is_json_with_one_target_per_entry_and_a_default_group(tmp_path):
    path = write_bake(
        list(CI.entries),
        build.BuildOptions(),
        tmp_path / "docker-bake.json",
        base_id=lambda ref: None,
    )
    data = json.loads(path.read_text())
    assert set(data) == {"group", "target"}
    assert data["group"]["default"]["targets"] == ["ci-cpu", "ci-badpin"]
    target = data["target"]["ci-cpu"]
    assert target["dockerfile-inline"] == literal(dockerfile.render(CI.get("ci-cpu")))
    assert target["context"] == str(tmp_path / EMPTY_CONTEXT)
    assert (tmp_path / EMPTY_CONTEXT).is_dir() and not any((tmp_path / EMPTY_CONTEXT).iterdir())
    assert "secret" not in target
    assert target["labels"]["io.envkit.entry"] == "ci-cpu"
    base = CI.get("ci-cpu").base_image
    assert target["labels"]["org.opencontainers.image.base.name"] == base


def test_tags_carry_the_same_content_hash_as_envkit_build(tmp_path):
    options = build.BuildOptions(tag_prefix="acme", registry="registry.example:5000")
    entry = CI.get("ci-cpu")
    data = bake_definition([entry], options, context=tmp_path, base_id=lambda ref: "sha256:ab")
    text = dockerfile.render(entry)
    digest = build.content_hash(entry, text, build.build_args(entry, options), options, "sha256:ab")
    target = data["target"]["ci-cpu"]
    assert target["tags"] == [f"registry.example:5000/acme/ci-cpu:{t}" for t in ("latest", digest)]
    assert target["labels"]["io.envkit.content-hash"] == digest


def test_wheelhouse_is_the_context_and_build_args_pass_through(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    options = build.BuildOptions(wheelhouse=wheels, offline=True, base_image="envkit-base:x")
    data = bake_definition(list(CI.entries), options, context=wheels)
    target = data["target"]["ci-cpu"]
    assert target["context"] == str(wheels)
    # The image is built FROM --base-image, and its label says so.
    assert target["labels"]["org.opencontainers.image.base.name"] == "envkit-base:x"
    assert target["args"] == {
        "BASE_IMAGE": "envkit-base:x",
        "ENVKIT_FIND_LINKS": "/wheelhouse",
        "ENVKIT_OFFLINE": "1",
    }


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """envkit's cache folder (where bake keeps the secrets its file names)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder / "envkit"


def test_ca_cert_becomes_the_envkit_ca_secret_kept_away_from_the_bake_file(tmp_path, cache):
    cert = tmp_path / "proxy.pem"
    cert.write_text(PEM)
    out = tmp_path / "out"
    path = write_bake(
        list(CI.entries),
        build.BuildOptions(ca_cert=cert),
        out / "bake.json",
        base_id=lambda ref: None,
    )
    secret = json.loads(path.read_text())["target"]["ci-cpu"]["secret"]
    (bundle,) = (cache / "bake").glob("*/ca.pem")
    assert secret == [f"id=envkit-ca,src={bundle}"]
    assert bundle.read_text().endswith(PEM)
    # Nothing beside the bake file that a `git add .` would pick up.
    assert sorted(p.name for p in out.iterdir()) == sorted(["bake.json", EMPTY_CONTEXT])
    assert bundle.stat().st_mode & 0o777 == 0o600
    assert bundle.parent.stat().st_mode & 0o777 == 0o700
    # Written twice (a second bake) it is replaced, not refused.
    write_bake(
        list(CI.entries),
        build.BuildOptions(ca_cert=cert),
        out / "bake.json",
        base_id=lambda ref: None,
    )
    assert list((cache / "bake").glob("*/ca.pem")) == [bundle]


def test_index_credentials_travel_as_the_envkit_index_secret_as_envkit_build_passes_them(
    tmp_path, cache
):
    entry = dataclasses.replace(
        CI.get("ci-cpu"), index_url="https://bob:ENTRYTOKEN@mirror.example/whl/cpu"
    )
    options = build.BuildOptions(
        index_url="https://alice:INDEXTOKEN@pypi.example/simple",
        extra_index_url="https://carol:EXTRATOKEN@extra.example/simple",
    )
    out = tmp_path / "out"
    path = write_bake([entry], options, out / "docker-bake.json", base_id=lambda ref: "sha256:ab")
    text = path.read_text()
    for token in ("ENTRYTOKEN", "INDEXTOKEN", "EXTRATOKEN", "bob", "alice", "carol"):
        assert token not in text
    target = json.loads(text)["target"]["ci-cpu"]
    (settings,) = (cache / "bake").glob("*/index-ci-cpu.sh")
    assert target["secret"] == [f"id=envkit-index,src={settings}"]
    assert settings.read_text() == build.index_settings(entry, options)
    assert settings.stat().st_mode & 0o777 == 0o600
    # The same Dockerfile, build args and content tag as `envkit build` would use.
    assert target["dockerfile-inline"] == literal(dockerfile.render(build.renderable(entry)))
    assert target["args"] == {k: literal(v) for k, v in build.build_args(entry, options).items()}
    text_built = dockerfile.render(build.renderable(entry))
    digest = build.content_hash(
        entry, text_built, build.build_args(entry, options), options, "sha256:ab"
    )
    assert target["tags"][1].endswith(f":{digest}")
    assert sorted(p.name for p in out.iterdir()) == sorted(["docker-bake.json", EMPTY_CONTEXT])


def test_an_index_without_credentials_stays_a_build_arg(tmp_path, cache):
    options = build.BuildOptions(index_url="https://pypi.example/simple")
    data = bake_definition(list(CI.entries), options, context=tmp_path)
    target = data["target"]["ci-cpu"]
    assert target["args"] == {"ENVKIT_INDEX_URL": "https://pypi.example/simple"}
    assert "secret" not in target
    assert not cache.exists()


def test_entry_names_with_dots_become_valid_target_names():
    names = [target_name(e) for e in INIT.entries]
    assert "torch2_8-cuda12_9" in names
    assert all(n.replace("_", "").replace("-", "").isalnum() for n in names)


def test_no_entries_is_bad_input(tmp_path):
    with pytest.raises(BadInput):
        write_bake([], build.BuildOptions(), tmp_path / "b.json", base_id=lambda ref: None)


def test_shell_expansions_are_escaped_from_bake_interpolation():
    # Bake reads "${X}" in any string as its own variable; the Dockerfile's must survive.
    assert literal('FROM ${BASE_IMAGE}\nRUN echo "${A:+x}" %{y} $HOME') == (
        'FROM $${BASE_IMAGE}\nRUN echo "$${A:+x}" %%{y} $HOME'
    )


def test_without_an_engine_the_bake_file_is_written_after_one_attempt(tmp_path, monkeypatch):
    from envkit import engine
    from envkit.bake import engine_base_ids
    from envkit.errors import EngineUnavailable

    asked = []

    def unreachable(ref):
        asked.append(ref)
        raise EngineUnavailable("no Docker daemon is answering", "start it")

    monkeypatch.setattr(engine, "image_id", unreachable)
    lookup = engine_base_ids()
    assert [lookup(ref) for ref in ("a", "b", "a")] == [None, None, None]
    assert asked == ["a"]
    entries = matrix.load().entries[:5]
    path = write_bake(entries, build.BuildOptions(), tmp_path / "docker-bake.json")
    assert len(json.loads(path.read_text())["target"]) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["docker-bake.json", EMPTY_CONTEXT])


def test_bake_output_under_a_file_is_bad_input(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(BadInput, match="cannot make folder"):
        write_bake(matrix.load().entries[:1], build.BuildOptions(), blocker / "docker-bake.json")


def test_envkit_build_labels_the_base_it_was_given(monkeypatch):
    # What build_entry hands to the builder; the build itself is exercised against the engine.
    seen = {}

    def capture(name, repo, digest, text, args, image_labels, *rest, **named):
        seen.update(image_labels)

    monkeypatch.setattr(build, "_build_or_reuse", capture)
    monkeypatch.setattr(build.engine, "image_id", lambda ref: None)
    entry = CI.get("ci-cpu")
    build.build_entry(entry, build.BuildOptions(base_image="envkit-base:py3.8"))
    assert seen["org.opencontainers.image.base.name"] == "envkit-base:py3.8"
    build.build_entry(entry, build.BuildOptions())
    assert seen["org.opencontainers.image.base.name"] == entry.base_image
