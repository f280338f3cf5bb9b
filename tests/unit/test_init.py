"""envkit init: real project files in each format, a host, and the entry chosen for them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import project

from envkit import matrix
from envkit.errors import BadInput, CheckFailed
from envkit.gpu.host import GpuHost
from envkit.init import choose, find_pins, init_project, write_choice
from envkit.project import load_project

DATA = Path(__file__).resolve().parent.parent / "data"
# The choice logic is tested on a small matrix of its own (space=MATRIX.entries); the whole
# space of stacks is tested with the real facts in test_init_projects.py.
MATRIX = matrix.load(DATA / "matrix-init.yaml")

# Stand-ins with the real module's signatures and published values (NVIDIA's CUDA release
# notes for driver minimums; torch.cuda.get_arch_list() of each wheel).
_MIN_DRIVER = {
    "9.2": "396.26",
    "10.1": "418.39",
    "10.2": "440.33",
    "11.1": "450.80.02",
    "11.6": "450.80.02",
    "11.7": "450.80.02",
    "11.8": "450.80.02",
    "12.6": "525.60.13",
    "12.9": "525.60.13",
}
_OLD = ("sm_37", "sm_50", "sm_60", "sm_70", "sm_75")
_ARCH = {
    ("1.4.0", "10.1"): ("sm_35", "sm_50", "sm_60", "sm_70", "sm_75"),
    ("1.4.0", "9.2"): ("sm_35", "sm_50", "sm_60", "sm_70"),
    ("1.9.1", "10.2"): _OLD,
    ("1.9.1", "11.1"): (*_OLD, "sm_80", "sm_86"),
    ("1.13.1", "11.6"): (*_OLD, "sm_80", "sm_86"),
    ("1.13.1", "11.7"): (*_OLD, "sm_80", "sm_86"),
    ("2.0.1", "11.8"): (*_OLD, "sm_80", "sm_86", "sm_90"),
    ("2.8.0", "12.6"): ("sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"),
    ("2.8.0", "12.9"): ("sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120"),
}
FACTS = SimpleNamespace(
    min_driver_for=_MIN_DRIVER.get,
    min_driver_to_run=_MIN_DRIVER.get,
    arch_list=lambda torch, cuda: _ARCH.get((torch, cuda)),
    kernel_supports=lambda arch, cap: "sm_" + cap.replace(".", "") in arch,
    library_limit=lambda torch, cuda: None,
    beyond_libraries=lambda torch, cuda, capability: False,
)
NO_GPU = GpuHost()
V100_450 = GpuHost.of("450.80.02", "7.0")
V100_418 = GpuHost.of("418.67", "7.0")
H100 = GpuHost.of("560.35.03", "9.0")


def chosen(folder: Path, host: GpuHost = NO_GPU, **kwargs) -> str:
    choice = init_project(folder, MATRIX, host, facts=FACTS, space=MATRIX.entries, **kwargs)
    return choice.entry.name


# ------------------------------------------------------------------------- requirements


def test_requirements_exact_pin_chooses_that_release(tmp_path):
    folder = project(tmp_path, **{"requirements.txt": "numpy\ntorch==1.4.0\n"})
    choice = init_project(folder, MATRIX, NO_GPU, facts=FACTS, space=MATRIX.entries)
    assert choice.entry.name == "torch1.4-cpu"
    assert "found torch==1.4.0 (requirements.txt:2)" in choice.explanation
    assert choice.requirements_file == "requirements.txt"


def test_range_with_torchvision_chooses_newest_in_range(tmp_path):
    folder = project(tmp_path, **{"requirements.txt": "torch>=1.8,<1.10\ntorchvision\n"})
    assert chosen(folder) == "torch1.9-cpu"
    assert chosen(folder, V100_450) == "torch1.9-cuda11"


def test_newer_candidates_are_explained(tmp_path):
    folder = project(tmp_path, **{"requirements.txt": "torch>=1.8,<1.10\n"})
    lines = init_project(folder, MATRIX, NO_GPU, facts=FACTS, space=MATRIX.entries).explanation
    rejected = [line for line in lines if line.startswith("rejected ")]
    assert rejected and "torch2.8-cuda12.9" in rejected[0]
    assert "torch>=1.8,<1.10 (requirements.txt:1)" in rejected[0]
    assert any("preferred the CPU stack torch1.9-cpu" in line for line in lines)


def test_includes_and_requirements_folder_are_followed(tmp_path):
    folder = project(
        tmp_path,
        **{
            "requirements.txt": "-r requirements/base.txt  # shared\n",
            "requirements__base.txt": "torch == 1.9.1 \\\n    ; python_version >= '3.8'\n",
            "requirements__extra.txt": "torchvision>=0.10\n",
        },
    )
    choice = init_project(folder, MATRIX, NO_GPU, facts=FACTS, space=MATRIX.entries)
    assert choice.entry.name == "torch1.9-cpu"
    assert any("requirements/base.txt:1" in line for line in choice.explanation)
    # An including file cannot be copied alone into the image.
    assert choice.requirements_file is None


def test_local_version_tag_pins_the_cuda_variant(tmp_path):
    folder = project(tmp_path, **{"requirements.txt": "torch==1.4.0+cu92\n"})
    assert chosen(folder, V100_450) == "torch1.4-cuda9"
    folder_cpu = project(tmp_path / "cpu", **{"requirements.txt": "torch==1.9.1+cpu\n"})
    assert chosen(folder_cpu, V100_450) == "torch1.9-cpu"


# ---------------------------------------------------------------------- other formats


def test_pyproject_project_dependencies_and_requires_python(tmp_path):
    folder = project(
        tmp_path,
        **{
            "pyproject.toml": """
                [project]
                name = "demo"
                requires-python = ">=3.9"
                dependencies = ["numpy", "torch>=1.9,<2.1"]
                [project.optional-dependencies]
                vision = ["torchvision<0.15"]
            """
        },
    )
    # 2.0.1 pairs with torchvision 0.15.2 (outside <0.15); 1.9's Python 3.8 is outside >=3.9.
    assert chosen(folder) == "torch1.13-cpu"


def test_poetry_caret_and_tilde(tmp_path):
    folder = project(
        tmp_path,
        **{
            "pyproject.toml": """
                [tool.poetry.dependencies]
                python = "^3.8"
                torch = {version = "^1.8", source = "pytorch"}
                torchvision = "~0.10"
            """
        },
    )
    choice = init_project(folder, MATRIX, NO_GPU, facts=FACTS, space=MATRIX.entries)
    assert choice.entry.name == "torch1.9-cpu"
    assert {p.package for p in choice.pins} == {"python", "torch", "torchvision"}


def test_poetry_caret_on_zero_major_is_narrow(tmp_path):
    folder = project(
        tmp_path, **{"pyproject.toml": '[tool.poetry.dependencies]\ntorchvision = "^0.9"\n'}
    )
    assert chosen(folder) == "torch1.8-cpu"


def test_poetry_caret_on_a_prerelease_and_a_bad_constraint(tmp_path):
    folder = project(
        tmp_path, **{"pyproject.toml": '[tool.poetry.dependencies]\ntorch = "^1.13.0rc1"\n'}
    )
    assert chosen(folder) == "torch1.13-cpu"  # >=1.13.0rc1,<2
    bad = project(
        tmp_path / "bad", **{"pyproject.toml": '[tool.poetry.dependencies]\ntorch = "^one.two"\n'}
    )
    with pytest.raises(BadInput, match="'\\^one.two' is not a Poetry version constraint"):
        init_project(bad, MATRIX, NO_GPU, facts=FACTS, space=MATRIX.entries)


def test_setup_py_is_read_without_running_it(tmp_path):
    folder = project(
        tmp_path,
        **{
            "setup.py": """
                import sys
                from setuptools import setup
                sys.exit("setup.py must not run")
                REQUIRES = ["torch==1.13.1", "torchvision"]
                setup(name="demo", install_requires=REQUIRES, python_requires=">=3.7")
            """
        },
    )
    assert chosen(folder) == "torch1.13-cpu"


def test_setup_py_computed_requirements_are_noted(tmp_path):
    folder = project(
        tmp_path,
        **{
            "setup.py": "from setuptools import setup\n"
            "setup(install_requires=open('reqs').read().split())\n"
        },
    )
    pins, notes, _ = find_pins(folder)
    assert pins == [] and "setup.py:2: install_requires is computed" in notes[0]


def test_setup_cfg(tmp_path):
    folder = project(
        tmp_path,
        **{
            "setup.cfg": """
                [metadata]
                name = demo
                [options]
                python_requires = >=3.8
                install_requires =
                    requests
                    torch>=1.9,<1.14
            """
        },
    )
    choice = init_project(folder, MATRIX, NO_GPU, facts=FACTS, space=MATRIX.entries)
    assert choice.entry.name == "torch1.13-cpu"
    assert "found torch>=1.9,<1.14 (setup.cfg:7)" in choice.explanation


def test_environment_yml_with_cudatoolkit(tmp_path):
    folder = project(
        tmp_path,
        **{
            "environment.yml": """
                name: demo
                channels: [pytorch, defaults]
                dependencies:
                  - python=3.7
                  - pytorch=1.4
                  - torchvision
                  - cudatoolkit=10.1
                  - pip:
                      - tqdm==4.66.1
            """
        },
    )
    assert chosen(folder, V100_450) == "torch1.4-cuda10"
    # cudatoolkit pins CUDA even on a host without a GPU.
    assert chosen(folder) == "torch1.4-cuda10"


def test_environment_yml_pytorch_cuda_and_pip_section(tmp_path):
    folder = project(
        tmp_path,
        **{
            "environment.yml": """
                dependencies:
                  - pytorch::pytorch>=2.0
                  - pytorch-cuda=11.8
                  - pip:
                      - torchvision==0.15.2
            """
        },
    )
    choice = init_project(folder, MATRIX, H100, facts=FACTS, space=MATRIX.entries)
    assert choice.entry.name == "torch2.0-cuda11.8"
    assert any("environment.yml:5" in line for line in choice.explanation)


def test_conda_cpuonly(tmp_path):
    folder = project(tmp_path, **{"environment.yml": "dependencies: [pytorch=1.13, cpuonly]\n"})
    assert chosen(folder, V100_450) == "torch1.13-cpu"


# ----------------------------------------------------------------------- the host


def test_h100_with_torch_1_13_fits_nothing(tmp_path):
    folder = project(tmp_path, **{"requirements.txt": "torch==1.13.1\n"})
    with pytest.raises(CheckFailed) as caught:
        init_project(folder, MATRIX, H100, facts=FACTS, space=MATRIX.entries)
    message = str(caught.value)
    assert message.startswith("no stack fits")
    assert "compute capability 9.0" in message and "torch 1.13.1" in message
    assert caught.value.exit_code == 1


def test_old_driver_rules_out_cuda_entries_and_names_the_driver(tmp_path):
    folder = project(tmp_path, **{"requirements.txt": "torch>=2.0\n"})
    with pytest.raises(CheckFailed) as caught:
        init_project(folder, MATRIX, V100_418, facts=FACTS, space=MATRIX.entries)
    assert "418.67" in caught.value.message and "driver" in caught.value.message
    assert "--cuda cpu" in caught.value.fix
    assert chosen(folder, V100_418, cuda="cpu") == "torch2.8-cpu"


def test_old_driver_falls_back_to_a_cuda_it_supports(tmp_path):
    folder = project(tmp_path, **{"requirements.txt": "torch==1.9.1\n"})
    choice = init_project(
        folder, MATRIX, GpuHost.of("440.64", "7.0"), facts=FACTS, space=MATRIX.entries
    )
    assert choice.entry.name == "torch1.9-cuda10"
    assert any("CUDA 11.1 needs NVIDIA driver >= 450.80.02" in line for line in choice.explanation)


def test_cuda_option_picks_a_cuda_entry_on_a_cpu_host(tmp_path):
    folder = project(tmp_path, **{"requirements.txt": "torch==2.8.0\n"})
    assert chosen(folder, cuda="12.6") == "torch2.8-cuda12"
    with pytest.raises(BadInput):
        chosen(folder, cuda="7.5")


def test_conflicting_pins_name_the_pin(tmp_path):
    folder = project(
        tmp_path,
        **{
            "requirements.txt": "torch==1.4.0\n",
            "pyproject.toml": '[project]\nrequires-python = ">=3.10"\n',
        },
    )
    with pytest.raises(CheckFailed) as caught:
        init_project(folder, MATRIX, NO_GPU, facts=FACTS, space=MATRIX.entries)
    assert "Python 3.7 is outside python>=3.10 (pyproject.toml:2)" in caught.value.message


def test_no_pins_chooses_newest(tmp_path):
    assert chosen(tmp_path) == "torch2.8-cpu"
    assert chosen(tmp_path, H100) == "torch2.8-cuda12.9"


# ------------------------------------------------------------------------- writing


def test_write_choice_round_trips_and_refuses_overwrite(tmp_path):
    folder = project(tmp_path, **{"requirements.txt": "torch==1.4.0\n"})
    choice = init_project(folder, MATRIX, NO_GPU, facts=FACTS, space=MATRIX.entries)
    write_choice(folder, choice)
    loaded = load_project(folder)
    assert loaded.entry == "torch1.4-cpu" and loaded.requirements_file == "requirements.txt"
    with pytest.raises(BadInput, match="already exists"):
        write_choice(folder, choice)
    write_choice(folder, choice, force=True)


def test_shipped_matrix_torch_1_4(tmp_path):
    shipped = matrix.load()
    if not any(e.torch.startswith("1.4.") for e in shipped.entries):
        pytest.skip("the shipped matrix has no torch 1.4 entry")
    folder = project(tmp_path, **{"requirements.txt": "torch==1.4.0\n"})
    entry, _ = choose(shipped, find_pins(folder)[0], NO_GPU)
    assert entry.torch == "1.4.0" and entry.cuda is None and entry.name.startswith("torch1.4")


def test_real_facts_reject_torch_1_13_on_h100(tmp_path):
    pytest.importorskip("envkit.facts", reason="envkit.facts is not there yet")
    folder = project(tmp_path, **{"requirements.txt": "torch==1.13.1\n"})
    with pytest.raises(CheckFailed, match="9.0"):
        init_project(folder, MATRIX, H100, space=MATRIX.entries)


def test_real_facts_reject_torch_1_4_on_an_a100_for_its_linked_in_libraries(tmp_path):
    # torch 1.4's own compute_37 PTX covers sm_80, its bundled cuBLAS/cuDNN do not.
    pytest.importorskip("envkit.facts", reason="envkit.facts is not there yet")
    real_matrix = matrix.load(DATA.parent.parent / "matrix.yaml")
    folder = project(tmp_path, **{"requirements.txt": "torch==1.4.0\n"})
    with pytest.raises(CheckFailed, match="stop at compute capability 7.5; the host has 8.0, 12.0"):
        init_project(folder, real_matrix, GpuHost.of("580.65.06", "12.0", "8.0", "8.0"))
    assert init_project(folder, real_matrix, GpuHost.of("535.104.05", "7.5")).entry.cuda


def test_real_facts_keep_torch_1_4_cuda_10_1_on_driver_450(tmp_path):
    pytest.importorskip("envkit.facts", reason="envkit.facts is not there yet")
    folder = project(
        tmp_path, **{"environment.yml": "dependencies: [pytorch=1.4, cudatoolkit=10.1]\n"}
    )
    assert (
        init_project(folder, MATRIX, V100_450, space=MATRIX.entries).entry.name == "torch1.4-cuda10"
    )


def test_real_facts_run_cuda_12_8_on_the_535_driver_through_minor_version_compatibility(tmp_path):
    # 535 is older than CUDA 12.8's own driver (570.26) but above the 12.x floor (525).
    pytest.importorskip("envkit.facts", reason="envkit.facts is not there yet")
    folder = project(tmp_path, **{"requirements.txt": "torch==2.8.0\n"})
    choice = init_project(folder, MATRIX, GpuHost.of("535.104.05", "9.0"), space=MATRIX.entries)
    assert choice.entry.cuda.startswith("12.")
    with pytest.raises(CheckFailed, match="needs NVIDIA driver >= 525"):
        init_project(folder, MATRIX, GpuHost.of("520.61.05", "9.0"), space=MATRIX.entries)


def test_real_facts_run_cuda_11_0_on_its_own_driver(tmp_path):
    # 450.51.06 is CUDA 11.0's own driver line, older than the 11.x compatibility floor.
    pytest.importorskip("envkit.facts", reason="envkit.facts is not there yet")
    real_matrix = matrix.load(DATA.parent.parent / "matrix.yaml")
    folder = project(tmp_path, **{"requirements.txt": "torch==1.7.1\n"})
    choice = init_project(folder, real_matrix, GpuHost.of("450.51.06", "8.0"))
    assert choice.entry.name == "torch1.7-cuda11"


def test_requirements_star_files_at_the_top_are_read(tmp_path):
    folder = project(tmp_path, **{"requirements-dev.txt": "pytest\ntorch==1.8.1\n"})
    choice = init_project(folder, MATRIX, NO_GPU, facts=FACTS, space=MATRIX.entries)
    assert choice.entry.name == "torch1.8-cpu"
    assert "found torch==1.8.1 (requirements-dev.txt:2)" in choice.explanation


def test_files_not_in_utf8_are_still_read(tmp_path):
    pyproject = tmp_path / "a" / "pyproject.toml"
    pyproject.parent.mkdir()
    pyproject.write_bytes(b'[project]\nname = "caf\xe9"\ndependencies = ["torch==1.8.1"]\n')
    assert chosen(pyproject.parent) == "torch1.8-cpu"
    environment = tmp_path / "b" / "environment.yml"
    environment.parent.mkdir()
    environment.write_bytes(b"name: caf\xe9\ndependencies:\n  - pytorch=1.8.1\n")
    assert chosen(environment.parent) == "torch1.8-cpu"


def test_pyproject_tables_of_the_wrong_shape_are_noted_not_fatal(tmp_path):
    folder = project(
        tmp_path,
        **{
            "pyproject.toml": """
                [project]
                name = "x"
                optional-dependencies = ["torch"]
                dependencies = ["torch==1.8.1"]
                [tool]
                poetry = "not a table"
            """
        },
    )
    choice = init_project(folder, MATRIX, NO_GPU, facts=FACTS, space=MATRIX.entries)
    assert choice.entry.name == "torch1.8-cpu"
    text = "\n".join(choice.explanation)
    assert "project.optional-dependencies is not a table, not read" in text
    assert "[tool.poetry] is not a table, not read" in text


def test_a_cuda_option_against_the_pins_says_to_change_the_option(tmp_path):
    folder = project(tmp_path, **{"requirements.txt": "torch==1.4.0+cu92\n"})
    with pytest.raises(CheckFailed) as caught:
        init_project(folder, MATRIX, NO_GPU, facts=FACTS, cuda="11", space=MATRIX.entries)
    assert "--cuda 11 asks for another CUDA" in caught.value.message
    assert caught.value.fix.startswith("change or drop --cuda")
