"""The project lock file, the as_of date and init's proposal of one: no engine, no network."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from envkit import asof, lock, resolve
from envkit.cli import main
from envkit.errors import BadInput, MatrixError
from envkit.project import load_project, parse_project

CI_MATRIX = Path(__file__).resolve().parents[1] / "data" / "matrix-ci.yaml"
SHA = "sha256:" + "a" * 64
SHA2 = "sha256:" + "b" * 64

UV_OUTPUT = f"""attrs==23.1.0 \\
    --hash={SHA} \\
    --hash={SHA2}
    # from https://pypi.org/simple
torch==2.13.0+cpu \\
    --hash={SHA}
    # from file:///wheels
typing-extensions==4.16.0 \\
    # via torch
    --hash={SHA2}
"""


def a_lock(**changes) -> lock.ProjectLock:
    fields = dict(
        entry="ci-cpu",
        python="3.11",
        platform=resolve.PLATFORM,
        as_of="2023-06-01",
        requirements=("attrs", "idna>=3  # pinned low"),
        base_image="envkit-base:bookworm",
        base_image_digest="sha256:" + "c" * 64,
        entry_image="envkit/ci-cpu:6f575a59878d",
        entry_image_id="sha256:" + "d" * 64,
        project_image="envkit-project/proj-d75fe8dc",
        index_url="https://pypi.org/simple",
        extra_index_urls=("https://download.pytorch.org/whl/cpu",),
        packages=tuple(resolve.parse_compiled(UV_OUTPUT)),
    )
    return lock.ProjectLock(**{**fields, **changes})


def test_uv_output_is_read_into_versions_sources_and_hashes():
    got = resolve.parse_compiled(UV_OUTPUT)
    assert [(p.name, p.version, p.source, len(p.hashes)) for p in got] == [
        ("attrs", "23.1.0", "https://pypi.org/simple", 2),
        ("torch", "2.13.0+cpu", "file:///wheels", 1),
        ("typing-extensions", "4.16.0", None, 1),
    ]


@pytest.mark.parametrize(
    "changes",
    [{}, {"as_of": None, "base_image_digest": None, "extra_index_urls": ()}, {"packages": ()}],
)
def test_project_lock_round_trips_byte_for_byte(tmp_path, changes):
    made = a_lock(**changes)
    path = tmp_path / lock.PROJECT_LOCK_FILE
    lock.write_lock(made, path)
    text = path.read_bytes()
    again = lock.read_project_lock(path)
    assert again == made
    lock.write_lock(again, path)
    assert path.read_bytes() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == [lock.PROJECT_LOCK_FILE]


def test_project_lock_is_a_hash_checking_requirements_file():
    text = a_lock().to_text()
    lines = text.splitlines()
    assert "--index-url https://pypi.org/simple" in lines
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    assert "attrs==23.1.0 \\" in lines and f"    --hash={SHA} \\" in lines
    # every line pip reads is a pin, a hash or an index option; the rest are comments
    for line in lines:
        stripped = line.strip()
        assert not stripped or stripped.startswith(("#", "--", "attrs", "torch", "typing"))


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (
            lambda t: t.replace(f"    --hash={SHA}\n    # from file", "    # from file"),
            r"envkit.lock.txt:\d+: expected a --hash line",
        ),
        (lambda t: t + "numpy>=1\n", "not a line of an envkit lock: 'numpy>=1'"),
        (lambda t: t.replace("# lock-version: 1", "# lock-version: 7"), "unknown lock-version"),
        (lambda t: t.replace("# entry: ci-cpu\n", ""), "no '# entry:' line"),
        (lambda t: t.replace("--index-url https://pypi.org/simple\n", ""), "no --index-url"),
    ],
)
def test_unusable_project_locks_are_bad_input_with_their_line(tmp_path, edit, problem):
    path = tmp_path / lock.PROJECT_LOCK_FILE
    path.write_text(edit(a_lock().to_text()))
    with pytest.raises(BadInput, match=problem):
        lock.read_project_lock(path)


def test_missing_project_lock_says_how_to_write_one(tmp_path):
    with pytest.raises(BadInput, match="does not exist") as raised:
        lock.read_project_lock(tmp_path / lock.PROJECT_LOCK_FILE)
    assert "envkit lock" in raised.value.fix


def test_input_differences_name_added_removed_and_changed_requirements(tmp_path):
    (tmp_path / "requirements.txt").write_text("# ours\nattrs==23.1.0\ntqdm\n")
    (tmp_path / "envkit.yaml").write_text(
        "entry: ci-cpu\nrequirements_file: requirements.txt\nas_of: 2024-01-01\n"
    )
    project = load_project(tmp_path)
    made = a_lock(requirements=("attrs", "idna>=3"), as_of="2023-06-01")
    assert lock.input_differences(made, project) == [
        "~ as_of 2023-06-01 -> 2024-01-01",
        "~ requirement attrs -> attrs==23.1.0",
        "- requirement idna>=3 (locked, now gone)",
        "+ requirement tqdm (not in the lock)",
    ]
    same = a_lock(requirements=("attrs==23.1.0", "tqdm"), as_of="2024-01-01")
    assert lock.input_differences(same, project) == []


def test_as_of_is_a_past_date_checked_with_its_line(tmp_path):
    good = parse_project("entry: ci-cpu\nas_of: 2021-03-01\n", tmp_path / "envkit.yaml")
    assert good.as_of == "2021-03-01" and good.to_dict()["as_of"] == "2021-03-01"
    for value, problem in [
        ("2021-3-1", "is not a date in the form YYYY-MM-DD"),
        ("2021-02-30", "is not a date"),
        ("2999-01-01", "is in the future"),
        ("[2021]", "must be a single string"),
    ]:
        with pytest.raises(MatrixError) as raised:
            parse_project(f"entry: ci-cpu\nas_of: {value}\n", tmp_path / "envkit.yaml")
        assert "envkit.yaml:2:" in str(raised.value)
        assert problem in str(raised.value)


def test_init_proposes_the_day_the_torch_was_superseded_outside_git(tmp_path):
    assert asof.superseded("1.4.0") == ("2020-04-21", "1.5.0")
    assert asof.superseded("1.4.0+cu101") == ("2020-04-21", "1.5.0")
    proposed = asof.propose(tmp_path, "1.4.0")
    assert proposed.date == "2020-04-21" and "torch 1.5.0 superseded" in proposed.reason


def test_init_proposes_the_last_commit_touching_the_dependency_files(tmp_path):
    def git(*args, day="2022-05-04T12:00:00"):
        env = {"GIT_AUTHOR_DATE": day, "GIT_COMMITTER_DATE": day, "HOME": str(tmp_path)}
        subprocess.run(
            ["git", "-C", str(tmp_path), *args], check=True, env=env, capture_output=True
        )

    git("init", "-q")
    git("config", "user.email", "dev@example.com")
    git("config", "user.name", "dev")
    (tmp_path / "requirements.txt").write_text("attrs\n")
    git("add", "requirements.txt")
    git("commit", "-qm", "deps", day="2022-05-04T12:00:00")
    (tmp_path / "train.py").write_text("print()\n")
    git("add", "train.py")
    git("commit", "-qm", "code", day="2023-01-09T12:00:00")  # not a dependency file
    assert asof.last_commit_date(tmp_path) == "2022-05-04"
    assert asof.propose(tmp_path, "1.4.0").date == "2022-05-04"


def test_init_writes_the_given_or_proposed_as_of(tmp_path):
    (tmp_path / "requirements.txt").write_text("torch==2.13.0\nattrs\n")
    runner = CliRunner()
    args = ["--matrix", str(CI_MATRIX), "init", str(tmp_path), "--cuda", "cpu"]
    out = runner.invoke(main, [*args, "--as-of", "2022-01-01"])
    assert out.exit_code == 0, out.output
    assert load_project(tmp_path).as_of == "2022-01-01"
    out = runner.invoke(main, [*args, "--force"])
    assert out.exit_code == 0, out.output
    assert "superseded torch 2.13.0" in out.output
    assert load_project(tmp_path).as_of == asof.superseded("2.13.0")[0]
    bad = runner.invoke(main, [*args, "--force", "--as-of", "last year"])
    assert bad.exit_code == 2 and "is not a date in the form YYYY-MM-DD" in bad.output


def test_lock_without_a_name_outside_a_project_is_bad_input(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(main, ["lock"])
    assert out.exit_code == 2 and "no envkit.yaml" in out.output
