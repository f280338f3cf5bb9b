"""envkit base against the real engine: a pyenv CPython copied onto the bookworm base."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import DOCKER, run_envkit

pytestmark = pytest.mark.docker

IMAGE = "envkit-test-base:py3.11"
PREFIXES = sorted(Path.home().glob(".pyenv/versions/3.11.*"))


@pytest.mark.skipif(not PREFIXES, reason="no pyenv CPython 3.11 on this host")
def test_base_from_a_prefix_runs_python_and_is_recorded(base_image, tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    monkeypatch.setenv("ENVKIT_CONFIG", str(config))
    prefix = PREFIXES[-1]
    try:
        out = run_envkit("base", "3.11", "--from-prefix", str(prefix), "--tag", IMAGE, "--json")
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["image"] == IMAGE and result["recorded_as"] == "base_images.3.11"
        version = subprocess.run(
            [DOCKER, "run", "--rm", IMAGE, "python3", "-V"], capture_output=True, text=True
        )
        assert version.stdout.strip() == f"Python {prefix.name}"
        shown = json.loads(run_envkit("config", "--json", check=True).stdout)["settings"]
        row = next(r for r in shown if r["name"] == "base_images.3.11")
        path, line = row["origin"].rsplit(":", 1)
        assert row["value"] == IMAGE and path == str(config)
        assert config.read_text().splitlines()[int(line) - 1] == f'"3.11" = "{IMAGE}"'
        # A second run finds the image and records it again without rebuilding.
        again = run_envkit("base", "3.11", "--from-prefix", str(prefix), "--tag", IMAGE)
        assert again.returncode == 0 and "already exists" in again.stderr
    finally:
        subprocess.run([DOCKER, "image", "rm", "-f", IMAGE], capture_output=True)
