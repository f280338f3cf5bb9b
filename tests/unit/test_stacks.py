"""Derived stacks: any (torch release, variant, Python) the facts allow is an entry by name."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from envkit import check, dockerfile, facts, matrix, stacks
from envkit.cli import main
from envkit.errors import UnknownEntry


def invoke(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def shipped():
    return matrix.load()


def test_the_name_grammar():
    assert stacks.parse_name("torch1.7.0-cu102-py3.8") == stacks.StackId("1.7.0", "10.2", "3.8")
    assert stacks.parse_name("torch1.7.0-cu102") == stacks.StackId("1.7.0", "10.2", None)
    assert stacks.parse_name("torch1.7.0-cpu-py3.8") == stacks.StackId("1.7.0", None, "3.8")
    assert stacks.parse_name("torch2.14.1-cu130") == stacks.StackId("2.14.1", "13.0", None)
    assert stacks.parse_name("Torch1.3.0-CU101-py3.7") == stacks.StackId("1.3.0", "10.1", "3.7")
    for not_a_stack in ("torch1.7-cuda10", "torch1.7-cu102", "torch1.7.0-cuda10.2", "numpy"):
        assert stacks.parse_name(not_a_stack) is None


def test_a_derived_stack_is_an_entry_with_the_curated_rules(shipped):
    entry = shipped.get("torch1.7.0-cu102-py3.8")
    assert (entry.torch, entry.torchvision, entry.torchaudio) == ("1.7.0", "0.8.1", "0.7.0")
    assert (entry.cuda, entry.cudnn, entry.python) == ("10.2", "7.6.5", "3.8")
    assert entry.base_image == "python:3.8-slim-bookworm"
    assert entry.index_url is None  # PyPI's 1.7.0 is cu102
    assert entry.pins == ("numpy<2",)
    assert shipped.get("torch1.7.0-cu102") == entry  # the default Python
    assert shipped.get("torch1.7.0-cu110-py3.7").index_url == (
        "https://download.pytorch.org/whl/cu110/torch_stable.html"
    )
    old = shipped.get("torch1.3.0-cu101-py3.7")
    assert (old.torchvision, old.base_image, old.pins) == (
        "0.4.1",
        "python:3.7-slim-bullseye",
        ("numpy<2", "pillow<7"),
    )
    cpu = shipped.get("torch2.0.1-cpu-py3.9")
    assert cpu.cuda is None and cpu.index_url == "https://download.pytorch.org/whl/cpu"


def test_a_curated_stack_keeps_its_curated_name(shipped):
    assert shipped.get("torch1.7.1-cu102-py3.9").name == "torch1.7-cuda10"
    assert shipped.get("torch1.7.1-cu102-py3.8").name == "torch1.7.1-cu102-py3.8"


def test_the_curated_entries_follow_the_derived_rules(shipped):
    for entry in shipped.entries:
        if entry.flavour != "runtime":
            continue
        derived = stacks.derive(stacks.StackId(entry.torch, entry.cuda, entry.python))
        for key in ("torchvision", "torchaudio", "cudnn", "base_image", "index_url", "pins"):
            assert getattr(derived, key) == getattr(entry, key), (entry.name, key)


@pytest.mark.parametrize(
    "name,reason,suggested",
    [
        ("torch1.7.0-cu113", "torch 1.7.0 has no cu113 build", "torch1.7.0-cu110"),
        ("torch1.7.0-cu102-py3.9", "no wheels for Python 3.9", "torch1.7.0-cu102-py3.8"),
        ("torch1.7.0-cu102-py3.5", "Python 3.6 or newer", "torch1.7.0-cu102-py3.6"),
        ("torch1.7.3-cu102", "torch 1.7.3 was never released", "1.7.0, 1.7.1"),
    ],
)
def test_a_stack_the_facts_do_not_allow_says_why_and_what_is_near(shipped, name, reason, suggested):
    with pytest.raises(UnknownEntry) as caught:
        shipped.get(name)
    assert reason in caught.value.message
    assert suggested in caught.value.fix


def test_unknown_names_still_get_suggestions(shipped):
    with pytest.raises(UnknownEntry) as caught:
        shipped.get("torch1.7.0-cu10")
    assert "torch1.7.0-cu102" in caught.value.fix
    with pytest.raises(UnknownEntry) as caught:
        shipped.get("torch1.4-cuda10.9")
    assert "torch1.4-cuda10" in caught.value.fix


def test_every_stack_is_unique_and_passes_every_rule(shipped):
    space = stacks.every_stack(shipped.entries)
    assert len({e.name for e in space}) == len(space)
    count, problems = check.check_stacks(shipped)
    assert count > 600 and problems == []
    assert count + sum(e.flavour == "runtime" for e in shipped.entries) == len(space)
    for entry in space[::50]:
        dockerfile.render(entry)


def test_every_release_and_variant_is_in_the_space(shipped):
    space = {(e.torch, e.cuda) for e in stacks.every_stack(shipped.entries)}
    for release in facts.torch_releases():
        for cuda in (None, *release.cuda):
            assert (release.torch, cuda) in space


def test_select_picks_a_derived_stack_by_name(shipped):
    chosen = matrix.select(shipped.entries, names=("torch1.3.0-cu101-py3.7",))
    assert [e.name for e in chosen] == ["torch1.3.0-cu101-py3.7"]


def test_show_dockerfile_and_list_all_accept_derived_stacks():
    shown = json.loads(invoke("show", "torch1.3.0-cu101", "--json").output)
    assert shown["name"] == "torch1.3.0-cu101-py3.7" and shown["arch_list"]
    text = invoke("dockerfile", "torch1.7.0-cu102-py3.8").output
    assert "torch==1.7.0 torchvision==0.8.1 torchaudio==0.7.0" in text
    listed = invoke("list", "--all", "--torch", "1.7.0", "--cuda", "10.2")
    assert listed.exit_code == 0
    assert "torch1.7.0-cu102-py3.8" in listed.output
    assert "3 stacks (0 curated, 3 derived)" in listed.output
    names = invoke("matrix", "--all", "--torch", "1.7.1", "--cuda", "cu102", "--format", "names")
    assert "torch1.7-cuda10" in names.output.split()
    bad = invoke("show", "torch1.7.0-cu113")
    assert bad.exit_code == 2 and "did you mean" in bad.output


def test_check_all_validates_the_derived_stacks():
    result = invoke("check", "--all", "--json")
    data = json.loads(result.output)
    assert result.exit_code == 0 and data["ok"]
    assert data["derived"] > 600
