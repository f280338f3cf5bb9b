"""Index URLs with credentials: never a build arg or Dockerfile text, only the envkit-index
secret; redacted in everything envkit logs or prints."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import CI_MATRIX

from envkit import build, credentials, engine, matrix

TOKEN = "tok-3f9a1c"
INDEX = f"https://alice:{TOKEN}@mirror.example/simple"
EXTRA = f"https://{TOKEN}@extra.example/simple"
ENTRY = matrix.load(CI_MATRIX).get("ci-cpu")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (INDEX, "https://***@mirror.example/simple"),
        (f"Looking in indexes: {EXTRA}, https://pypi.org/simple", "https://***@extra.example"),
        ("https://alice:p@ss@host:8443/x", "https://***@host:8443/x"),
        ("'https://alice:****@127.0.0.1:9/simple'", "'https://***@127.0.0.1:9/simple'"),
    ],
)
def test_redact_hides_user_and_password(text, shown):
    assert shown in credentials.redact(text)
    assert TOKEN not in credentials.redact(text) and "alice" not in credentials.redact(text)


@pytest.mark.parametrize(
    "text", ["https://pypi.org/simple", "mail alice@example.org", "https://host/path@x"]
)
def test_redact_leaves_text_without_credentials_alone(text):
    assert credentials.redact(text) == text


def test_credentials_are_no_build_arg_but_index_settings():
    options = build.BuildOptions(index_url=INDEX, extra_index_url="https://public.example/simple")
    args = build.build_args(ENTRY, options)
    assert args == {"ENVKIT_EXTRA_INDEX_URL": "https://public.example/simple"}
    settings = build.index_settings(ENTRY, options)
    assert settings == f"ENVKIT_INDEX_URL={shlex.quote(INDEX)}\n"
    assert build.index_settings(ENTRY, build.BuildOptions(index_url="https://m.example/s")) is None


def test_index_settings_are_what_the_pip_step_sources(tmp_path):
    options = build.BuildOptions(index_url=INDEX, extra_index_url=EXTRA + " '$(id)'")
    (tmp_path / "index").write_text(build.index_settings(ENTRY, options))
    shown = subprocess.run(
        [
            "sh",
            "-c",
            '. "$1"; printf "%s\\n%s\\n" "$ENVKIT_INDEX_URL" "$ENVKIT_EXTRA_INDEX_URL"',
            "sh",
            str(tmp_path / "index"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert shown == [INDEX, EXTRA + " '$(id)'"]


def test_a_matrix_index_with_credentials_stays_out_of_the_dockerfile(monkeypatch):
    from dataclasses import replace

    monkeypatch.setattr(engine, "image_id", lambda ref: None)
    entry = replace(ENTRY, index_url=f"https://alice:{TOKEN}@torch.example/whl/cu121")
    text, args, _ = build.plan(entry, build.BuildOptions())
    assert TOKEN not in text and "alice" not in text
    assert "--index-url https://torch.example/whl/cu121" in text
    assert build.index_settings(entry, build.BuildOptions()) == (
        f"ENVKIT_TORCH_SOURCE={shlex.quote('--index-url ' + entry.index_url)}\n"
    )


def test_the_index_not_the_token_is_in_the_content_tag():
    def tag(index):
        options = build.BuildOptions(index_url=index)
        return build.content_hash(ENTRY, "FROM x", build.build_args(ENTRY, options), options, None)

    assert tag(INDEX) == tag(INDEX.replace(TOKEN, "rotated")) != tag(None)
    assert tag(INDEX) != tag(INDEX.replace("mirror", "other"))


def test_a_build_passes_them_as_a_0600_secret_and_logs_them_redacted(tmp_path, monkeypatch):
    """A fake build client: prints what it was given, as pip would print the index it reads."""
    seen = tmp_path / "seen"
    script = (
        f'echo "$@" > {seen}; '
        'for a in "$@"; do case "$a" in id=envkit-index,src=*) '
        f'stat -c %a "${{a#id=envkit-index,src=}}" >> {seen}; '
        f'cat "${{a#id=envkit-index,src=}}" >> {seen};; esac; done; '
        f'echo "#9 1.0 Looking in indexes: {EXTRA}"; exit 1'
    )
    monkeypatch.setattr(engine, "build_command", lambda: ["sh", "-c", script, "client"])
    monkeypatch.setattr(engine, "image_id", lambda ref: None)
    events = []
    options = build.BuildOptions(index_url=INDEX, extra_index_url=EXTRA, log_dir=tmp_path / "logs")
    result = build.build_entry(ENTRY, options, lambda name, event: events.append(event.text))
    command_line, mode, *secret = seen.read_text().splitlines()
    assert TOKEN not in command_line and "--secret id=envkit-index,src=" in command_line
    assert mode == "600" and TOKEN in "".join(secret)
    assert not Path(command_line.split("id=envkit-index,src=")[1].split()[0]).exists()
    log = Path(result.log_path).read_text()
    shown = log + "".join(events) + "".join(result.tail) + str(result.to_dict())
    assert TOKEN not in shown and "https://***@extra.example/simple" in log
    assert os.stat(result.log_path).st_mode & 0o777 == 0o600
