"""Ctrl-C at a terminal while a bundled program runs on this host (envkit bench --host): the
terminal signals its whole foreground group; the user sees no traceback from the program."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from envkit import inside

REPO = Path(__file__).resolve().parents[2]


def _terminal_job():
    """preexec_fn: a process group of its own, as a shell gives a foreground job, where
    SIGINT has its default disposition."""
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Job:
    """A command started as a terminal's foreground job, its stderr collected as it comes."""

    def __init__(self, *cmd: str, cwd: Path = REPO):
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=_terminal_job,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.out = ""
        threading.Thread(target=self._read_out, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def _read_out(self):
        self.out = self.proc.stdout.read()

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"never printed {text!r}:\n{''.join(self.lines)}")
            time.sleep(0.1)

    def ctrl_c(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(timeout=60)
        time.sleep(0.5)  # the readers drain what was written before the end
        return code

    @property
    def stderr(self) -> str:
        return "".join(self.lines)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_program_run_on_the_host_is_stopped_by_envkit_not_by_the_terminal(tmp_path):
    # The program records every signal it gets; envkit must be the one that stops it.
    program = tmp_path / "program.py"
    program.write_text(
        "import os, signal, sys, time\n"
        f"log = {str(tmp_path / 'signals')!r}\n"
        "def note(sig, frame):\n"
        "    open(log, 'a').write(signal.Signals(sig).name + '\\n')\n"
        "    if sig == signal.SIGTERM:\n"
        "        sys.exit(0)\n"
        "signal.signal(signal.SIGINT, note)\n"
        "signal.signal(signal.SIGTERM, note)\n"
        f"open({str(tmp_path / 'pid')!r}, 'w').write(str(os.getpid()))\n"
        "sys.stderr.write('ready\\n'); sys.stderr.flush()\n"
        "time.sleep(60)\n"
    )
    driver = (
        "import sys\n"
        "from pathlib import Path\n"
        "from envkit import programs\n"
        "try:\n"
        "    programs.run(programs.Place(), Path(sys.argv[1]), timeout=60,\n"
        "                 on_stderr=lambda line: print(line, file=sys.stderr, flush=True))\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(130)\n"
    )
    job = Job(sys.executable, "-c", driver, str(program))
    job.wait_for("ready", timeout=30)
    assert job.ctrl_c() == 130, job.stderr
    assert (tmp_path / "signals").read_text().split() == ["SIGTERM"]
    assert not _alive(int((tmp_path / "pid").read_text()))


def test_ctrl_c_in_the_bench_prints_no_traceback(tmp_path):
    pytest.importorskip("torch")
    job = Job(sys.executable, str(inside.BENCH), "--quick", "--out", str(tmp_path / "b.json"))
    job.wait_for("[bench] ")
    assert job.ctrl_c() == 130
    assert "Traceback" not in job.stderr, job.stderr
    assert not (tmp_path / "b.json").exists()


def test_ctrl_c_in_envkit_bench_host_prints_no_traceback(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "results"
    job = Job(sys.executable, "-m", "envkit", "bench", "--host", "--quick", "--out", str(out))
    job.wait_for("[bench] ")
    assert job.ctrl_c() == 130
    assert "Traceback" not in job.stderr, job.stderr
    assert list(out.iterdir()) == []
