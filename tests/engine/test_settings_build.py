"""After one setup (config file + env vars), build and lock need no options."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import CI_MATRIX, DOCKER, host_ca_bundle, run_envkit

pytestmark = pytest.mark.docker

BASE_ALIAS = "envkit-test-settings-base:py3.11"


def test_build_and_lock_take_base_image_and_sources_from_settings(
    base_image, cpu_wheelhouse, tmp_path, monkeypatch
):
    # The same bookworm base under another name: only the settings can point the build at it.
    subprocess.run([DOCKER, "tag", base_image, BASE_ALIAS], check=True)
    config = tmp_path / "config.toml"
    config.write_text(f'[base_images]\n"3.11" = "{BASE_ALIAS}"\n')
    monkeypatch.setenv("ENVKIT_CONFIG", str(config))
    monkeypatch.setenv("ENVKIT_WHEELHOUSE", str(cpu_wheelhouse))
    monkeypatch.setenv("ENVKIT_CA_CERT", str(host_ca_bundle()))
    monkeypatch.setenv("ENVKIT_TAG_PREFIX", "envkit-settings")
    try:
        shown = json.loads(run_envkit("config", "--json", check=True).stdout)["settings"]
        origins = {row["name"]: row["origin"] for row in shown}
        assert origins["base_images.3.11"] == f"{config}:2"
        assert origins["wheelhouse"] == "env ENVKIT_WHEELHOUSE"

        out = run_envkit(
            "--matrix", str(CI_MATRIX), "build", "ci-cpu", "--log-dir", str(tmp_path), "--json"
        )
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)[0]
        assert result["tags"][0] == "envkit-settings/ci-cpu:latest"
        labels = json.loads(
            subprocess.run(
                [DOCKER, "image", "inspect", "-f", "{{json .Config.Labels}}", result["tags"][0]],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert labels["org.opencontainers.image.base.name"] == BASE_ALIAS

        lock_path = tmp_path / "envkit.lock"
        locked = run_envkit("--matrix", str(CI_MATRIX), "lock", "ci-cpu", "--out", str(lock_path))
        assert locked.returncode == 0, locked.stderr
        lock = json.loads(lock_path.read_text())
        assert lock["base_image"] == BASE_ALIAS
        assert lock["content_tag"] == result["tags"][1].rsplit(":", 1)[1]
        assert lock["packages"]["torch"].startswith("2.13.0")
    finally:
        subprocess.run(
            [DOCKER, "image", "rm", "-f", "envkit-settings/ci-cpu:latest", BASE_ALIAS],
            capture_output=True,
        )
