"""Doctor findings and the report: the one Check type, text and JSON output."""

from __future__ import annotations

import json

import pytest

from envkit import doctor
from envkit.doctor import Check


def test_report_json_has_ok_and_checks():
    report = doctor.DoctorReport(
        False, [Check("engine", "fail", "x", "y"), Check("shm", "pass", "z")]
    )
    data = json.loads(report.to_json())
    assert data["ok"] is False
    assert data["checks"][0] == {"id": "engine", "status": "fail", "detail": "x", "fix": "y"}
    text = report.to_text()
    assert "fix: y" in text and "FAILED" in text


def test_check_rejects_unknown_status():
    with pytest.raises(ValueError):
        Check("x", "ok", "detail")
