"""A short soak: envkit interrupted at random moments across build, run, bench, lock and init
leaves no container, process, temporary or half-written file (docs/reliability.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO, host_ca_bundle

pytestmark = pytest.mark.docker


def test_interrupts_across_the_commands_leave_nothing(base_image, cpu_wheelhouse):
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "soak.py"),
            "-n",
            "6",
            "--seed",
            "7",
            "--wheelhouse",
            str(cpu_wheelhouse),
            "--ca-cert",
            str(host_ca_bundle()),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert summary["leaks"] == {
        "containers": 0,
        "processes": 0,
        "temp_files": 0,
        "half_written": 0,
    }, summary["details"]
    assert summary["trials"] == 6 and summary["interrupted"] >= 4
    assert set(summary["per_command"]) == {"build", "run", "bench", "lock", "init"}
