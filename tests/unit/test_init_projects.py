"""envkit init on files shaped like real projects', choosing from every stack the facts allow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import project

from envkit import matrix
from envkit.cli import main
from envkit.errors import BadInput, CheckFailed
from envkit.gpu.host import GpuHost
from envkit.init import init_project
from envkit.pins import find_pins

SHIPPED = matrix.load()
NO_GPU = GpuHost()
T4_535 = GpuHost.of("535.104.05", "7.5")


def choice(folder: Path, host: GpuHost = NO_GPU, **kwargs):
    return init_project(folder, SHIPPED, host, **kwargs)


def stack(folder: Path, host: GpuHost = NO_GPU, **kwargs) -> tuple:
    entry = choice(folder, host, **kwargs).entry
    return entry.torch, entry.cuda, entry.python


# ------------------------------------------------------------------------- conda


CONDA_EXPORT = """
name: detectron
channels:
  - pytorch
  - conda-forge
  - defaults
dependencies:
  - _libgcc_mutex=0.1=main
  - blas=1.0=mkl
  - cudatoolkit=10.2.89=hfd86e86_1
  - numpy=1.19.2=py38h54aff64_0
  - python=3.8.5=h7579374_1
  - pytorch=1.7.0=py3.8_cuda10.2.89_cudnn7.6.5_0
  - torchvision=0.8.1=py38_cu102
  - pip=20.2.4=py38h06a4308_0
  - pip:
    - opencv-python==4.4.0.46
prefix: /home/user/miniconda3/envs/detectron
"""


def test_a_conda_env_export_gives_exactly_its_stack_even_without_a_gpu(tmp_path):
    folder = project(tmp_path, **{"environment.yml": CONDA_EXPORT})
    made = choice(folder)
    assert made.entry.name == "torch1.7.0-cu102-py3.8"
    assert (made.entry.torchvision, made.entry.cudnn) == ("0.8.1", "7.6.5")
    assert any("cannot test the image on a GPU" in line for line in made.explanation)


def test_conda_pins_with_channels_and_a_python_minor(tmp_path):
    folder = project(
        tmp_path,
        **{
            "environment.yml": """
            dependencies:
              - python=3.8
              - pytorch::pytorch=1.13.0
              - pytorch::torchvision
              - pytorch-cuda=11.7
            """
        },
    )
    assert stack(folder) == ("1.13.0", "11.7", "3.8")


def test_conda_cudatoolkit_with_python_3_8_and_torch_1_7(tmp_path):
    folder = project(
        tmp_path,
        **{
            "environment.yml": """
            dependencies:
              - python=3.8
              - pytorch=1.7.0
              - cudatoolkit=10.1
            """
        },
    )
    made = choice(folder)
    assert (made.entry.torch, made.entry.cuda, made.entry.python) == ("1.7.0", "10.1", "3.8")
    assert made.entry.index_url.endswith("/cu101/torch_stable.html")


def test_conda_cpuonly(tmp_path):
    folder = project(
        tmp_path,
        **{"environment.yml": "dependencies:\n  - pytorch=1.10.1\n  - cpuonly\n  - python=3.7\n"},
    )
    assert stack(folder, T4_535) == ("1.10.1", None, "3.7")


# ------------------------------------------------------------------------- requirements


def test_exact_pin_with_a_local_cuda_tag_and_an_extra_index(tmp_path):
    folder = project(
        tmp_path,
        **{
            "requirements.txt": """
            --extra-index-url https://download.pytorch.org/whl/cu111
            torch==1.9.0+cu111
            torchvision==0.10.0+cu111
            numpy~=1.20
            """
        },
    )
    assert stack(folder) == ("1.9.0", "11.1", "3.9")


def test_an_index_line_alone_pins_the_cuda(tmp_path):
    folder = project(
        tmp_path,
        **{
            "requirements.txt": "--index-url https://download.pytorch.org/whl/cu118\ntorch==2.1.0\n"
        },
    )
    assert stack(folder) == ("2.1.0", "11.8", "3.11")


def test_a_wheel_url_gives_its_version_cuda_and_python(tmp_path):
    url = "https://download.pytorch.org/whl/cu113/torch-1.11.0%2Bcu113-cp38-cp38-linux_x86_64.whl"
    folder = project(tmp_path, **{"requirements.txt": f"torch @ {url}\n"})
    made = choice(folder)
    assert made.entry.name == "torch1.11.0-cu113-py3.8"
    assert "found torch @ torch-1.11.0+cu113-cp38-cp38-linux_x86_64.whl (requirements.txt:1)" in (
        made.explanation
    )


def test_markers_are_evaluated_for_the_image(tmp_path):
    folder = project(
        tmp_path,
        **{
            "requirements.txt": """
            torch==1.8.1; sys_platform == "darwin"
            torch==1.8.1+cu111; sys_platform == "linux"
            torchvision==0.9.1; platform_machine == "x86_64"
            """
        },
    )
    made = choice(folder)
    assert (made.entry.torch, made.entry.cuda) == ("1.8.1", "11.1")
    assert any(
        line.startswith("skipped torch==1.8.1 (requirements.txt:1)") for line in made.explanation
    )


def test_a_python_version_marker_selects_by_the_stacks_python(tmp_path):
    folder = project(
        tmp_path,
        **{
            "requirements.txt": """
            torch==1.7.1; python_version >= "3.9"
            torch==1.7.0; python_version < "3.9"
            """,
            "setup.py": "from setuptools import setup\nsetup(python_requires='>=3.6,<3.9')\n",
        },
    )
    assert stack(folder)[:1] == ("1.7.0",)


def test_the_main_chain_decides_and_other_files_are_notes(tmp_path):
    folder = project(
        tmp_path,
        **{
            "requirements.txt": "-r requirements/base.txt\n-c constraints.txt\n",
            "requirements__base.txt": "torch>=1.8,<1.9\ntorchvision\n",
            "constraints.txt": "torch==1.8.0\n",
            "requirements__docs.txt": "sphinx\ntorch==1.8.1+cpu\n",
            "requirements-gpu.txt": "torch==1.8.1+cu111\n",
        },
    )
    made = choice(folder)
    assert (made.entry.torch, made.entry.cuda) == ("1.8.0", None)
    notes = [line for line in made.explanation if line.startswith("not read: ")]
    assert len(notes) == 2
    assert any("requirements/docs.txt (torch==1.8.1+cpu" in n for n in notes)
    assert any("--requirements requirements-gpu.txt" in n for n in notes)


def test_requirements_option_chooses_the_file(tmp_path):
    folder = project(
        tmp_path,
        **{
            "requirements.txt": "torch==1.8.1+cpu\n",
            "requirements-gpu.txt": "torch==1.8.1+cu102\ntorchvision==0.9.1\n",
        },
    )
    made = choice(folder, requirements="requirements-gpu.txt")
    assert (made.entry.torch, made.entry.cuda) == ("1.8.1", "10.2")
    assert made.requirements_file == "requirements-gpu.txt"
    with pytest.raises(BadInput):
        choice(folder, requirements="missing.txt")


# ------------------------------------------------------------------------- Python pins


def test_a_poetry_python_cap_keeps_the_newest_torch_with_its_wheels(tmp_path):
    folder = project(
        tmp_path,
        **{
            "pyproject.toml": """
            [tool.poetry]
            name = "demo"
            version = "0.1.0"

            [tool.poetry.dependencies]
            python = ">=3.8,<3.11"
            torch = "^2.0"
            """
        },
    )
    made = choice(folder)
    assert made.entry.flavour == "runtime"
    assert made.entry.python == "3.10"
    assert made.entry.torch == "2.14.1", "the newest torch with a cp310 wheel"


def test_requires_python_and_setup_cfg_comments(tmp_path):
    folder = project(
        tmp_path,
        **{
            "setup.cfg": """
            [metadata]
            name = demo

            [options]
            # the versions we test against
            python_requires = >=3.7
            install_requires =
                torch==1.10.2  # LTS at the time
                torchvision==0.11.3
            """
        },
    )
    assert stack(folder) == ("1.10.2", None, "3.9")


def test_pipfile(tmp_path):
    folder = project(
        tmp_path,
        **{
            "Pipfile": """
            [[source]]
            url = "https://pypi.org/simple"
            verify_ssl = true
            name = "pypi"

            [[source]]
            url = "https://download.pytorch.org/whl/cu117"
            verify_ssl = true
            name = "pytorch"

            [packages]
            torch = {version = "==1.13.1", index = "pytorch"}
            torchvision = "*"

            [requires]
            python_version = "3.9"
            """
        },
    )
    assert stack(folder) == ("1.13.1", "11.7", "3.9")


def test_pipfile_lock_wins_over_pipfile(tmp_path):
    lock = {
        "_meta": {"requires": {"python_version": "3.8"}},
        "default": {
            "torch": {"version": "==1.12.1", "markers": "python_version >= '3.7'"},
            "torchvision": {"version": "==0.13.1"},
        },
        "develop": {},
    }
    folder = project(
        tmp_path,
        **{
            "Pipfile": '[packages]\ntorch = "*"\n',
            "Pipfile.lock": json.dumps(lock, indent=4),
        },
    )
    assert stack(folder) == ("1.12.1", None, "3.8")


# ------------------------------------------------------------------------- Dockerfile


def test_a_dockerfile_install_is_noted_when_nothing_else_pins_torch(tmp_path):
    folder = project(
        tmp_path,
        **{
            "Dockerfile": "FROM python:3.8\nRUN pip install torch==1.7.0 torchvision==0.8.1\n",
            "requirements.txt": "numpy\n",
        },
    )
    notes = [line for line in choice(folder).explanation if "Dockerfile:2" in line]
    assert notes and "add torch==1.7.0 to requirements.txt" in notes[0]
    pinned = project(tmp_path / "pinned", **{"Dockerfile": "RUN pip install torch==1.7.0\n"})
    (pinned / "requirements.txt").write_text("torch==1.8.1\n")
    assert not any("Dockerfile" in line for line in choice(pinned).explanation)


# ------------------------------------------------------------------------- no fit


def test_no_fit_names_each_pin_the_pairings_and_the_nearest_stacks(tmp_path):
    folder = project(
        tmp_path,
        **{"requirements.txt": "torch==1.13.1\ntorchvision==0.8.1\n"},
    )
    with pytest.raises(CheckFailed) as caught:
        choice(folder)
    message = caught.value.message
    assert "requirements.txt:1: torch==1.13.1" in message
    assert "requirements.txt:2: torchvision==0.8.1" in message
    assert "torchvision 0.8.1 pairs with torch 1.7.0" in message
    assert "torch 1.13.1 pairs with torchvision 0.14.1" in message
    assert "envkit build torch1.7.0-cpu-py3.8" in message
    assert "envkit build torch1.13-cpu" in message


def test_cli_exits_1_on_no_fit_and_takes_requirements(tmp_path):
    folder = project(tmp_path, **{"requirements.txt": "torch==1.13.1\ntorchvision==0.8.1\n"})
    result = CliRunner().invoke(main, ["init", str(folder), "--dry-run"])
    assert result.exit_code == 1
    assert "the nearest stacks that exist" in result.output
    (folder / "requirements-old.txt").write_text("torch==1.3.0\n")
    result = CliRunner().invoke(
        main, ["init", str(folder), "--requirements", "requirements-old.txt", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "torch1.3.0-cpu-py3.7"


def test_a_plain_torch_project_gets_few_rejected_lines(tmp_path):
    folder = project(tmp_path, **{"requirements.txt": "torch\n"})
    lines = choice(folder, T4_535).explanation
    assert len([line for line in lines if line.startswith("rejected")]) <= 8


def test_found_pins_keep_file_and_line(tmp_path):
    folder = project(tmp_path, **{"environment.yml": CONDA_EXPORT})
    pins, _, _ = find_pins(folder)
    sources = {(p.package, p.source) for p in pins}
    assert ("python", "environment.yml:11") in sources
    assert ("torch", "environment.yml:12") in sources
    assert ("cuda", "environment.yml:9") in sources
