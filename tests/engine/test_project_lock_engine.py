"""envkit lock and build --locked for a project, and as_of resolution, against the real engine
and the package index."""

from __future__ import annotations

import json
import subprocess
import uuid

import pytest
from conftest import CI_MATRIX, DOCKER, cpu_source, run_envkit

from envkit import lock

pytestmark = pytest.mark.docker

IMPORT_VERSIONS = (
    "import json, importlib.metadata as m; "
    "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): d.version"
    " for d in m.distributions()}))"
)


def envkit(project, *args, source=(), check=False):
    return run_envkit("--matrix", str(CI_MATRIX), *args, *source, cwd=project, check=check)


def installed(project) -> dict:
    """Every distribution in the project image, as `envkit run .` sees it."""
    ran = envkit(project, "run", ".", "--", "python", "-c", IMPORT_VERSIONS, check=True)
    return json.loads(ran.stdout.strip().splitlines()[-1])


def remove_project_images(project):
    repo = lock.read_project_lock(project / lock.PROJECT_LOCK_FILE).project_image
    ids = subprocess.run([DOCKER, "images", "-q", repo], capture_output=True, text=True)
    for image in set(ids.stdout.split()):
        subprocess.run([DOCKER, "rmi", "-f", image], capture_output=True)


@pytest.fixture
def project(tmp_path):
    folder = tmp_path / f"lockproj-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    # torch pinned as the CI matrix has it: init then picks that curated entry
    (folder / "requirements.txt").write_text("torch==2.13.0\nattrs\nidna\n")
    yield folder
    if (folder / lock.PROJECT_LOCK_FILE).exists():
        remove_project_images(folder)


def test_init_build_lock_refuse_drift_then_reproduce(cpu_image, cpu_wheelhouse, project):
    source = cpu_source(cpu_wheelhouse)
    init = envkit(project, "init", "--cuda", "cpu", "--as-of", "2023-06-01", check=True)
    assert init.stdout.strip() == "ci-cpu"
    assert "as_of: '2023-06-01'" in (project / "envkit.yaml").read_text()
    envkit(project, "build", source=source, check=True)

    locked = envkit(project, "lock", source=source, check=True)
    assert "13 packages, as of 2023-06-01" in locked.stdout
    path = project / lock.PROJECT_LOCK_FILE
    text = path.read_bytes()
    made = lock.read_project_lock(path)
    lock.write_lock(made, path)
    assert path.read_bytes() == text  # round trip
    versions = made.versions()
    assert versions["attrs"] == "23.1.0" and versions["idna"] == "3.4"  # as of 2023-06-01
    assert versions["torch"] == "2.13.0+cpu"  # the entry's packages, whatever the date
    assert all(p.hashes and all(h.startswith("sha256:") for h in p.hashes) for p in made.packages)
    assert made.base_image_digest and made.entry_image_id.startswith("sha256:")
    assert envkit(project, "lock", ".", source=source, check=True).returncode == 0
    assert path.read_bytes() == text  # the same date resolves the same set

    (project / "requirements.txt").write_text("torch==2.13.0\nattrs\nidna\ntqdm\n")
    refused = envkit(project, "build", "--locked", source=source)
    assert refused.returncode == 1, refused.stderr
    assert "the project changed since envkit.lock.txt was written" in refused.stderr
    assert "+ requirement tqdm (not in the lock)" in refused.stderr
    assert "+ tqdm 4.65.0 (not in the lock)" in refused.stderr  # what resolving would add
    assert "envkit lock" in refused.stderr

    (project / "requirements.txt").write_text("torch==2.13.0\nattrs\nidna\n")
    built = envkit(project, "build", "--locked", "--json", source=source)
    assert built.returncode == 0, built.stderr
    assert [r["status"] for r in json.loads(built.stdout)] == ["up-to-date", "built"]
    first = installed(project)
    assert {k: v for k, v in first.items() if k in versions} == versions
    assert set(first) == set(versions)

    again = envkit(project, "build", "--locked", "--json", source=source)
    assert again.returncode == 0, again.stderr
    assert [r["status"] for r in json.loads(again.stdout)] == ["up-to-date", "up-to-date"]
    assert installed(project) == first


def test_as_of_dates_resolve_differently_and_the_old_set_imports(
    cpu_image, cpu_wheelhouse, project
):
    source = cpu_source(cpu_wheelhouse)
    path = project / lock.PROJECT_LOCK_FILE
    resolved = {}
    for day in ("2020-06-01", "2024-06-01"):
        (project / "envkit.yaml").write_text(
            f"entry: ci-cpu\nrequirements_file: requirements.txt\nas_of: {day}\n"
        )
        envkit(project, "lock", source=source, check=True)
        resolved[day] = lock.read_project_lock(path).versions()
    old, new = resolved["2020-06-01"], resolved["2024-06-01"]
    assert old["attrs"] == "19.3.0" and old["idna"] == "2.9"
    assert new["attrs"] == "23.2.0" and new["idna"] == "3.7"
    assert old["torch"] == new["torch"] == "2.13.0+cpu"

    (project / "envkit.yaml").write_text(
        "entry: ci-cpu\nrequirements_file: requirements.txt\nas_of: 2020-06-01\n"
    )
    # A plain build takes the date too: resolved on the host, that exact set installed.
    built = envkit(project, "build", "--json", source=source)
    assert built.returncode == 0, built.stderr
    assert [r["status"] for r in json.loads(built.stdout)] == ["up-to-date", "built"]
    plain = installed(project)
    assert (plain["attrs"], plain["idna"], plain["torch"]) == ("19.3.0", "2.9", "2.13.0+cpu")
    again = envkit(project, "build", "--json", source=source)
    assert [r["status"] for r in json.loads(again.stdout)] == ["up-to-date", "up-to-date"]

    envkit(project, "lock", source=source, check=True)
    envkit(project, "build", "--locked", source=source, check=True)
    assert installed(project) == plain  # the lock holds what the plain build installed
    ran = envkit(
        project,
        "run",
        ".",
        "--",
        "python",
        "-c",
        "import attr, idna, torch; print(attr.__version__, idna.__version__, torch.__version__)",
        check=True,
    )
    assert ran.stdout.split()[-3:] == ["19.3.0", "2.9", "2.13.0+cpu"]
