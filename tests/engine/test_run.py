"""envkit run against the real engine: mount ownership, exit codes, shared memory, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import CI_MATRIX, DOCKER, envkit_containers, interruptible, run_envkit

pytestmark = pytest.mark.docker

DATALOADER = """
import torch
from torch.utils.data import DataLoader, Dataset

class Big(Dataset):
    def __len__(self):
        return 64
    def __getitem__(self, i):
        return torch.full((3, 512, 512), float(i))   # 3 MiB a sample, 48 MiB a batch

total = 0.0
for batch in DataLoader(Big(), batch_size=16, num_workers=2):
    total += float(batch[:, 0, 0, 0].sum())
print('dataloader ok', total)
"""


def envkit_run(*args, cwd, **kwargs):
    return run_envkit("--matrix", str(CI_MATRIX), "run", *args, cwd=cwd, **kwargs)


def test_file_written_to_mount_belongs_to_the_invoking_user(cpu_image, tmp_path):
    out = envkit_run(
        "ci-cpu", "--", "python", "-c", "open('made.txt', 'w').write('hi')", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    made = tmp_path / "made.txt"
    assert made.read_text() == "hi"
    assert (made.stat().st_uid, made.stat().st_gid) == (os.getuid(), os.getgid())


def test_user_option_maps_ownership(cpu_image, tmp_path):
    tmp_path.chmod(0o777)
    out = envkit_run(
        "ci-cpu",
        "--user",
        "4321:4321",
        "--",
        "sh",
        "-c",
        "echo $HOME > home.txt && touch other.txt",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    other = tmp_path / "other.txt"
    assert (other.stat().st_uid, other.stat().st_gid) == (4321, 4321)
    assert (tmp_path / "home.txt").read_text().strip() == "/tmp"  # a writable HOME


def test_exit_code_is_the_commands(cpu_image, tmp_path):
    out = envkit_run("ci-cpu", "--", "python", "-c", "import sys; sys.exit(7)", cwd=tmp_path)
    assert out.returncode == 7


def test_dataloader_with_two_workers_runs_with_default_shm(cpu_image, tmp_path):
    (tmp_path / "load.py").write_text(DATALOADER)
    out = envkit_run("ci-cpu", "--", "python", "load.py", cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "dataloader ok 2016.0" in out.stdout


def test_dockers_default_shm_is_what_breaks_it(cpu_image, tmp_path):
    (tmp_path / "load.py").write_text(DATALOADER)
    out = envkit_run(
        "ci-cpu", "--shm-size", "64m", "--", "python", "load.py", cwd=tmp_path, timeout=300
    )
    assert out.returncode != 0
    assert "shared memory" in out.stderr or "Bus error" in out.stderr, out.stderr[-2000:]


def _running(tmp_path, *command: str) -> subprocess.Popen:
    """`envkit run ci-cpu -- COMMAND` in the background, once its container exists."""
    assert envkit_containers() == []
    proc = subprocess.Popen(
        [sys.executable, "-m", "envkit", "--matrix", str(CI_MATRIX), "run", "ci-cpu", "--"]
        + list(command),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    for _ in range(60):
        if envkit_containers():
            break
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the container never appeared")
    time.sleep(1)
    return proc


@pytest.mark.parametrize(("sent", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_stops_and_removes_the_container(cpu_image, tmp_path, sent, code):
    proc = _running(tmp_path, "python", "-c", "import time; time.sleep(120)")
    proc.send_signal(sent)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert envkit_containers() == []


def test_a_signal_reaches_a_command_that_does_not_handle_it(cpu_image, tmp_path):
    # `sleep` installs no handler; as PID 1 it would ignore SIGINT, and envkit would have to kill
    # the docker client after its 10 s grace. With an init first it dies at once.
    proc = _running(tmp_path, "sleep", "120")
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 8, "the command outlived the signal: envkit had to kill it"
    assert envkit_containers() == []


def test_piped_input_reaches_the_command_with_i_and_is_left_alone_without(cpu_image, tmp_path):
    script = "import sys; print('script ran'); sys.exit(5)\n"
    out = envkit_run("-i", "ci-cpu", "--", "python", "-", cwd=tmp_path, input=script)
    assert (out.returncode, out.stdout) == (5, "script ran\n"), out.stderr
    # Without -i the command does not consume it: a `while read` loop keeps its lines.
    loop = (
        f"printf 'a\\nb\\n' | while read x; do {sys.executable} -m envkit --matrix {CI_MATRIX} "
        'run ci-cpu -- echo "got $x"; done'
    )
    looped = subprocess.run(
        ["sh", "-c", loop], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert looped.stdout.split("\n")[:2] == ["got a", "got b"], looped.stderr


def test_a_project_folder_with_a_comma_in_its_path(cpu_image, tmp_path):
    folder = tmp_path / 'my,"odd" project'
    folder.mkdir()
    out = envkit_run("ci-cpu", "--", "sh", "-c", "pwd > where.txt", cwd=folder)
    assert out.returncode == 0, out.stderr
    assert (folder / "where.txt").read_text() == "/workspace\n"


def test_bad_gpus_value_is_bad_usage(tmp_path):
    out = envkit_run("ci-cpu", "--gpus", "everything", "--", "true", cwd=tmp_path)
    assert out.returncode == 2 and "--gpus" in out.stderr


def containers_of(entry: str) -> list[str]:
    out = subprocess.run(
        [DOCKER, "ps", "-aq", "--filter", f"label=io.envkit.entry={entry}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def test_program_past_its_limit_times_out_and_leaves_no_container(base_image):
    from envkit import engine
    from envkit.errors import ProgramTimedOut

    started = time.monotonic()
    with pytest.raises(ProgramTimedOut) as caught:
        engine.run_command(base_image, ["sleep", "60"], entry="timeout-test", timeout=2)
    assert time.monotonic() - started < 30
    assert "did not finish within 2s" in caught.value.message
    assert containers_of("timeout-test") == []


def test_missing_image_is_reported_as_missing(base_image):
    from envkit import engine
    from envkit.errors import ImageMissing

    with pytest.raises(ImageMissing) as caught:
        engine.run_command("envkit/no-such-image:never", ["true"], entry="missing-test")
    assert caught.value.fix == "build it first with `envkit build NAME`"


def test_missing_program_in_a_real_image_is_not_called_a_missing_image(base_image):
    from envkit import engine
    from envkit.errors import ContainerStartFailed, ImageMissing

    with pytest.raises(ContainerStartFailed) as caught:
        engine.run_command(base_image, ["/no/such/program"], entry="noexec-test")
    assert not isinstance(caught.value, ImageMissing)
    assert "could not start" in caught.value.message
    assert containers_of("noexec-test") == []


def test_stderr_lines_are_passed_on_while_the_command_runs(base_image):
    from envkit import engine

    seen = []
    script = "echo one >&2; sleep 2; echo two >&2; printf 'tail' >&2; echo report"
    result = engine.run_command(
        base_image,
        ["sh", "-c", script],
        entry="stream-test",
        on_stderr=lambda line: seen.append((line, time.monotonic())),
    )
    assert result.exit_code == 0
    assert result.stdout == "report\n"
    assert result.stderr == "one\ntwo\ntail"
    assert [line for line, _ in seen] == ["one", "two", "tail"]
    assert seen[1][1] - seen[0][1] > 1  # "one" arrived before the sleep ended, not at the end
