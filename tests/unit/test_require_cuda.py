"""Images say what they need: NVIDIA_REQUIRE_CUDA and the arch-list / minimum-driver labels.

NVIDIA's strings below are copied from the amd64 stage of nvidia/cuda's base Dockerfiles (the
sources named in envkit/data/cuda.yaml).
"""

from __future__ import annotations

import re

import pytest

from envkit import build, dockerfile, facts, matrix

ENTRIES = matrix.load().entries
CUDA_ENTRIES = [e for e in ENTRIES if e.cuda]
CPU_ENTRIES = [e for e in ENTRIES if not e.cuda]
_ENV = re.compile(r'^ENV NVIDIA_REQUIRE_CUDA="([^"]*)"$', re.M)

V2021 = "tesla unknown nvidia nvidiartx geforce geforcertx quadro quadrortx titan titanrtx".split()
NVIDIA = {
    # dist/end-of-life/10.1/ubuntu1804/base/Dockerfile
    "10.1": "cuda>=10.1 brand=tesla,driver>=418,driver<419",
    # dist/end-of-life/11.3.1/ubuntu2004/base/Dockerfile
    "11.3": "cuda>=11.3 brand=tesla,driver>=418,driver<419 driver>=450",
    # dist/12.1.1/ubuntu2204/base/Dockerfile (written out: 20 clauses)
    "12.1": " ".join(
        ["cuda>=12.1"]
        + [f"brand={b},driver>={n},driver<{n + 1}" for n in (470, 525) for b in V2021]
    ),
    "9.0": "cuda>=9.0",
}


@pytest.mark.parametrize("cuda", sorted(NVIDIA))
def test_the_data_gives_nvidias_own_strings(cuda):
    assert facts.nvidia_requirement(cuda).text() == NVIDIA[cuda]


def test_every_cuda_of_the_matrix_has_a_row():
    missing = {e.cuda for e in CUDA_ENTRIES if facts.nvidia_requirement(e.cuda) is None}
    assert not missing


def required(text: str) -> list[str]:
    return _ENV.findall(text)


@pytest.mark.parametrize("entry", CUDA_ENTRIES, ids=[e.name for e in CUDA_ENTRIES])
def test_every_cuda_entry_declares_its_cuda_and_only_branches_it_runs_on(entry):
    found = required(dockerfile.render(entry))
    assert len(found) == 1, "exactly one NVIDIA_REQUIRE_CUDA"
    head, *clauses = found[0].split()
    major, minor = facts.version_numbers(entry.cuda)[:2]
    assert head == f"cuda>={major}.{minor}"
    nvidia = facts.nvidia_requirement(entry.cuda)
    assert set(clauses) <= set(nvidia.clauses()), "every clause is one of NVIDIA's"
    floor = facts.version_numbers(facts.min_driver_to_run(entry.cuda))[0]
    for clause in clauses:
        branch = facts.version_numbers(clause.partition("driver>=")[2])[0]
        assert branch >= floor, f"{clause}: a branch below the {floor} floor would start and fail"
    kept = [b for b in nvidia.branches if int(b) >= floor]
    assert len(clauses) == len(kept) * len(nvidia.brands) + len(nvidia.extra)


@pytest.mark.parametrize("entry", CPU_ENTRIES, ids=[e.name for e in CPU_ENTRIES])
def test_cpu_entries_declare_no_cuda(entry):
    text = dockerfile.render(entry)
    assert "NVIDIA_REQUIRE_CUDA" not in text.split("FROM", 1)[1].replace(
        "(CUDA entries) NVIDIA_REQUIRE_CUDA", ""
    )
    assert 'io.envkit.min_driver="none"' in text and 'io.envkit.arch_list="none"' in text


def test_branches_below_minor_version_compatibility_are_dropped():
    entry = next(e for e in CUDA_ENTRIES if e.cuda == "12.1")
    # NVIDIA's 470 clauses need its cuda-compat libraries, which envkit's images do not carry.
    assert dockerfile.require_cuda(entry) == " ".join(
        ["cuda>=12.1"] + [f"brand={b},driver>=525,driver<526" for b in V2021]
    )
    cuda13 = next(e for e in CUDA_ENTRIES if e.cuda == "13.0")
    assert dockerfile.require_cuda(cuda13) == "cuda>=13.0"


@pytest.mark.parametrize("entry", ENTRIES[::7], ids=[e.name for e in ENTRIES[::7]])
def test_build_labels_carry_the_same_arch_list_and_minimum_driver(entry):
    labels = build.labels(entry, "0" * 12)
    text = dockerfile.render(entry)
    for key in ("io.envkit.arch_list", "io.envkit.min_driver"):
        assert f'{key}="{labels[key]}"' in text
    if entry.cuda:
        assert labels["io.envkit.min_driver"] == facts.min_driver_to_run(entry.cuda)
        arch = facts.arch_list(entry.torch, entry.cuda)
        assert labels["io.envkit.arch_list"] == (" ".join(arch) if arch else "unknown")
