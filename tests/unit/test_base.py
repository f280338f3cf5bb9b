"""envkit base: refusals that come before any work, each with the fix a user can follow."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from envkit import base as bases
from envkit.cli import main


def run(*args: str):
    return CliRunner().invoke(main, ["base", *args])


def fake_prefix(tmp_path: Path, version: str) -> Path:
    (tmp_path / "bin").mkdir(parents=True)
    (tmp_path / "bin" / f"python{version}").touch()
    (tmp_path / "bin" / f"python{version}-config").touch()  # not an interpreter
    return tmp_path


def test_a_python_no_debian_release_ships_needs_a_prefix(tmp_path, monkeypatch):
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path))
    for patch in ("3.8.9", "3.8.18", "3.80.1"):
        (tmp_path / "versions" / patch).mkdir(parents=True)
    result = run("3.8")
    assert result.exit_code == 2
    assert "no Debian release that the mirrors serve ships Python 3.8" in result.output
    # The fix names the newest matching pyenv installation (3.8.18, not 3.8.9 or 3.80.1).
    assert f"envkit base 3.8 --from-prefix {tmp_path / 'versions' / '3.8.18'}" in result.output


def test_the_prefix_must_hold_the_python_asked_for(tmp_path):
    result = run("3.8", "--from-prefix", str(fake_prefix(tmp_path, "3.9")))
    assert result.exit_code == 2
    assert "holds Python 3.9, not 3.8" in result.output
    assert f"envkit base 3.9 --from-prefix {tmp_path}" in result.output
    assert bases.prefix_python(tmp_path) == "3.9"


def test_a_version_that_is_not_one_is_bad_input():
    result = run("py3")
    assert result.exit_code == 2 and "'py3' is not a Python version" in result.output


@pytest.mark.parametrize(
    ("which", "euid", "message", "fix"),
    [
        (None, 0, "needs debootstrap", "apt-get install -y debootstrap"),
        ("/usr/sbin/debootstrap", 1000, "needs root for debootstrap", "sudo envkit base"),
    ],
)
def test_debootstrap_needs_the_tool_and_root(monkeypatch, which, euid, message, fix):
    monkeypatch.setattr(bases.shutil, "which", lambda name: which)
    monkeypatch.setattr(bases.os, "geteuid", lambda: euid)
    monkeypatch.setattr(bases.engine, "image_id", lambda ref: None)  # nothing built yet
    ran = []
    monkeypatch.setattr(bases, "_run_script", lambda *args: ran.append(args))
    result = run("3.11")
    assert result.exit_code == 2
    assert message in result.output and fix in result.output
    assert not ran  # refused before anything ran


def test_the_scripts_ship_inside_the_package():
    for name in ("build-base.sh", "build-python-base.sh"):
        assert (bases.SCRIPTS / name).is_file()
        wrapper = Path(__file__).resolve().parents[2] / "scripts" / name
        assert f"envkit/bases/{name}" in wrapper.read_text()
