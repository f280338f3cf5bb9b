"""The family of foreseen failures: each carries a message and a fix, and an exit code."""

from __future__ import annotations


class EnvkitError(Exception):
    """A foreseen failure. The CLI prints `message` and `fix` and exits with `exit_code`."""

    exit_code = 1

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return self.message if not self.fix else f"{self.message} — {self.fix}"


class BadInput(EnvkitError):
    """The user's input (a name, a file, an option) cannot be used."""

    exit_code = 2


def make_folder(folder, option: str) -> None:
    """Make `folder` (a Path) and its parents, or raise BadInput naming the option to change."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(
            f"cannot make folder {folder}: {exc.strerror or exc}", f"pick another {option}"
        ) from None


class MatrixError(BadInput):
    """A matrix file is unusable; `problems` lists each FILE:LINE problem."""

    def __init__(self, problems: list, fix: str | None = None):
        self.problems = list(problems)
        first = self.problems[0] if self.problems else "invalid matrix"
        super().__init__(str(first), fix)


class UnknownEntry(BadInput):
    """A name that is neither an entry nor an alias."""


class EngineUnavailable(EnvkitError):
    """The Docker engine cannot be reached or used."""


class ContainerStartFailed(EnvkitError):
    """The engine would not create or start a container (missing image, GPUs refused, ...)."""


class ImageMissing(ContainerStartFailed):
    """The image a container needs is not on this engine."""


class ProgramTimedOut(EnvkitError):
    """A program in a container ran past its time limit (the container is then removed)."""


class BuildFailed(EnvkitError):
    """An image build failed."""


class CheckFailed(EnvkitError):
    """A check (doctor, bench gate, lock comparison) failed."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a CI runner cancelling a job, `kill`): cleaned up exactly like Ctrl-C."""
