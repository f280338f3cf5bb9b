"""What envkit build says when a build fails, read from BuildKit's plain progress log."""

from __future__ import annotations

import errno
import os
import time

import pytest

from envkit import build, engine, files, matrix
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


# The failing step's own lines, as BuildKit's plain progress shows them (time stamps dropped).
NO_SUCH_PIN = [
    "Requirement already satisfied: torch==2.13.0 in /opt/venv/lib/python3.11/site-packages",
    "ERROR: Ignored the following versions that require a different python version: 1.21.2 "
    "Requires-Python >=3.7,<3.11; 2.5.0 Requires-Python >=3.12",
    "ERROR: Could not find a version that satisfies the requirement numpy==0.0.1 (from "
    "versions: 1.3.0, 1.4.1, 2.4.6)",
    "ERROR: No matching distribution found for numpy==0.0.1",
]
WRONG_PYTHON_NONE_LEFT = [
    "ERROR: Ignored the following versions that require a different python version: 1.0.0 "
    "Requires-Python >=3.12; 1.1.0 Requires-Python >=3.12",
    "ERROR: Could not find a version that satisfies the requirement tool==1.1.0 (from "
    "versions: none)",
    "ERROR: No matching distribution found for tool==1.1.0",
]
WRONG_PYTHON_REFUSED = [
    "Processing /wheelhouse/tool-1.0-py3-none-any.whl",
    "ERROR: Package 'tool' requires a different Python: 3.11.2 not in '<3.9,>=3.6'",
]
UNREACHABLE = [
    "WARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) "
    "after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection."
    "HTTPSConnection object at 0x7f>: Failed to establish a new connection: [Errno -3] "
    "Temporary failure in name resolution')': /simple/numpy/",
    "ERROR: Could not find a version that satisfies the requirement numpy (from versions: none)",
    "ERROR: No matching distribution found for numpy",
]
UNTRUSTED = [
    "Could not fetch URL https://pypi.org/simple/numpy/: There was a problem confirming the ssl "
    "certificate: HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded with url: "
    "/simple/numpy/ (Caused by SSLError(SSLCertVerificationError(1, '[SSL: "
    "CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
    "certificate (_ssl.c:1006)'))) - skipping",
    "ERROR: Could not find a version that satisfies the requirement numpy (from versions: none)",
    "ERROR: No matching distribution found for numpy",
]
DISK_FULL = [
    "Collecting numpy==2.1.0",
    "ERROR: Could not install packages due to an OSError: [Errno 28] No space left on device",
]
OTHER_OSERROR = [
    "ERROR: Could not install packages due to an OSError: [Errno 13] Permission denied: "
    "'/opt/venv/lib/python3.11/site-packages/x'",
]


@pytest.mark.parametrize(
    "lines, cause, fix",
    [
        (NO_SUCH_PIN, "no version of numpy==0.0.1", "versions pip listed"),
        (
            WRONG_PYTHON_NONE_LEFT,
            "tool==1.1.0 has no release for the image's Python",
            "--base-image",
        ),
        (WRONG_PYTHON_REFUSED, "requires a different Python: 3.11.2 not in", "--base-image"),
        (UNREACHABLE, "could not reach the package index", "--index-url"),
        (UNTRUSTED, "could not verify the index's TLS certificate", "--ca-cert"),
        (DISK_FULL, "no space left on the engine's disk", "docker builder prune"),
        (OTHER_OSERROR, "Permission denied", "the line above"),
    ],
    ids=["no-such-pin", "python-none-left", "python-refused", "unreachable", "tls", "disk", "os"],
)
def test_a_failed_pip_step_is_explained_from_its_own_lines(lines, cause, fix):
    why = build.pip_failure(lines)
    assert why is not None
    assert cause in why.cause and fix in why.fix, why


def test_a_step_that_is_not_pip_gets_no_pip_explanation():
    assert build.pip_failure(["E: Unable to locate package libfoo"]) is None


def test_envkit_build_names_the_pip_cause_and_its_fix(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from envkit import cli

    monkeypatch.setattr(build, "plan", lambda entry, options: ("FROM scratch\n", {}, "abc"))
    monkeypatch.setattr(engine, "image_id", lambda ref: None)
    output = tmp_path / "output"
    output.write_text(
        "#7 [3/5] RUN pip install numpy\n"
        + "".join(f"#7 1.0 {line}\n" for line in UNREACHABLE)
        + "#7 ERROR: exit code: 1\n"
    )
    _fake_client(tmp_path, monkeypatch, f"cat {output}; exit 1")
    result = CliRunner().invoke(
        cli.main, ["build", "torch2.13-cpu", "--log-dir", str(tmp_path / "logs")]
    )
    assert result.exit_code == 1, result.output
    assert "failed at [3/5] RUN pip install numpy: pip could not reach the package index" in (
        result.output
    )
    fix = [line for line in result.output.splitlines() if line.startswith("fix: ")]
    assert len(fix) == 1 and "--index-url" in fix[0] and "full log: " in fix[0]
    assert "fix: read the full log" not in result.output


def test_no_cache_rebuilds_an_image_whose_content_tag_exists(tmp_path, monkeypatch):
    built = []
    monkeypatch.setattr(build, "plan", lambda entry, options: ("FROM scratch\n", {}, "abc"))
    monkeypatch.setattr(engine, "image_id", lambda ref: "sha256:old")
    monkeypatch.setattr(engine, "remove_if_unused", lambda image: None)

    def fake_build(**kwargs):
        built.append(kwargs["no_cache"])
        return engine.BuildOutcome(True, "sha256:new", 0.1)

    monkeypatch.setattr(engine, "build", fake_build)
    entry = matrix.load(None).get("torch2.13-cpu")
    options = build.BuildOptions(log_dir=tmp_path, no_cache=True)
    result = build.build_entry(entry, options)
    assert result.status == "built" and built == [True]
    assert build.build_entry(entry, build.BuildOptions(log_dir=tmp_path)).status == "up-to-date"
