"""envkit.gpu.fit: which entries doctor offers instead, and the linked-in libraries' limits.

The hosts are nvidia-smi rows given as DOCUMENTED EXAMPLES (tests/gpu_inputs.py: no GPU machine
was available for recording), following NVIDIA's documented `--format=csv,noheader,nounits`
layout.
"""

from __future__ import annotations

from gpu_inputs import (
    A100,
    ALL,
    H100,
    TORCH20,
    TORCH21,
    TORCH113,
    TORCH214,
    Entry,
    gpus_of,
    suggest,
)


def test_suggestions_prefer_same_minor_then_nearest_newer(facts):
    same_minor = Entry("torch1.13-cuda11.7-devel", "1.13.1", "11.7", flavour="devel")
    newer_far = TORCH21
    gpus = gpus_of(A100)
    names = [
        e.name
        for e in suggest(TORCH113, gpus, "535.104.05", [TORCH113, newer_far, TORCH20, same_minor])
    ]
    assert names == [same_minor.name, TORCH20.name, newer_far.name]


def test_suggestions_exclude_entries_the_driver_cannot_run():
    suggested = suggest(TORCH113, gpus_of(H100), "525.60.13", ALL)
    assert TORCH214 not in suggested  # CUDA 13 needs a newer driver
    assert TORCH20 in suggested


def test_libraries_limit_only_the_wheels_that_link_them_in():
    from envkit import facts

    assert facts.library_limit("1.4.0", "10.1") == "7.5"
    assert facts.library_limit("1.0.1", "9.0") == "7.0"
    # From 1.6 no row is marked: the arch list alone decides (sm_80 code covers sm_86).
    assert facts.library_limit("1.7.1", "11.0") is None
    assert not facts.beyond_libraries("1.7.1", "11.0", "8.6")
    assert facts.beyond_libraries("1.5.1", "10.2", "8.0")
    assert not facts.beyond_libraries("1.5.1", "10.2", "7.5")
