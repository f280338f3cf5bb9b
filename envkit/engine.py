"""The one module that talks to Docker: the SDK for images and containers, the CLI for BuildKit.

The SDK's build endpoint drives the legacy builder (no secrets, no cache mounts), so builds go
through a docker client that speaks BuildKit; everything else goes through the SDK.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import credentials, files
from .errors import (
    BuildFailed,
    ContainerStartFailed,
    EngineUnavailable,
    EnvkitError,
    ImageMissing,
    ProgramTimedOut,
    Terminated,
)
from .gpu.host import TOOLKIT_FIX, engine_is_rootless, runtime_of_engine
from .gpu.known_errors import explain_error

LABEL = "io.envkit"  # every container envkit starts carries this label
KEEP_ENV = "ENVKIT_KEEP_CONTAINERS"  # set to 1 to keep containers for debugging
DOCKER_CLI_ENV = "ENVKIT_DOCKER"  # path of a BuildKit-capable docker client
_CLIENT = None
_RUNNING_BUILDS: set = set()  # build clients in flight, so an interrupt can cancel them all
_BUILDS_LOCK = threading.Lock()
_CANCELLED = threading.Event()  # set once builds are cancelled: no new one starts


def engine_endpoint(environ=None) -> tuple[str, str | None]:
    """Where the SDK (and the docker CLI) look for the engine: $DOCKER_HOST, else the docker
    CLI's context ($DOCKER_CONTEXT, then config.json's currentContext), else the local socket.
    Returns (address, name of the context that chose it, or None)."""
    environ = os.environ if environ is None else environ
    if environ.get("DOCKER_HOST"):
        return environ["DOCKER_HOST"], None
    try:
        from docker.context import ContextAPI

        context = ContextAPI.get_context(environ.get("DOCKER_CONTEXT") or None)
    except Exception:  # a broken config.json: the SDK falls back to the socket as well
        context = None
    if context is not None and context.Host and context.name != "default":
        return context.Host, context.name
    return "unix:///var/run/docker.sock", None


def _explain_connect_error(exc: Exception) -> EngineUnavailable:
    text = str(exc)
    host, context = engine_endpoint()
    where = f"{host} (docker context {context})" if context else host
    elsewhere = (
        "switch context (`docker context use default`) or set DOCKER_HOST"
        if context
        else "set DOCKER_HOST"
    )
    if "Permission denied" in text or "PermissionError" in text:
        return EngineUnavailable(
            f"permission denied on the Docker socket ({where})",
            "add your user to the docker group (`sudo usermod -aG docker $USER`, then log in "
            "again) or use rootless Docker",
        )
    if "No such file" in text or "FileNotFoundError" in text or "Connection refused" in text:
        return EngineUnavailable(
            f"no Docker daemon is answering at {where}",
            "start it (`sudo systemctl start docker`; rootless: `systemctl --user start "
            f"docker`), or {elsewhere} to a running engine",
        )
    return EngineUnavailable(
        f"cannot reach the Docker engine at {where}: {text}",
        f"check that dockerd is running, or {elsewhere} to the right engine",
    )


def client():
    """A connected docker SDK client (cached); raises EngineUnavailable with the fix."""
    global _CLIENT
    if _CLIENT is None:
        import docker  # imported here so that commands which never touch the engine stay fast

        try:
            made = docker.from_env(timeout=120)
            made.ping()
        except Exception as exc:  # the SDK raises several unrelated types for one failure
            raise _explain_connect_error(exc) from None
        _CLIENT = made
    return _CLIENT


def engine_info() -> dict:
    """`docker info` as a dict."""
    return client().info()


def is_rootless(info: dict | None = None) -> bool:
    """Whether the engine runs rootless: uid 0 in its containers is the user who runs dockerd,
    and every other uid maps to one of that user's subordinate uids."""
    return engine_is_rootless(info if info is not None else engine_info())


def host_user() -> str:
    """The --user under which files a container writes into a bind mount belong to the caller:
    their uid:gid, or 0:0 on a rootless engine, where container root is the caller."""
    return "0:0" if is_rootless() else f"{os.getuid()}:{os.getgid()}"


# ---------------------------------------------------------------------------- the docker CLI


def _buildkit_kind(path: str) -> str | None:
    """How a docker client builds with BuildKit: "buildx" (the plugin), "builtin" (clients
    before 23.0 carry BuildKit themselves), or None when it cannot."""
    try:
        buildx = subprocess.run([path, "buildx", "version"], capture_output=True, timeout=20)
        if buildx.returncode == 0:
            return "buildx"
        version = subprocess.run(
            [path, "version", "--format", "{{.Client.Version}}"],
            capture_output=True,
            text=True,
            timeout=20,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    major = re.match(r"(\d+)\.", version)
    return "builtin" if major and int(major.group(1)) < 23 else None


def _cli_candidates() -> list[str]:
    """Executable docker clients, in order of preference ($ENVKIT_DOCKER, PATH, Debian's)."""
    found = []
    for path in (os.environ.get(DOCKER_CLI_ENV), shutil.which("docker"), "/usr/bin/docker"):
        if path and path not in found and os.access(path, os.X_OK):
            found.append(path)
    return found


def plain_docker_cli() -> str:
    """Path of any docker client (enough for `docker run`; builds need build_command())."""
    found = _cli_candidates()
    if not found:
        raise EngineUnavailable(
            "no docker client on PATH",
            f"install the docker CLI (docker-ce-cli or docker.io) or set {DOCKER_CLI_ENV}",
        )
    return found[0]


def build_command() -> list[str]:
    """The start of a build command line for a docker client that can run BuildKit builds
    (secrets, cache mounts): `docker buildx build --load`, or `docker build` on old clients."""
    path, kind = _buildkit_cli(os.environ.get(DOCKER_CLI_ENV), os.environ.get("PATH"))
    return [path, "buildx", "build", "--load"] if kind == "buildx" else [path, "build"]


@functools.cache
def _buildkit_cli(chosen: str | None, search_path: str | None) -> tuple[str, str]:
    """The first BuildKit-capable client and its kind, asked once per $ENVKIT_DOCKER and $PATH."""
    seen = _cli_candidates()
    for path in seen:
        kind = _buildkit_kind(path)
        if kind:
            return path, kind
    raise EngineUnavailable(
        "no docker client with BuildKit found"
        + (f" (tried {', '.join(seen)})" if seen else " (no docker client on PATH)"),
        "install the buildx plugin (docker-buildx-plugin) or Debian's docker.io client, "
        f"or point {DOCKER_CLI_ENV} at one",
    )


# ----------------------------------------------------------------------------------- images


def image_id(ref: str) -> str | None:
    """The local image id for a reference, or None when there is no such image."""
    import docker

    try:
        return client().images.get(ref).id
    except docker.errors.ImageNotFound:
        return None


def image_labels(ref: str) -> dict | None:
    """Labels of a local image, or None when it does not exist."""
    import docker

    try:
        return dict(client().images.get(ref).labels or {})
    except docker.errors.ImageNotFound:
        return None


def image_attrs(ref: str) -> dict | None:
    """The engine's inspect data for a local image, or None."""
    import docker

    try:
        return client().images.get(ref).attrs
    except docker.errors.ImageNotFound:
        return None


def tag_image(ref: str, repository: str, tag: str) -> None:
    """Add repository:tag to an existing image."""
    client().images.get(ref).tag(repository, tag)


def push_image(repository: str, tag: str) -> None:
    """Push repository:tag, raising EnvkitError with the registry's message on failure."""
    for chunk in client().images.push(repository, tag, stream=True, decode=True):
        if "error" in chunk:
            raise EnvkitError(
                f"push of {repository}:{tag} failed: {credentials.redact(chunk['error'])}",
                "log in to the registry (`docker login`) and check the name",
            )


@dataclass
class BuildEvent:
    """Something a build reported: a new step, a phase of a long one (a large download, the
    install, the export of the image), or a line of output."""

    kind: str  # "step", "phase" or "log"
    text: str
    step: int | None = None
    steps: int | None = None


@dataclass
class BuildOutcome:
    """What the builder returned."""

    ok: bool
    image_id: str | None
    seconds: float
    failing_step: str | None = None
    tail: list[str] = field(default_factory=list)
    interrupted: KeyboardInterrupt | None = None  # the Ctrl-C (or SIGTERM) that stopped it


_STEP = re.compile(r"^#(\d+) \[(?:[\w.-]+ )?(\d+)/(\d+)\] (.*)$")
_VERTEX_LINE = re.compile(r"^#(\d+) (?:\d+\.\d+ )?(.*)$")
_VERTEX_ERROR = re.compile(r"^#(\d+) ERROR: (.*)$")
# pip names each file before it downloads it; without a terminal its bar comes only at the end.
_DOWNLOAD = re.compile(r"^\s*Downloading (\S+) \((\d+(?:\.\d+)?) (kB|MB|GB)\)$")
_INSTALLING = re.compile(r"^\s*Installing collected packages: (.*)$")
BIG_DOWNLOAD_MB = 50  # torch and the nvidia-* wheels: minutes of a build


def build_phase(text: str) -> str | None:
    """What a line of build output says the build is busy with, worth telling the user: a large
    download, pip installing, the image being exported; None for any other line."""
    download = _DOWNLOAD.match(text)
    if download:
        name, size, unit = download.groups()
        megabytes = float(size) * {"kB": 1 / 1024, "MB": 1, "GB": 1024}[unit]
        if megabytes >= BIG_DOWNLOAD_MB:
            return f"downloading {name.rsplit('/', 1)[-1]} ({size} {unit})"
        return None
    installing = _INSTALLING.match(text)
    if installing:
        names = [n.strip() for n in installing.group(1).split(",") if n.strip()]
        return f"installing {len(names)} package{'s' if len(names) != 1 else ''}"
    if text.strip() == "exporting to image":
        return "exporting the image"
    return None


def build(
    *,
    context: Path,
    dockerfile: Path,
    tags: list[str],
    build_args: dict[str, str],
    labels: dict[str, str],
    log_path: Path,
    secrets: dict[str, Path] | None = None,
    no_cache: bool = False,
    pull: bool = False,
    on_event: Callable[[BuildEvent], None] | None = None,
) -> BuildOutcome:
    """Run one BuildKit build, streaming events and writing the full log to `log_path` (mode
    0600, whole once the build ends; an EnvkitError when it cannot be written, the build then
    cancelled)."""
    with tempfile.TemporaryDirectory(prefix="envkit-iid-") as private:
        # The image id comes back through a file of our own, never beside the log: a full or
        # unwritable log folder must not turn a good build into a failed one.
        iidfile = Path(private) / "image.iid"
        with files.atomic_write(
            log_path, mode=0o600, fix="pass --log-dir with a writable folder"
        ) as log:
            outcome = _run_build(
                _build_cli_command(
                    context, dockerfile, iidfile, tags, build_args, labels, secrets, no_cache, pull
                ),
                log,
                on_event or (lambda event: None),
            )
            if outcome.ok:
                outcome.image_id = iidfile.read_text().strip() if iidfile.exists() else None
                outcome.ok = bool(outcome.image_id)
        return outcome


def _build_cli_command(
    context: Path,
    dockerfile: Path,
    iidfile: Path,
    tags: list[str],
    build_args: dict[str, str],
    labels: dict[str, str],
    secrets: dict[str, Path] | None,
    no_cache: bool,
    pull: bool,
) -> list[str]:
    cmd = build_command()
    cmd += ["--progress=plain", "--file", str(dockerfile), "--iidfile", str(iidfile)]
    for tag in tags:
        cmd += ["--tag", tag]
    for key, value in sorted(build_args.items()):
        cmd += ["--build-arg", f"{key}={value}"]
    for key, value in sorted(labels.items()):
        cmd += ["--label", f"{key}={value}"]
    for key, path in sorted((secrets or {}).items()):
        cmd += ["--secret", f"id={key},src={path}"]
    if no_cache:
        cmd.append("--no-cache")
    if pull:
        cmd.append("--pull")
    cmd.append(str(context))
    return cmd


def _run_build(
    cmd: list[str], log: files.Writer, emit: Callable[[BuildEvent], None]
) -> BuildOutcome:
    """Run the build client, writing its output to `log`; ok means it exited 0."""
    step_of: dict[str, str] = {}
    output_of: dict[str, list[str]] = {}
    last_lines: collections.deque[str] = collections.deque(maxlen=25)
    failing = None
    started = time.monotonic()
    log.write("$ " + credentials.redact(" ".join(cmd)) + "\n")
    # A new session keeps a terminal's Ctrl-C from reaching the client twice; we forward it.
    with _BUILDS_LOCK:
        if _CANCELLED.is_set():  # interrupted while this build was being prepared
            log.write("envkit: interrupted before the build started\n")
            return BuildOutcome(False, None, 0.0, interrupted=KeyboardInterrupt())
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, DOCKER_BUILDKIT="1"),
            errors="replace",
            start_new_session=True,
        )
        _RUNNING_BUILDS.add(proc)
    try:
        for raw in proc.stdout:
            line = credentials.redact(raw.rstrip("\n"))  # pip names the indexes it reads
            log.write(line + "\n")
            last_lines.append(line)
            step = _STEP.match(line)
            if step:
                vertex, n, m, text = step.groups()
                if vertex not in step_of:
                    step_of[vertex] = f"[{n}/{m}] {text}"
                    emit(BuildEvent("step", text, int(n), int(m)))
                continue
            error = _VERTEX_ERROR.match(line)
            if error and error.group(1) in step_of:
                failing = failing or error.group(1)
            vertex_line = _VERTEX_LINE.match(line)
            if vertex_line:
                output_of.setdefault(vertex_line.group(1), []).append(vertex_line.group(2))
                phase = build_phase(vertex_line.group(2))
                if phase:
                    emit(BuildEvent("phase", phase))
            emit(BuildEvent("log", line))
        code = proc.wait()
    except KeyboardInterrupt as interrupt:
        _stop(proc)
        log.write("envkit: interrupted\n")
        return BuildOutcome(False, None, time.monotonic() - started, interrupted=interrupt)
    finally:
        if proc.poll() is None:  # the log could not be written (or worse): cancel the build
            _stop(proc)
        _RUNNING_BUILDS.discard(proc)
    seconds = time.monotonic() - started
    if code == 0:  # ok once the image id is read; the tail tells why when there is none
        return BuildOutcome(True, None, seconds, None, list(last_lines))
    if failing:
        tail = output_of.get(failing, [])[-25:]
        return BuildOutcome(False, None, seconds, step_of.get(failing), tail)
    return BuildOutcome(False, None, seconds, None, list(last_lines))


def allow_builds() -> None:
    """Undo cancel_builds() for a new batch (a process may build again after an interrupt)."""
    _CANCELLED.clear()


def cancel_builds() -> None:
    """Cancel every build in flight, and any about to start (the user interrupted --jobs)."""
    with _BUILDS_LOCK:
        _CANCELLED.set()
        running = list(_RUNNING_BUILDS)
    for proc in running:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    """Interrupt a child build client (it cancels the build), then kill it if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ------------------------------------------------------------------------------- containers


def container_name(entry: str) -> str:
    """A unique, readable container name for an entry."""
    safe = re.sub(r"[^a-zA-Z0-9_.-]", "-", entry)
    return f"envkit-{safe}-{uuid.uuid4().hex[:8]}"


def device_requests(gpus: str | None) -> list:
    """Docker device requests for `--gpus all|none|0,1` (empty for none)."""
    import docker

    if not gpus or gpus == "none":
        return []
    if gpus == "all":
        return [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    ids = [g.strip() for g in gpus.split(",") if g.strip()]
    return [docker.types.DeviceRequest(device_ids=ids, capabilities=[["gpu"]])]


def _start_error(exc: Exception, image: str) -> ContainerStartFailed:
    import docker

    text = getattr(exc, "explanation", None) or str(exc)
    if isinstance(exc, docker.errors.ImageNotFound):
        return ImageMissing(
            f"image {image} is not here: {text}", "build it first with `envkit build NAME`"
        )
    if "could not select device driver" in text or "nvidia-container-cli" in text:
        known = explain_error(text)
        return ContainerStartFailed(
            f"the engine could not attach GPUs: {text}",
            (known[1] if known else TOOLKIT_FIX) + ", or run with --gpus none",
        )
    return ContainerStartFailed(f"the container could not start: {text}", "see `envkit doctor`")


@contextlib.contextmanager
def container(
    image: str,
    command: list[str],
    *,
    entry: str = "adhoc",
    gpus: str | None = None,
    mounts: list | None = None,
    environment: dict | None = None,
    shm_size: str | None = None,
    ipc_mode: str | None = None,
    user: str | None = None,
    working_dir: str | None = None,
    tty: bool = False,
    stdin_open: bool = False,
) -> Iterator:
    """A started container that is stopped, killed if need be, and removed on exit.

    Its first process is an init (docker-init), so a stop reaches a command that installs no
    SIGTERM handler at once instead of after the engine's grace period."""
    import docker

    engine = client()
    name = container_name(entry)
    made = None
    try:
        try:
            made = _despite_interrupts(
                lambda: engine.containers.create(
                    image,
                    command,
                    name=name,
                    labels={LABEL: "1", f"{LABEL}.entry": entry},
                    init=True,
                    device_requests=device_requests(gpus),
                    mounts=mounts or [],
                    environment=environment or {},
                    shm_size=shm_size,
                    ipc_mode=ipc_mode,
                    user=user,
                    working_dir=working_dir,
                    tty=tty,
                    stdin_open=stdin_open,
                )
            )
        except docker.errors.APIError as exc:
            raise _start_error(exc, image) from None
        try:
            made.start()
        except docker.errors.APIError as exc:
            raise _start_error(exc, image) from None
        yield made
    finally:
        if os.environ.get(KEEP_ENV) != "1":
            if made is not None:
                _remove(made)
            else:  # the create failed or was interrupted after the engine made it
                _remove_by_name(name)


def _despite_interrupts(call: Callable):
    """call() run to its end in a worker thread, an interrupt meanwhile re-raised after it: an
    engine request cut off half-way would leave unknown whether the engine did the work."""
    outcome: dict = {}
    began, done = threading.Event(), threading.Event()

    def work():
        began.set()
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=work, daemon=True)
    interrupted = None
    started = True
    try:
        worker.start()
    except KeyboardInterrupt as exc:  # start() waits for the thread, which may be running
        interrupted = exc
        started = began.wait(timeout=5.0)  # not begun by then: it never started
    # Waited for through an event of our own: Python 3.11's Thread.join, cut short by a handler
    # that raises, can mark a running thread stopped (bpo-45274), and is_alive() then lies.
    while started and not done.is_set():
        try:
            done.wait()
        except KeyboardInterrupt as exc:
            interrupted = interrupted or exc
    if interrupted is not None:
        raise interrupted
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _cleanup_errors() -> tuple:
    """What cleaning up may raise without hiding the failure that led to it: the engine's
    refusals, and the connection errors of an engine that went away."""
    import docker
    import requests

    return (docker.errors.APIError, requests.exceptions.RequestException)


def _remove(made) -> None:
    """Stop, then force-remove, then wait until the engine no longer lists the container."""
    import docker

    quiet = _cleanup_errors()
    with contextlib.suppress(*quiet):
        made.stop(timeout=5)
    with contextlib.suppress(*quiet):
        made.remove(force=True)
    # A --rm container may already be mid-removal (409 above); wait for the engine to finish.
    # One the engine was still starting refuses removal at first: ask again while it is there.
    for _ in range(50):
        try:
            made.reload()
        except docker.errors.NotFound:
            return
        except quiet:
            return  # the engine is gone, and its containers with it
        time.sleep(0.2)
        with contextlib.suppress(*quiet):
            made.remove(force=True)


@dataclass
class ProgramResult:
    """What a program run in a container printed and returned."""

    exit_code: int
    stdout: str
    stderr: str


def run_program(
    image: str,
    program: Path,
    args: list[str] = (),
    *,
    gpus: str | None = None,
    shm_size: str | None = None,
    timeout: float = 600,
    entry: str = "adhoc",
    extra_files: list[Path] = (),
    out_dir: Path | None = None,
    on_stderr: Callable[[str], None] | None = None,
) -> ProgramResult:
    """Run `python3 PROGRAM ARGS` in a throw-away container of `image` and collect its output.

    The program (and `extra_files`) are mounted read-only at /opt/envkit; `out_dir`, if given,
    is mounted writable at /out.
    """
    import docker

    mounts = [
        docker.types.Mount("/opt/envkit/" + f.name, str(f.resolve()), type="bind", read_only=True)
        for f in (program, *extra_files)
    ]
    if out_dir is not None:
        mounts.append(docker.types.Mount("/out", str(out_dir.resolve()), type="bind"))
    command = ["python3", "/opt/envkit/" + program.name, *args]
    user = host_user() if out_dir is not None else None
    return run_command(
        image,
        command,
        entry=entry,
        timeout=timeout,
        gpus=gpus,
        mounts=mounts,
        shm_size=shm_size,
        user=user,
        on_stderr=on_stderr,
    )


def _follow_stderr(made, on_line: Callable[[str], None], into: list[str]) -> threading.Thread:
    """A thread passing each complete stderr line of a running container to `on_line`."""

    def follow():
        pending = b""
        with contextlib.suppress(Exception):  # the stream ends (or breaks) when the container goes
            for chunk in made.logs(stream=True, follow=True, stdout=False, stderr=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    text = line.decode("utf-8", "replace")
                    into.append(text + "\n")
                    on_line(text)

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    return thread


def run_command(
    image: str,
    command: list[str],
    *,
    entry: str = "adhoc",
    timeout: float = 300,
    on_stderr: Callable[[str], None] | None = None,
    **settings,
) -> ProgramResult:
    """Run a command in a throw-away container of `image`, collecting its output.

    `on_stderr`, if given, gets each line the command writes to stderr while it runs (progress).
    `settings` are passed to container() (gpus, mounts, shm_size, user, ...).
    """
    with container(image, command, entry=entry, environment={"HOME": "/tmp"}, **settings) as made:
        followed: list[str] = []
        follower = _follow_stderr(made, on_stderr, followed) if on_stderr else None
        started = time.monotonic()
        try:
            status = made.wait(timeout=timeout)
        except Exception as exc:  # requests raises its own timeout and connection types
            import docker

            if isinstance(exc, docker.errors.NotFound):
                raise EnvkitError(
                    f"the container running {' '.join(command)} was removed while it ran",
                    "something else removed it (`envkit clean` in another shell?); run again",
                ) from None
            if time.monotonic() - started < timeout:
                raise EngineUnavailable(
                    f"lost the Docker engine while {' '.join(command)} ran: {exc}",
                    "check that dockerd is still running (`docker info`), then try again",
                ) from None
            raise ProgramTimedOut(
                f"{' '.join(command)} did not finish within {timeout:.0f}s",
                f"raise the timeout, or look inside the container with {KEEP_ENV}=1",
            ) from None
        stdout = made.logs(stdout=True, stderr=False).decode("utf-8", "replace")
        stderr = made.logs(stdout=False, stderr=True).decode("utf-8", "replace")
        if follower is not None:
            # A follow stream can end before the last lines (an unterminated one above all):
            # pass on whatever the complete log holds beyond what was already seen.
            follower.join(timeout=30)
            seen = "".join(followed)
            if stderr.startswith(seen):
                for line in stderr[len(seen) :].splitlines():
                    on_stderr(line)
    code = int(status.get("StatusCode", 1))
    not_started = _INIT_EXEC_FAILED.fullmatch(stderr.strip())
    if code in (126, 127) and not stdout and not_started:
        # Under an init the engine starts the container and the init fails to exec the command:
        # the same failure the engine reports itself for a container without one.
        raise ContainerStartFailed(
            f"the container could not start: exec {not_started.group(1)}: {not_started.group(2)}",
            "see `envkit doctor`",
        )
    return ProgramResult(code, stdout, stderr)


# How docker-init (tini) reports a command it cannot exec (it then exits 126 or 127).
_INIT_EXEC_FAILED = re.compile(r"\[FATAL tini \(\d+\)\] exec (.+) failed: (.+)")


def remove_image(ref: str) -> None:
    """Remove one tag (and the image when it was the last tag); missing is fine."""
    import docker

    with contextlib.suppress(docker.errors.ImageNotFound):
        client().images.remove(ref)


def remove_if_unused(image_id: str) -> bool:
    """Remove an image no tag names and nothing uses (what a rebuild replaced); True if gone.
    The engine itself refuses while a container or a child image needs it."""
    import docker

    try:
        if client().images.get(image_id).tags:
            return False
        client().images.remove(image_id)
    except docker.errors.ImageNotFound:
        return True
    except docker.errors.APIError:  # 409: a container or another image still uses it
        return False
    return True


def remove_dangling_images() -> tuple[list[str], list[str]]:
    """Remove envkit's untagged images (label io.envkit.entry; a rebuild that made a new image
    while a container used the old one leaves one); returns the ids removed and the ids kept
    because a container or another image still uses them."""
    removed, kept = [], []
    found = client().images.list(filters={"dangling": True, "label": f"{LABEL}.entry"})
    for image in found:
        (removed if remove_if_unused(image.id) else kept).append(image.id)
    return removed, kept


def leftover_containers() -> list:
    """Every container carrying envkit's label, running or not."""
    return client().containers.list(all=True, filters={"label": LABEL})


def remove_leftovers() -> list[str]:
    """Stop and remove every envkit-labelled container; returns their names."""
    names = []
    for made in leftover_containers():
        names.append(made.name)
        _remove(made)
    return names


def require_built(ref: str, name: str) -> None:
    """Raise a clear error when the image for an entry has not been built."""
    if image_id(ref) is None:
        raise BuildFailed(f"no image {ref} for {name}", f"build it first: envkit build {name}")


# ----------------------------------------------------------------------- interactive runs


def gpu_runtime_available(info: dict | None = None) -> bool:
    """Whether the engine can attach NVIDIA GPUs: the same answer doctor's gpu-runtime check
    gives (envkit.gpu.host.gpu_runtime)."""
    return runtime_of_engine(info if info is not None else engine_info()).can_attach


@dataclass(frozen=True)
class RunSpec:
    """How to run a user's command in an image."""

    image: str
    command: tuple[str, ...]
    entry: str
    workdir: Path
    gpus: str | None = None
    user: str | None = None
    shm_size: str | None = "8g"
    ipc_host: bool = False
    env: tuple[str, ...] = ()
    interactive: bool = False
    tty: bool = False


def _csv_field(text: str) -> str:
    """One field of a `--mount` value, which the docker CLI reads as a CSV record."""
    return '"' + text.replace('"', '""') + '"' if re.search(r'[",\r\n]', text) else text


def run_cli_command(spec: RunSpec, name: str) -> list[str]:
    """The docker CLI command line for a RunSpec (a named, labelled, self-removing container).

    `--init` puts a minimal init first in the container, so the command is not PID 1 (which
    ignores SIGINT and SIGTERM unless it handles them) and Ctrl-C reaches it."""
    cmd = [
        plain_docker_cli(),
        "run",
        "--rm",
        "--init",
        "--name",
        name,
        "--label",
        f"{LABEL}=1",
        "--label",
        f"{LABEL}.entry={spec.entry}",
        "--mount",
        "type=bind," + _csv_field(f"source={spec.workdir.resolve()}") + ",target=/workspace",
        "--workdir",
        "/workspace",
        "--env",
        "HOME=/tmp",
    ]
    if spec.user:
        cmd += ["--user", spec.user]
    if spec.gpus and spec.gpus != "none":
        cmd += ["--gpus", spec.gpus if spec.gpus == "all" else f'"device={spec.gpus}"']
    if spec.ipc_host:
        cmd += ["--ipc", "host"]
    elif spec.shm_size:
        cmd += ["--shm-size", spec.shm_size]
    for item in spec.env:
        cmd += ["--env", item]
    if spec.interactive:
        cmd.append("--interactive")
    if spec.tty:
        cmd.append("--tty")
    return [*cmd, spec.image, *spec.command]


def run_attached(spec: RunSpec) -> int:
    """Run a command in a container attached to this terminal; return its exit code.

    The docker client forwards signals to the container; whatever happens, the container is
    removed before this returns.
    """
    name = container_name(spec.entry)
    cmd = run_cli_command(spec, name)
    proc = subprocess.Popen(cmd)
    interrupted = False
    try:
        return proc.wait()
    except KeyboardInterrupt as interrupt:
        interrupted = True
        # Pass the signal on (the client proxies it into the container), give it a moment:
        # SIGTERM stays SIGTERM, so programs that checkpoint on it still do.
        sent = signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sent)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise
    finally:
        # `--rm` normally removed it already; an engine that went away took it along.
        with contextlib.suppress(EnvkitError):
            found = _remove_by_name(name)
            if interrupted and not found and (proc.returncode or 0) < 0:
                # The client died of the signal itself (the terminal's Ctrl-C reaches it too),
                # perhaps with its create request in flight: the engine may make the container
                # a moment after the client is gone.
                for _ in range(10):
                    time.sleep(0.2)
                    if _remove_by_name(name):
                        break


def _remove_by_name(name: str) -> bool:
    """Remove the container called `name`; whether there was one."""
    try:
        made = client().containers.get(name)
    except _cleanup_errors():  # NotFound (the usual case: --rm removed it) or no engine
        return False
    _remove(made)
    return True
