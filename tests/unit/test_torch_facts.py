"""torch.yaml against its sources: pytorch/vision's compatibility table, and a source for every
variant's wheels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

from envkit import facts

REPO = Path(__file__).resolve().parents[2]
VISION = yaml.safe_load((REPO / "tests" / "data" / "torchvision-compat.yaml").read_text())


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _readme_row(torch: str) -> dict | None:
    return next((r for r in VISION["rows"] if r["torch"] == _minor(torch)), None)


def test_the_vision_table_names_its_source():
    assert VISION["source"].startswith("pytorch/vision README.md @ ")
    assert len(VISION["rows"]) == 18


@pytest.mark.parametrize(
    "release", [r for r in facts.torch_releases() if r.torchvision], ids=lambda r: r.torch
)
def test_every_torchvision_pairing_agrees_with_the_vision_table(release):
    departure = next((d for d in VISION["departures"] if d["torch"] == release.torch), None)
    if departure is not None:
        assert release.torchvision == departure["torchvision"], departure["why"]
        return
    row = _readme_row(release.torch)
    if row is None:
        major, minor = (int(n) for n in _minor(release.torch).split("."))
        assert Version(release.torch) >= Version(VISION["rule_from"])
        series = [f"0.{minor + 15}"] if major == 2 else []
    else:
        series = row["torchvision"]
    assert any(
        release.torchvision == s or release.torchvision.startswith(s + ".") for s in series
    ), f"torch {release.torch} pairs with torchvision {release.torchvision}, README: {series}"


def test_departures_from_the_vision_table_are_the_documented_ones():
    departed = [
        r.torch
        for r in facts.torch_releases()
        if r.torchvision
        and (row := _readme_row(r.torch))
        and not any(
            r.torchvision == s or r.torchvision.startswith(s + ".") for s in row["torchvision"]
        )
    ]
    assert departed == [d["torch"] for d in VISION["departures"] if _readme_row(d["torch"])]


def test_python_tags_start_where_the_vision_table_starts():
    for release in facts.torch_releases():
        row = _readme_row(release.torch)
        if row is None:
            continue
        lowest = row["python"].split(">=")[1].split(",")[0]
        py3 = [p for p in release.python if p.startswith("3.")]
        assert Version(py3[0]) >= Version(".".join(lowest.split(".")[:2])), release.torch


def test_every_variant_has_a_wheel_location_with_a_source():
    locations = facts.wheel_locations()
    assert set(locations) == {"pypi", "stable", "index"}
    assert all(loc.source for loc in locations.values())
    for release in facts.torch_releases():
        assert set(release.wheels) == set(release.variants), release.torch
        for variant, where in release.wheels.items():
            assert where in locations, (release.torch, variant)
        on_pypi = [v for v, where in release.wheels.items() if where == "pypi"]
        assert on_pypi == ([release.pypi_cuda] if release.pypi_cuda else []), release.torch


def test_wheel_urls_name_the_variant_tag():
    index = "https://download.pytorch.org/whl"
    r170 = facts.torch_release("1.7.0")
    assert facts.wheel_url(r170, "10.2", index) is None  # PyPI's own
    assert facts.wheel_url(r170, "11.0", index) == f"{index}/cu110/torch_stable.html"
    assert facts.wheel_url(r170, "cpu", index) == f"{index}/cpu/torch_stable.html"
    r201 = facts.torch_release("2.0.1")
    assert facts.wheel_url(r201, "11.8", index) == f"{index}/cu118"


def test_every_variant_has_python_tags():
    for release in facts.torch_releases():
        for variant in release.variants:
            assert release.pythons_for(variant), (release.torch, variant)


def test_the_generator_writes_the_shipped_wheels_lines():
    spec = importlib.util.spec_from_file_location("gen", REPO / "scripts" / "gen_torch_facts.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    text = (REPO / "envkit" / "data" / "torch.yaml").read_text()
    assert gen.write_wheels(text) == text, "run scripts/gen_torch_facts.py --write-wheels"


def test_the_generator_checks_releases_against_pypi_json():
    spec = importlib.util.spec_from_file_location("gen", REPO / "scripts" / "gen_torch_facts.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    wheel = "torch-1.7.0-cp38-cp38-manylinux1_x86_64.whl"
    pypi = {
        "releases": {
            r.torch: [{"filename": wheel, "upload_time": r.released + "T00:00:00", "yanked": False}]
            for r in facts.torch_releases()
        }
    }
    problems = gen.check(pypi)
    assert "torch 1.7.0: python ['3.6', '3.7', '3.8'], PyPI has ['3.8']" in problems
    pypi["releases"]["9.9.9"] = pypi["releases"]["1.7.0"]
    assert "torch 9.9.9: on PyPI, no row in torch.yaml" in gen.check(pypi)
