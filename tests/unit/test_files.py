"""Every file envkit writes goes through files.atomic_write: whole or absent, never through a
link, no temporary file left, a full disk named as such."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from envkit import bake, build, files, lock, matrix, project
from envkit.errors import BadInput, EnvkitError

ENTRY = matrix.load().entries[0]
LOCK = lock.Lock(ENTRY.name, "sha256:1", "abc", "python:3.11-slim", None, {"torch": "2.13.0"})


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _writers():
    """Each host file envkit writes, as (file name, a call that writes it into a folder)."""
    return [
        ("envkit.lock", lambda folder: lock.write_lock(LOCK, folder / "envkit.lock")),
        (
            "docker-bake.json",
            lambda folder: bake.write_bake(
                [ENTRY], build.BuildOptions(), folder / "docker-bake.json", lambda ref: None
            ),
        ),
        (
            "envkit.yaml",
            lambda folder: project.write_project(
                folder, project.Project(str(folder / "envkit.yaml"), ENTRY.name), overwrite=True
            ),
        ),
    ]


WRITERS = _writers()
NAMES = [name for name, _ in WRITERS]


def _outside(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "keep.txt"
    secret.parent.mkdir()
    secret.write_text("untouched\n")
    return secret


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != bake.EMPTY_CONTEXT)


@pytest.mark.parametrize(("name", "write"), WRITERS, ids=NAMES)
def test_a_link_at_the_target_is_refused_naming_it(tmp_path, name, write):
    outside = _outside(tmp_path)
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / name).symlink_to(outside)
    with pytest.raises(BadInput) as caught:
        write(folder)
    assert caught.value.exit_code == 2
    assert str(folder / name) in caught.value.message and "symbolic link" in caught.value.message
    assert outside.read_text() == "untouched\n"
    assert (folder / name).is_symlink()


@pytest.mark.parametrize(("name", "write"), WRITERS, ids=NAMES)
def test_a_link_planted_at_the_temporary_name_is_never_written_through(tmp_path, name, write):
    outside = _outside(tmp_path)
    folder = tmp_path / "project"
    folder.mkdir()
    planted = [folder / f"{name}.tmp", folder / f".{name}.tmp"]
    for link in planted:
        link.symlink_to(outside)
    write(folder)
    assert outside.read_text() == "untouched\n"
    assert not (folder / name).is_symlink() and (folder / name).stat().st_size > 0
    assert _leftovers(folder) == sorted([name, *(p.name for p in planted)])


def test_a_dangling_envkit_yaml_link_is_refused_even_without_force(tmp_path):
    target = tmp_path / "elsewhere" / "made.yaml"
    target.parent.mkdir()
    (tmp_path / "envkit.yaml").symlink_to(target)
    for overwrite in (False, True):
        with pytest.raises(BadInput) as caught:
            project.write_project(
                tmp_path, project.Project(str(tmp_path / "envkit.yaml"), ENTRY.name), overwrite
            )
        assert "symbolic link" in caught.value.message
    assert not target.exists()


@pytest.mark.parametrize("call", ["write", "fsync"])
@pytest.mark.parametrize(("name", "write"), WRITERS, ids=NAMES)
def test_a_full_disk_is_named_and_leaves_nothing_half_written(
    tmp_path, monkeypatch, name, write, call
):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / name).write_text("before\n")
    monkeypatch.setattr(os, call, _no_space)
    with pytest.raises(EnvkitError) as caught:
        write(folder)
    assert caught.value.exit_code == 1
    assert caught.value.message.startswith(f"no space left on {folder}")
    assert (folder / name).read_text() == "before\n"
    assert _leftovers(folder) == [name]


def test_an_interrupt_while_writing_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with files.atomic_write(path) as out:
            out.write("{")
            raise KeyboardInterrupt
    assert path.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_mode_is_the_new_files_and_content_replaces_the_old(tmp_path):
    path = tmp_path / "build.log"
    files.write_file(path, "secret log\n", mode=0o600)
    assert path.stat().st_mode & 0o777 == 0o600
    files.write_file(path, json.dumps({"a": 1}).encode())
    assert json.loads(path.read_text()) == {"a": 1}


def test_a_folder_that_does_not_exist_is_bad_input(tmp_path):
    with pytest.raises(BadInput) as caught:
        files.write_file(tmp_path / "no" / "file", "x", fix="pick another --out")
    assert caught.value.fix == "pick another --out"


def test_private_folders_are_0700(tmp_path):
    made = files.private_folder(tmp_path / "cache" / "logs", "--log-dir")
    assert made.stat().st_mode & 0o777 == 0o700


def test_an_interrupt_just_after_the_temporary_file_is_made_leaves_none(tmp_path, monkeypatch):
    """Ctrl-C between the open that made the temporary file and the code that would clean it up
    (found by scripts/soak.py: one `.envkit.lock.*.tmp` in six interrupts)."""
    real_open = os.open

    def open_then_interrupted(name, flags, mode=0o777):
        real_open(name, flags, mode)
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "open", open_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.write_file(tmp_path / "envkit.lock", "{}")
    assert list(tmp_path.iterdir()) == []
