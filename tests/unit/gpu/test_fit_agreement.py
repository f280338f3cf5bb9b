"""init's choice and doctor's static verdict give one answer, over the whole fact space.

Every torch release x CUDA variant the fact tables list, on a host with a GPU of every compute
capability they name, under every driver floor they name (and just below each): init accepts
an entry exactly when doctor's driver and arch rows do not fail it, because both read one Fit.
"""

from __future__ import annotations

import itertools

import pytest

from envkit import facts
from envkit.doctor import static_checks
from envkit.errors import CheckFailed
from envkit.gpu import fit as gpu_fit
from envkit.gpu.host import GpuHost
from envkit.init import choose
from envkit.matrix import Entry, Matrix


def _entries() -> list[Entry]:
    out = []
    for release in facts.torch_releases():
        for cuda in release.cuda:
            out.append(
                Entry(
                    name=f"torch{release.torch}-cu{cuda.replace('.', '')}",
                    torch=release.torch,
                    torchvision=release.torchvision,
                    torchaudio=release.torchaudio,
                    cuda=cuda,
                    cudnn=None,
                    python=release.python[-1],
                    flavour="runtime",
                    base_image="envkit-base:bookworm",
                    index_url=None,
                )
            )
    return out


def _capabilities() -> list[str]:
    from_models = {model.capability for model in facts.gpu_models()}
    from_arch_lists = {
        f"{digits[:-1]}.{digits[-1]}"
        for build in facts.arch_builds()
        for arch in build.arch
        for digits in [arch.split("_", 1)[1].rstrip("af")]
    }
    # GPUs no table names: Jetson Orin (8.7), B300 (10.3), Jetson Thor (11.0), GB10 (12.1),
    # and a GPU of a major no build has machine code for yet, which only PTX can reach.
    newer = {"8.7", "10.3", "11.0", "12.1", "13.0"}
    return sorted(from_models | from_arch_lists | newer, key=facts.version_numbers)


def _below(driver: str) -> str:
    """A driver version just older than `driver`."""
    numbers = list(facts.version_numbers(driver))
    return f"{numbers[0] - 1}.99"


def _drivers() -> list[str]:
    floors = set()
    for release in facts.cuda_releases():
        floors.add(release.min_driver)
        if release.min_driver_compat:
            floors.add(release.min_driver_compat)
    return sorted(floors | {_below(d) for d in floors}, key=facts.version_numbers)


ENTRIES = _entries()
CAPABILITIES = _capabilities()
DRIVERS = _drivers()
HOSTS = [GpuHost.of(driver, cap) for driver, cap in itertools.product(DRIVERS, CAPABILITIES)]
# Mixed machines too: an old and a new GPU side by side, and a host that lists no GPU.
HOSTS += [GpuHost.of(d, "7.0", "9.0") for d in DRIVERS] + [
    GpuHost.of(d, "8.6", "12.0") for d in DRIVERS
]
HOSTS += [GpuHost((), d) for d in DRIVERS] + [GpuHost.of(None, "8.0")]


def test_the_space_is_the_whole_fact_tables():
    assert len(ENTRIES) == sum(len(r.cuda) for r in facts.torch_releases()) > 100
    assert {"3.5", "7.0", "8.6", "9.0", "10.0", "12.0", "12.1"} <= set(CAPABILITIES)
    assert len(DRIVERS) >= 2 * len({r.min_driver for r in facts.cuda_releases()})


def _init_accepts(entry: Entry, host: GpuHost) -> bool:
    try:
        choose(Matrix("agreement", (entry,)), [], host)
    except CheckFailed:
        return False
    return True


def _doctor_accepts(entry: Entry, host: GpuHost) -> bool:
    checks = static_checks(entry, list(host.gpus), host.driver, ())
    return not any(check.status == "fail" for check in checks)


@pytest.mark.parametrize("host", HOSTS, ids=lambda h: f"{h.driver}-{'+'.join(h.capabilities)}")
def test_init_accepts_an_entry_exactly_when_doctor_does_not_fail_it(host):
    disagreements = [
        (entry.name, init, not init)
        for entry in ENTRIES
        if (init := _init_accepts(entry, host)) != _doctor_accepts(entry, host)
    ]
    assert not disagreements, f"{host.describe()}: (entry, init accepts, doctor accepts) " + str(
        disagreements[:5]
    )


def test_the_agreement_is_not_vacuous():
    """Both verdicts occur: entries rejected for the driver, for the arch list, for the
    linked-in libraries and for PTX a compat driver cannot compile, and entries accepted."""
    seen = set()
    for host in HOSTS:
        for entry in ENTRIES:
            fit = gpu_fit.assess(entry, host)
            seen.add(fit.driver)
            seen.add(fit.arch)
            if fit.old_libraries:
                seen.add("old_libraries")
    assert {
        gpu_fit.DRIVER_OK,
        gpu_fit.COMPAT,
        gpu_fit.TOO_OLD,
        gpu_fit.JIT_BLOCKED,
        gpu_fit.NO_DRIVER,
        gpu_fit.NATIVE,
        gpu_fit.PTX_ONLY,
        gpu_fit.UNCOVERED,
        gpu_fit.NO_GPU,
        "old_libraries",
    } <= seen


def test_what_doctor_suggests_instead_init_would_accept():
    for host in HOSTS[:: max(1, len(HOSTS) // 40)]:
        for entry in ENTRIES[::7]:
            for other in gpu_fit.alternatives(entry, host, ENTRIES):
                assert _init_accepts(other, host), (entry.name, other.name, host.describe())
