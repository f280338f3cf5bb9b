"""Interrupt handling that needs no engine: one-shot signals, cleanup that survives a lost engine,
builds that do not start once cancelled."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import requests

from envkit import engine
from envkit.cli import main, options
from envkit.errors import Terminated


@pytest.fixture
def saved_handlers():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize(
    ("sig", "raised"), [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, Terminated)]
)
def test_the_first_signal_starts_cleanup_and_later_ones_cannot_cut_it_short(
    saved_handlers, sig, raised
):
    with pytest.raises(raised) as caught:
        options.interrupted(sig, None)
    assert isinstance(caught.value, Terminated) == (sig == signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


def test_handlers_are_restored_after_a_command(saved_handlers):
    from click.testing import CliRunner

    before = signal.getsignal(signal.SIGTERM)
    assert CliRunner().invoke(main, ["list", "--torch", "1.4"]).exit_code == 0
    assert signal.getsignal(signal.SIGTERM) == before


class GoneContainer:
    """A container whose engine went away: every call fails with a connection error."""

    def __init__(self):
        self.calls = []

    def _gone(self, name):
        self.calls.append(name)
        raise requests.exceptions.ConnectionError("Connection refused")

    def stop(self, timeout=None):
        self._gone("stop")

    def remove(self, force=False):
        self._gone("remove")

    def reload(self):
        self._gone("reload")


def test_cleanup_with_a_lost_engine_raises_nothing():
    made = GoneContainer()
    engine._remove(made)  # must not replace the error that brought us here
    assert made.calls == ["stop", "remove", "reload"]


def test_a_build_cancelled_before_it_starts_never_starts(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "build_command", lambda: ["/nonexistent/docker", "build"])
    engine.cancel_builds()
    try:
        outcome = engine.build(
            context=tmp_path,
            dockerfile=tmp_path / "Dockerfile",
            tags=["envkit-test/never:latest"],
            build_args={},
            labels={},
            log_path=tmp_path / "build.log",
        )
    finally:
        engine.allow_builds()
    assert outcome.ok is False and isinstance(outcome.interrupted, KeyboardInterrupt)
    assert "interrupted before the build started" in Path(tmp_path / "build.log").read_text()
