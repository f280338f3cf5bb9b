"""Interrupt envkit at random moments, then count what each interrupt left behind.

Each trial starts one envkit command in a fresh folder, waits a random time, and sends SIGINT
to its process group (as a terminal's Ctrl-C does) or SIGTERM to the process (as `kill` or a
CI runner does). After it exits the trial counts:

- containers: envkit-labelled containers of the soak's images still on the engine;
- processes: envkit or its docker clients still running (or a command that did not exit);
- temp files: envkit-* in the soak's private TMPDIR (envkit-build-*, envkit-iid-*, ...) and
  `.NAME.*.tmp` files anywhere under the soak's folder (beside envkit.yaml, envkit.lock, the
  bench report, the build logs, the cache);
- half-written files: an envkit.yaml, envkit.lock or bench report that exists but is empty or
  does not parse.

Commands (round robin, in a random order each round): build (a small CPU entry of
tests/data/matrix-ci.yaml from the local wheelhouse, --force --no-cache), run (`sleep` in its
image), bench (--quick in its image), lock, init (--cuda cpu). Everything is local: the build
installs torch from the wheelhouse and only its other packages from the configured index.

    python scripts/soak.py -n 200 [--seed 1] [--wheelhouse DIR] [--ca-cert FILE]

Prints one JSON summary; exits 1 if anything leaked, 2 if the soak could not start.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MATRIX = REPO / "tests" / "data" / "matrix-ci.yaml"
ENTRY = "ci-cpu"  # copied under a name of the soak's own, which labels its containers
COMMANDS = ("build", "run", "bench", "lock", "init")
# The latest moment (s after start) a signal is sent: most land while the command works.
LATEST = {"build": 12.0, "run": 4.0, "bench": 8.0, "lock": 1.8, "init": 0.25}
EXIT_WAIT = 90  # s a command may take to clean up after the signal (builds: 20 s at most)
LEAK_KINDS = ("containers", "processes", "temp_files", "half_written")


def _sigint_default() -> None:
    # A shell's background job (`soak.py &`) ignores SIGINT, and its children would too.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.root = Path(tempfile.mkdtemp(prefix="envkit-soak-"))
        self.tmp = self.root / "tmp"
        self.tmp.mkdir()
        self.prefix = f"envkit-soak-{os.getpid()}"
        self.entry = f"soak-{os.getpid()}"
        self.matrix = self.root / "matrix.yaml"
        self.matrix.write_text(MATRIX.read_text().replace(f"  {ENTRY}:", f"  {self.entry}:"))
        self.env = dict(
            os.environ,
            TMPDIR=str(self.tmp),
            XDG_CACHE_HOME=str(self.root / "cache"),
            PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        )
        self.env.pop("ENVKIT_KEEP_CONTAINERS", None)
        self.source = ["--wheelhouse", str(args.wheelhouse), "--ca-cert", str(args.ca_cert)]
        self.details: list[str] = []

    # ------------------------------------------------------------------ commands

    def envkit(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "envkit", "--matrix", str(self.matrix), *args]

    def command(self, name: str, folder: Path) -> list[str]:
        tag = ["--tag", self.prefix]
        logs = ["--log-dir", str(self.root / "logs")]
        if name == "build":
            return self.envkit(
                "build", self.entry, *tag, *self.source, "--force", "--no-cache", *logs
            )
        if name == "run":
            return self.envkit("run", self.entry, *tag, "--gpus", "none", "--", "sleep", "30")
        if name == "bench":
            out = ["--out", str(folder / "bench")]
            return self.envkit("bench", self.entry, *tag, "--gpus", "none", "--quick", *out)
        if name == "lock":
            out = ["--out", str(folder / "envkit.lock")]
            return self.envkit("lock", self.entry, *tag, *self.source, *out)
        (folder / "requirements.txt").write_text("torch==2.13.0\n")
        return self.envkit("init", "--cuda", "cpu", str(folder))

    def prepare(self) -> None:
        """The soak's own image of the entry (from the layer cache when it was built before)."""
        done = subprocess.run(
            self.envkit(
                "build", self.entry, "--tag", self.prefix, *self.source, "--log-dir", str(self.root)
            ),
            env=self.env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if done.returncode != 0:
            raise SystemExit(f"soak: could not build {self.entry}:\n{done.stderr[-3000:]}")

    # ------------------------------------------------------------------ one trial

    def trial(self, number: int, name: str) -> dict:
        folder = self.root / "trials" / f"{number:04d}-{name}"
        folder.mkdir(parents=True)
        argv = self.command(name, folder)
        sent = signal.SIGINT if self.rng.random() < 0.7 else signal.SIGTERM
        delay = self.rng.uniform(0, LATEST[name])
        with open(folder / "output.txt", "w") as output:
            proc = subprocess.Popen(
                argv,
                cwd=folder,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_sigint_default,
            )
            record = {"command": name, "signal": sent.name, "delay": round(delay, 2)}
            try:
                proc.wait(timeout=delay)
                record["interrupted"] = False  # it ended before the signal
            except subprocess.TimeoutExpired:
                record["interrupted"] = True
                if sent == signal.SIGINT:
                    os.killpg(proc.pid, sent)
                else:
                    proc.send_signal(sent)
            hung = False
            try:
                proc.wait(timeout=EXIT_WAIT)
            except subprocess.TimeoutExpired:
                hung = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        record["exit_code"] = proc.returncode
        record["leaks"] = {
            "containers": self.leaked_containers(folder),
            "processes": self.leaked_processes(folder) + int(hung),
            "temp_files": self.leaked_temp_files(folder),
            "half_written": self.half_written(folder),
        }
        if hung:
            self.details.append(f"{folder.name}: still running {EXIT_WAIT}s after {sent.name}")
        (folder / "record.json").write_text(json.dumps(record) + "\n")
        return record

    # ------------------------------------------------------------------ what was left

    def leaked_containers(self, folder: Path) -> int:
        """Containers of the soak's entry (by label: lock names its image by id)."""
        import docker

        client = docker.from_env(timeout=60)
        label = f"io.envkit.entry={self.entry}"
        found = 0
        for made in client.containers.list(all=True, filters={"label": label}):
            found += 1
            self.details.append(f"{folder.name}: container {made.name} ({made.status})")
            made.remove(force=True)
        return found

    def leaked_processes(self, folder: Path) -> int:
        """Processes whose command line names the soak's folder or images, after up to 5 s."""
        deadline = time.monotonic() + 5
        while True:
            found = []
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit() or int(entry.name) == os.getpid():
                    continue
                try:
                    line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                if str(self.root) in line or f"{self.prefix}/" in line:
                    found.append((int(entry.name), line))
            if not found or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for pid, line in found:
            self.details.append(f"{folder.name}: process {pid}: {line[:160]}")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(found)

    def leaked_temp_files(self, folder: Path) -> int:
        found = [p for p in self.tmp.iterdir() if p.name.startswith("envkit-")]
        found += [p for p in self.root.rglob(".*.tmp")]
        for path in found:
            self.details.append(f"{folder.name}: temporary file {path}")
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        return len(found)

    def half_written(self, folder: Path) -> int:
        from envkit import lock, project, report
        from envkit.errors import EnvkitError

        checks = {
            folder / "envkit.yaml": lambda p: project.load_project(p.parent),
            folder / "envkit.lock": lock.read_lock,
            folder / "bench" / f"bench-{self.entry}.json": report.load_bench,
        }
        found = 0
        for path, read in checks.items():
            if not path.exists():
                continue
            try:
                if path.stat().st_size == 0:
                    raise EnvkitError("empty")
                read(path)
            except (EnvkitError, ValueError, OSError) as exc:
                found += 1
                self.details.append(f"{folder.name}: half-written {path.name}: {exc}")
        return found

    # ------------------------------------------------------------------ the whole soak

    def run(self) -> dict:
        started = time.monotonic()
        self.prepare()
        order: list[str] = []
        while len(order) < self.args.interrupts:
            round_ = list(self.args.only or COMMANDS)
            self.rng.shuffle(round_)
            order += round_
        records = [self.trial(i, name) for i, name in enumerate(order[: self.args.interrupts])]
        per_command = {}
        for name in self.args.only or COMMANDS:
            mine = [r for r in records if r["command"] == name]
            codes: dict[str, int] = {}
            for r in mine:
                codes[str(r["exit_code"])] = codes.get(str(r["exit_code"]), 0) + 1
            per_command[name] = {
                "trials": len(mine),
                "interrupted": sum(r["interrupted"] for r in mine),
                "sigint": sum(r["interrupted"] and r["signal"] == "SIGINT" for r in mine),
                "sigterm": sum(r["interrupted"] and r["signal"] == "SIGTERM" for r in mine),
                "exit_codes": dict(sorted(codes.items())),
                "leaks": {k: sum(r["leaks"][k] for r in mine) for k in LEAK_KINDS},
            }
        totals = {k: sum(c["leaks"][k] for c in per_command.values()) for k in LEAK_KINDS}
        return {
            "trials": len(records),
            "interrupted": sum(r["interrupted"] for r in records),
            "seed": self.args.seed,
            "seconds": round(time.monotonic() - started, 1),
            "per_command": per_command,
            "leaks": totals,
            "leaked": any(totals.values()),
            "details": self.details[:50],
        }

    def close(self) -> None:
        """Untag the soak's images (a container left behind may hold one: then it stays)."""
        import docker

        client = docker.from_env(timeout=60)
        for image in client.images.list(name=f"{self.prefix}/{self.entry}"):
            for tag in image.tags:
                try:
                    client.images.remove(tag)
                except docker.errors.APIError as exc:
                    print(f"soak: {tag} stays: {exc}", file=sys.stderr)
        if not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def main(argv=None) -> int:
    cache = Path(os.environ.get("ENVKIT_TEST_CACHE", "/tmp/envkit-test-cache"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--interrupts", type=int, default=200, help="trials to run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--wheelhouse",
        type=Path,
        default=cache / "wheelhouse-cpu",
        help="folder with the CPU torch wheel (the engine tests fill the default one)",
    )
    parser.add_argument(
        "--ca-cert",
        type=Path,
        default=Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"),
        help="CA bundle for the build's index (this network's TLS proxy)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the soak's folder")
    parser.add_argument(
        "--only", action="append", choices=COMMANDS, help="soak these commands only (repeat)"
    )
    args = parser.parse_args(argv)
    if not any(args.wheelhouse.glob("torch-*.whl")):
        print(
            f"soak: no torch wheel in {args.wheelhouse} (run the engine tests once, or pass "
            "--wheelhouse)",
            file=sys.stderr,
        )
        return 2
    soak = Soak(args)
    try:
        summary = soak.run()
        summary["command"] = " ".join(["python", "scripts/soak.py", *(argv or sys.argv[1:])])
        print(json.dumps(summary, indent=2), flush=True)
    finally:
        soak.close()
    return 1 if summary["leaked"] else 0


if __name__ == "__main__":
    sys.exit(main())
