"""Index credentials never reach what envkit prints: list, show, dockerfile, check and the
errors that quote a matrix's index_url."""

from __future__ import annotations

import textwrap

import pytest
from click.testing import CliRunner

from envkit import credentials
from envkit.cli import main

TOKEN = "S3CRETTOKEN"
MATRIX = f"""\
version: 1
entries:
  mirrored-cuda11.8:
    torch: "2.0.1"
    torchvision: "0.15.2"
    cuda: "11.8"
    python: "3.10"
    base_image: python:3.10-slim-bookworm
    index_url: https://bob:{TOKEN}@download.pytorch.org/whl/cu117
"""
NOT_A_URL = MATRIX.replace("https://bob:", "ftp://bob:")


def _envkit(tmp_path, text, *args):
    path = tmp_path / "matrix.yaml"
    path.write_text(textwrap.dedent(text))
    return CliRunner().invoke(main, ["--matrix", str(path), *args])


@pytest.mark.parametrize(
    "args",
    [
        ["list", "--json"],
        ["list"],
        ["show", "mirrored-cuda11.8"],
        ["show", "mirrored-cuda11.8", "--json"],
        ["dockerfile", "mirrored-cuda11.8"],
        ["check"],
        ["check", "--json"],
        ["matrix"],
    ],
    ids=lambda args: " ".join(args),
)
def test_a_command_that_shows_the_index_hides_its_credentials(tmp_path, args):
    result = _envkit(tmp_path, MATRIX, *args)
    assert TOKEN not in result.output and "bob" not in result.output, result.output


def test_show_and_check_still_name_the_index(tmp_path):
    assert (
        "https://***@download.pytorch.org/whl/cu117"
        in _envkit(tmp_path, MATRIX, "show", "mirrored-cuda11.8").output
    )
    checked = _envkit(tmp_path, MATRIX, "check")
    assert checked.exit_code == 1 and "https://***@download.pytorch.org/whl/cu117" in checked.output


@pytest.mark.parametrize("args", [["check"], ["check", "--json"], ["list"], ["build", "x"]])
def test_a_matrix_error_quoting_the_index_hides_its_credentials(tmp_path, args):
    result = _envkit(tmp_path, NOT_A_URL, *args)
    assert result.exit_code == 2, result.output
    assert "is not a URL" in result.output
    assert TOKEN not in result.output and "bob" not in result.output, result.output


def test_redact_data_reaches_every_string():
    data = {"a": [f"https://u:{TOKEN}@h/x", {"b": (f"http://{TOKEN}@h",)}], "n": 1, "z": None}
    assert credentials.redact_data(data) == {
        "a": ["https://***@h/x", {"b": ["http://***@h"]}],
        "n": 1,
        "z": None,
    }
