"""Containers envkit starts through the SDK (bench, lock, doctor): an init first, and nothing
left behind when an interrupt lands while the engine makes one."""

from __future__ import annotations

import time

import docker
import pytest

from envkit import engine

pytestmark = pytest.mark.docker


def containers_of(entry: str) -> list:
    return engine.client().containers.list(
        all=True, filters={"label": f"{engine.LABEL}.entry={entry}"}
    )


def test_every_container_starts_under_an_init(base_image):
    result = engine.run_command(base_image, ["cat", "/proc/1/comm"], entry="init-test")
    assert result.stdout.strip() == "docker-init"


def test_stopping_a_command_without_a_sigterm_handler_does_not_wait_out_the_grace(base_image):
    # `sleep` as PID 1 ignores SIGTERM: the engine would wait 5 s, then kill it.
    with engine.container(base_image, ["sleep", "60"], entry="grace-test"):
        time.sleep(0.5)
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 3
    assert containers_of("grace-test") == []


def test_an_interrupt_as_the_engine_answers_create_leaves_no_container(base_image, monkeypatch):
    create = docker.models.containers.ContainerCollection.create

    def made_then_interrupted(self, *args, **kwargs):
        create(self, *args, **kwargs)
        raise KeyboardInterrupt  # Ctrl-C: the engine made it, envkit never saw the answer

    monkeypatch.setattr(
        docker.models.containers.ContainerCollection, "create", made_then_interrupted
    )
    with pytest.raises(KeyboardInterrupt):
        with engine.container(base_image, ["sleep", "60"], entry="create-interrupt-test"):
            pytest.fail("the container must not be handed out")
    assert containers_of("create-interrupt-test") == []
