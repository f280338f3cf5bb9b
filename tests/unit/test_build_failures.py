"""What envkit build says when a build fails, read from BuildKit's plain progress log."""

from __future__ import annotations

import errno
import os
import time

import pytest

from envkit import build, engine, files
from envkit.errors import EnvkitError


def test_a_base_image_that_cannot_be_pulled_is_named():
    # The end of a real failed build here (no registry), as BuildKit's plain progress prints it.
    log = [
        "#3 [internal] load metadata for docker.io/library/python:3.8-slim-bookworm",
        '#3 ERROR: failed to do request: Head "https://registry-1.docker.io/v2/library/python/'
        'manifests/3.8-slim-bookworm": dial tcp: lookup registry-1.docker.io on 10.255.255.53:53:'
        " no such host",
        "------",
    ]
    assert build.unpullable_base(log) == "docker.io/library/python:3.8-slim-bookworm"
    ok_metadata = ["#3 [internal] load metadata for docker.io/library/python:3.8", "#3 DONE 0.4s"]
    assert build.unpullable_base(ok_metadata + ["#7 ERROR: process did not complete"]) is None


def _fake_client(tmp_path, monkeypatch, script: str):
    """A build client that runs `script` (sh) instead of BuildKit: the rest of the command
    line (--progress=plain --file F --iidfile PATH ...) reaches it as $1, $2, ..."""
    monkeypatch.setattr(engine, "build_command", lambda: ["sh", "-c", script, "client"])


def _build(tmp_path, log_folder):
    return engine.build(
        context=tmp_path,
        dockerfile=tmp_path / "Dockerfile",
        tags=["envkit-test/fake:latest"],
        build_args={},
        labels={},
        log_path=log_folder / "fake.log",
    )


def test_the_log_is_private_and_the_image_id_never_lands_beside_it(tmp_path, monkeypatch):
    _fake_client(
        tmp_path, monkeypatch, 'echo "#1 [1/1] RUN true"; echo sha256:abc > "$5"; echo done'
    )
    logs = files.private_folder(tmp_path / "logs", "--log-dir")
    outcome = _build(tmp_path, logs)
    assert outcome.ok and outcome.image_id == "sha256:abc"
    assert [p.name for p in logs.iterdir()] == ["fake.log"]
    assert (logs / "fake.log").stat().st_mode & 0o777 == 0o600
    assert logs.stat().st_mode & 0o777 == 0o700
    assert "#1 [1/1] RUN true" in (logs / "fake.log").read_text()


def test_a_full_log_folder_is_named_cancels_the_build_and_leaves_no_file(tmp_path, monkeypatch):
    started = tmp_path / "client-ran"
    _fake_client(tmp_path, monkeypatch, f'touch {started}; echo sha256:abc > "$5"; sleep 30')
    logs = files.private_folder(tmp_path / "logs", "--log-dir")

    def no_space(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", no_space)
    begun = time.monotonic()
    with pytest.raises(EnvkitError) as caught:
        _build(tmp_path, logs)
    assert caught.value.exit_code == 1
    assert caught.value.message.startswith(f"no space left on {logs}")
    assert list(logs.iterdir()) == []  # no empty .log, no .iid
    assert time.monotonic() - begun < 20  # the client was not waited for


def test_envkit_build_with_a_full_cache_dir_says_so_without_a_traceback(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from envkit import cli

    monkeypatch.setattr(build, "plan", lambda entry, options: ("FROM scratch\n", {}, "abc"))
    monkeypatch.setattr(engine, "image_id", lambda ref: None)
    _fake_client(tmp_path, monkeypatch, 'echo sha256:abc > "$5"; echo done')
    logs = tmp_path / "logs"
    write = os.write

    def full_log_folder(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(logs)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(fd, data)

    monkeypatch.setattr(os, "write", full_log_folder)
    result = CliRunner().invoke(
        cli.main, ["build", "torch2.13-cpu", "--log-dir", str(logs)], catch_exceptions=False
    )
    assert result.exit_code == 1, result.output
    assert f"no space left on {logs}" in result.output
    assert "Traceback" not in result.output
    assert list(logs.iterdir()) == []
