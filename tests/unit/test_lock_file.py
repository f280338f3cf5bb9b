"""Lock files and build options that are refused before the engine is asked anything."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from envkit import lock
from envkit.cli import main
from envkit.errors import BadInput

NO_ENGINE = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}  # contacting it would exit 1


def invoke(*args):
    return CliRunner().invoke(main, list(args), env=NO_ENGINE, catch_exceptions=False)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[1, 2]", "a lock is a JSON object, not list"),
        ('"envkit"', "a lock is a JSON object, not str"),
        ('{"schema": 99}', "unknown lock schema 99"),
        ('{"schema": 1, "entry": "x"}', "missing"),
        ("{", "not valid JSON"),
    ],
)
def test_unusable_lock_files_are_bad_input(tmp_path, text, problem):
    path = tmp_path / "envkit.lock"
    path.write_text(text)
    with pytest.raises(BadInput, match=problem):
        lock.read_lock(path)


def test_lock_that_is_a_folder_or_not_text_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="cannot read"):
        lock.read_lock(tmp_path)
    binary = tmp_path / "binary.lock"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BadInput, match="cannot read"):
        lock.read_lock(binary)


def test_lock_out_into_a_missing_folder_is_refused_first(tmp_path):
    out = invoke("lock", "torch2.13-cpu", "--out", str(tmp_path / "no" / "such" / "envkit.lock"))
    assert out.exit_code == 2, out.output
    assert "does not exist" in out.output
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_write_lock_leaves_no_temporary_file(tmp_path):
    made = lock.Lock("e", "sha256:1", "abc", "base", None, {"torch": "2.13.0"})
    path = tmp_path / "envkit.lock"
    lock.write_lock(made, path)
    assert lock.read_lock(path) == made
    assert sorted(p.name for p in tmp_path.iterdir()) == ["envkit.lock"]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--offline"], "--offline needs --wheelhouse DIR"),
        (["--wheelhouse", "/nonexistent/wheels"], "does not exist"),
        (["--ca-cert", "{not_pem}"], "holds no PEM certificate"),
    ],
)
def test_unusable_build_options_exit_2_before_the_engine(tmp_path, args, problem):
    not_pem = tmp_path / "proxy.txt"
    not_pem.write_text("not a certificate\n")
    args = [a.replace("{not_pem}", str(not_pem)) for a in args]
    for command in (["build", "torch2.13-cpu"], ["build", "torch2.13-cpu", "torch2.12-cpu"]):
        out = invoke(*command, *args)
        assert out.exit_code == 2, out.output
        assert problem in out.output
    out = invoke("lock", "torch2.13-cpu", *args)
    assert out.exit_code == 2 and problem in out.output


def test_lock_fields_of_the_wrong_type_are_bad_input(tmp_path):
    good = lock.Lock("e", "sha256:1", "abc", "base", None, {"torch": "2.13.0"})
    data = json.loads(good.to_json())
    for key, value in [("packages", []), ("packages", {"torch": 2}), ("entry", 3)]:
        path = tmp_path / f"{key}.lock"
        path.write_text(json.dumps({**data, key: value}))
        with pytest.raises(BadInput, match=f"wrong type for {key}"):
            lock.read_lock(path)


def test_check_options_refuses_a_wheelhouse_that_is_not_a_folder(tmp_path):
    from envkit import build

    for missing in (tmp_path / "absent", tmp_path / "file.whl"):
        if missing.suffix:
            missing.write_text("")
        with pytest.raises(BadInput, match="is not a folder"):
            build.check_options(build.BuildOptions(wheelhouse=missing))


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--tag", ""], "--tag '' is not a repository name"),
        (["--tag", "My Tag"], "is not a repository name"),
        (["--registry", "https://ghcr.io/"], "is not a registry host"),
    ],
)
def test_image_names_that_docker_would_refuse_are_bad_input(args, problem):
    out = invoke("build", "torch2.13-cpu", *args)
    assert out.exit_code == 2 and problem in out.output


def test_offline_with_an_empty_wheelhouse_is_bad_input(tmp_path):
    out = invoke("build", "torch2.13-cpu", "--offline", "--wheelhouse", str(tmp_path))
    assert out.exit_code == 2 and "holds no .whl files" in out.output


def test_a_lock_nested_200k_deep_is_bad_input_not_a_recursion_error(tmp_path):
    path = tmp_path / "envkit.lock"
    path.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(BadInput, match="nested too deep"):
        lock.read_lock(path)
