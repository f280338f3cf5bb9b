"""Interrupt handling that needs no engine: one-shot signals, cleanup that survives a lost engine,
builds that do not start once cancelled."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from envkit import engine
from envkit.cli import main, options
from envkit.errors import Terminated


@pytest.fixture(autouse=True)
def saved_handlers():
    """Each test starts with Ctrl-C raising KeyboardInterrupt, as at a terminal, and leaves the
    handlers as it found them. A test run started as a shell's background job (`cmd &`) has
    SIGINT ignored, which Python and the children it starts would otherwise inherit."""
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
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


class BusyContainer:
    """A container the engine is still starting when envkit removes it: the first removal is
    refused (409), a later one succeeds."""

    def __init__(self):
        self.calls = []
        self.removed = False

    def stop(self, timeout=None):
        self.calls.append("stop")

    def remove(self, force=False):
        import docker

        self.calls.append("remove")
        if self.calls.count("remove") == 1:
            raise docker.errors.APIError("409 Conflict: container is being started")
        self.removed = True

    def reload(self):
        import docker

        self.calls.append("reload")
        if self.removed:
            raise docker.errors.NotFound("gone")


def test_a_removal_the_engine_refuses_at_first_is_tried_again(monkeypatch):
    monkeypatch.setattr(engine.time, "sleep", lambda s: None)
    made = BusyContainer()
    engine._remove(made)
    assert made.removed, made.calls


def test_an_interrupted_run_removes_a_container_the_engine_finishes_creating_after(
    tmp_path, monkeypatch
):
    # The docker client dies of the Ctrl-C with its create request in flight: the engine
    # makes the container a moment after the client is gone.
    lookups = []

    def by_name(name):
        lookups.append(name)
        return len(lookups) >= 3  # found (and removed) on the third look

    monkeypatch.setattr(engine, "_remove_by_name", by_name)
    monkeypatch.setattr(engine, "run_cli_command", lambda spec, name: ["sleep", "30"])
    monkeypatch.setattr(engine.time, "sleep", lambda s: None)

    import subprocess as sp

    real_wait = sp.Popen.wait
    calls = []

    def wait(self, timeout=None):
        calls.append(timeout)
        if len(calls) == 1:
            self.send_signal(signal.SIGINT)  # the terminal's Ctrl-C reached the client too
            real_wait(self)
            raise KeyboardInterrupt
        return real_wait(self, timeout)

    monkeypatch.setattr(sp.Popen, "wait", wait)
    spec = engine.RunSpec(image="i", command=("true",), entry="e", workdir=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        engine.run_attached(spec)
    assert len(lookups) == 3


def test_an_interrupt_while_the_engine_call_starts_waits_for_the_call(monkeypatch):
    # Thread.start() waits for the new thread to run: a Ctrl-C in that wait must not leave
    # the call (a container create) going on behind the cleanup.
    import threading

    real_start = threading.Thread.start

    def start_then_interrupted(self):
        real_start(self)
        raise KeyboardInterrupt

    monkeypatch.setattr(threading.Thread, "start", start_then_interrupted)
    finished = []

    def slow_create():
        time.sleep(0.3)
        finished.append(True)
        return "made"

    with pytest.raises(KeyboardInterrupt):
        engine._despite_interrupts(slow_create)
    assert finished == [True]


def test_a_ctrl_c_while_waiting_for_the_engine_call_waits_for_the_call():
    # Python 3.11's Thread.join, cut short by a signal handler that raises, can mark the
    # thread stopped while it still runs (bpo-45274): the wait must not rely on it.
    import threading

    finished = []

    def slow_create():
        time.sleep(0.5)
        finished.append(True)
        return "made"

    threading.Timer(0.1, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        engine._despite_interrupts(slow_create)
    assert finished == [True]


@pytest.mark.parametrize(
    ("raised", "code", "word"),
    [(KeyboardInterrupt, 130, "interrupted"), (Terminated, 143, "terminated")],
)
def test_an_interrupt_while_the_command_is_still_loading_exits_like_one_after(
    monkeypatch, raised, code, word
):
    """A Ctrl-C in envkit's first moments (the command's module still importing) used to end
    in Click's 'Aborted!' and exit 1."""
    import envkit.cli

    def interrupted_import(name):
        raise raised()

    monkeypatch.setattr(envkit.cli.importlib, "import_module", interrupted_import)
    result = CliRunner().invoke(main, ["list"])
    assert result.exit_code == code, result.output
    assert word in result.output and "Aborted" not in result.output
