"""Remembered settings: the config file, env vars and envkit.yaml fill the build options, in
that order of strength below the command line, and `envkit config` says where each came from."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from envkit import settings
from envkit.cli import main
from envkit.errors import BadInput, MatrixError
from envkit.project import load_project

CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A user config file path (not yet written) and a project folder as the working folder."""
    config = tmp_path / "xdg" / "envkit" / "config.toml"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return config


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def config_rows(*args: str) -> dict[str, dict]:
    result = CliRunner().invoke(main, ["config", "--json", *args])
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.output)["settings"]}


def bake_targets(tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "bake" / "docker-bake.json"
    result = CliRunner().invoke(main, ["bake", *args, "-o", str(out)])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text())["target"]


# --------------------------------------------------------------------------- precedence


def test_each_place_beats_the_weaker_ones_and_config_names_the_origin(home, monkeypatch):
    write(
        home,
        """\
        # mine
        index_url = "https://config.example/simple"
        extra_index_url = "https://config.example/extra"
        registry = "config.example"
        tag_prefix = "from-config"
        """,
    )
    write(
        Path("envkit.yaml"),
        """\
        entry: torch1.4-cpu
        settings:
          extra_index_url: https://project.example/extra
          registry: project.example
          tag_prefix: from-project
        """,
    )
    monkeypatch.setenv("ENVKIT_REGISTRY", "env.example")
    monkeypatch.setenv("ENVKIT_TAG_PREFIX", "from-env")
    rows = config_rows()
    assert rows["index_url"]["value"] == "https://config.example/simple"
    assert rows["index_url"]["origin"] == f"{home}:2"
    assert rows["extra_index_url"]["origin"].endswith("envkit.yaml:3")
    assert rows["registry"] == {
        "name": "registry",
        "value": "env.example",
        "origin": "env ENVKIT_REGISTRY",
        "env": "ENVKIT_REGISTRY",
        "option": "--registry",
    }
    assert rows["ca_cert"]["value"] is None and rows["ca_cert"]["origin"] == "not set"

    # The build options take them, and an option on the command line beats them all.
    targets = bake_targets(home.parent, "torch1.4-cpu", "--tag", "from-cli")
    target = targets["torch1_4-cpu"]
    assert target["args"]["ENVKIT_INDEX_URL"] == "https://config.example/simple"
    assert target["args"]["ENVKIT_EXTRA_INDEX_URL"] == "https://project.example/extra"
    assert target["tags"][0] == "env.example/from-cli/torch1.4-cpu:latest"


def test_tag_prefix_defaults_to_envkit():
    rows = config_rows()
    assert rows["tag_prefix"]["value"] == "envkit" and rows["tag_prefix"]["origin"] == "default"
    assert settings.resolve().image_prefix() == "envkit"


def test_base_image_per_python_from_config_and_env(home, tmp_path, monkeypatch):
    write(
        home,
        """\
        base_image = "envkit-base:bookworm"

        [base_images]
        "3.8" = "envkit-base:py3.8"
        """,
    )
    targets = bake_targets(tmp_path, "torch1.4-cpu", "torch2.13-cpu")
    # The table refines base_image set in the same file: 3.8 has its own, 3.11 the general one.
    assert targets["torch1_4-cpu"]["args"]["BASE_IMAGE"] == "envkit-base:py3.8"
    assert targets["torch2_13-cpu"]["args"]["BASE_IMAGE"] == "envkit-base:bookworm"
    assert (
        targets["torch1_4-cpu"]["labels"]["org.opencontainers.image.base.name"]
        == "envkit-base:py3.8"
    )

    # A stronger base_image (env) replaces the weaker per-Python one, and config says so.
    monkeypatch.setenv("ENVKIT_BASE_IMAGE", "mirror.example/debian:12")
    targets = bake_targets(tmp_path, "torch1.4-cpu")
    assert targets["torch1_4-cpu"]["args"]["BASE_IMAGE"] == "mirror.example/debian:12"
    assert config_rows()["base_images.3.8"]["origin"].endswith("(overridden by base_image)")

    # ENVKIT_BASE_IMAGES is as strong as ENVKIT_BASE_IMAGE, and more specific.
    monkeypatch.setenv("ENVKIT_BASE_IMAGES", "3.8=env-py:3.8, 3.11=env-py:3.11")
    targets = bake_targets(tmp_path, "torch1.4-cpu")
    assert targets["torch1_4-cpu"]["args"]["BASE_IMAGE"] == "env-py:3.8"

    # --base-image on the command line wins over every per-Python setting.
    targets = bake_targets(tmp_path, "torch1.4-cpu", "--base-image", "cli:1")
    assert targets["torch1_4-cpu"]["args"]["BASE_IMAGE"] == "cli:1"


def test_the_same_base_image_gives_the_same_content_tag_however_it_was_set(
    home, tmp_path, monkeypatch
):
    by_option = bake_targets(tmp_path, "torch1.4-cpu", "--base-image", "b:1")["torch1_4-cpu"]
    monkeypatch.setenv("ENVKIT_BASE_IMAGES", "3.8=b:1")
    by_setting = bake_targets(tmp_path, "torch1.4-cpu")["torch1_4-cpu"]
    assert by_option["tags"] == by_setting["tags"]


def test_paths_are_relative_to_the_file_that_sets_them(home, tmp_path):
    write(home.parent / "certs" / "proxy.pem", CA)
    write(home, 'ca_cert = "certs/proxy.pem"\n')
    assert config_rows()["ca_cert"]["value"] == str(home.parent / "certs" / "proxy.pem")
    write(Path("proxy.pem"), CA)
    write(Path("envkit.yaml"), "entry: torch1.4-cpu\nsettings:\n  ca_cert: proxy.pem\n")
    row = config_rows()["ca_cert"]
    assert row["value"] == str(Path.cwd() / "proxy.pem")
    assert row["origin"] == f"{Path.cwd() / 'envkit.yaml'}:3"
    # The bake file carries the CA bundle as a secret: the setting reached the build options.
    target = bake_targets(tmp_path, "torch1.4-cpu")["torch1_4-cpu"]
    assert target["secret"][0].startswith("id=envkit-ca,src=")


def test_a_setting_that_names_a_missing_file_is_refused_with_its_origin(home):
    write(home, 'wheelhouse = "/nonexistent/wheels"\n')
    result = CliRunner().invoke(main, ["bake", "torch1.4-cpu", "-o", "x.json"])
    assert result.exit_code == 2
    assert f"wheelhouse /nonexistent/wheels (from {home}:1) is not a folder" in result.output


# ------------------------------------------------------------------------- credentials


def test_config_never_prints_a_password(home, monkeypatch):
    monkeypatch.setenv("ENVKIT_INDEX_URL", "https://alice:s3cret@pypi.corp.example/simple")
    result = CliRunner().invoke(main, ["config"])
    assert result.exit_code == 0
    assert "s3cret" not in result.output and "alice" not in result.output
    assert "https://***@pypi.corp.example/simple" in result.output
    assert "s3cret" not in CliRunner().invoke(main, ["config", "--json"]).output
    done = CliRunner().invoke(main, ["config", "set", "extra_index_url", "https://bob:pw@x/s"])
    assert done.exit_code == 0 and "pw" not in done.output
    assert settings.redact("https://x.example/simple") == "https://x.example/simple"


# ------------------------------------------------------------------------------ problems


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('index_url = "https://a"\nindx = 1\n', ":2: unknown setting 'indx'"),
        ('[base_images]\n3.8 = "x"\n', 'quote the Python version as a key, e.g. "3.8"'),
        ('[base_images]\n"py3" = "x"\n', "'py3' is not a Python version like 3.8"),
        ('index_url = "pypi.org/simple"\n', "is not an http(s) or file URL"),
        ("registry = \n", "not valid TOML"),
    ],
)
def test_config_file_problems_name_the_file(home, text, message):
    write(home, text)
    with pytest.raises(BadInput) as caught:
        settings.read_config(home)
    assert str(home) in caught.value.message and message in caught.value.message


def test_envkit_yaml_settings_problems_have_lines(tmp_path):
    write(
        tmp_path / "envkit.yaml",
        """\
        entry: torch1.4-cpu
        settings:
          index_url: https://ok.example/simple
          wheelhose: wheels
          base_images: {"3.8": envkit-base:py3.8, "python3": x}
          registry: [a, b]
        """,
    )
    with pytest.raises(MatrixError) as caught:
        load_project(tmp_path)
    lines = [(p.line, p.message) for p in caught.value.problems]
    assert lines == [
        (4, "unknown setting 'wheelhose'"),
        (5, "base_images: 'python3' is not a Python version like 3.8"),
        (6, "setting registry must be a single string"),
    ]
    assert caught.value.problems[0].fix == "did you mean 'wheelhouse'?"


def test_envkit_yaml_settings_round_trip_through_to_dict(tmp_path):
    write(
        tmp_path / "envkit.yaml",
        'entry: torch1.4-cpu\nsettings:\n  registry: r.example\n  base_images: {"3.8": a:1}\n',
    )
    project = load_project(tmp_path)
    assert project.settings == {"registry": ("r.example", 3), "base_images.3.8": ("a:1", 4)}
    assert project.to_dict()["settings"] == {"registry": "r.example", "base_images": {"3.8": "a:1"}}


def test_env_base_images_must_be_pairs(monkeypatch):
    with pytest.raises(BadInput, match="ENVKIT_BASE_IMAGES: '3.8' is not PYTHON=IMAGE"):
        settings.from_environment({"ENVKIT_BASE_IMAGES": "3.8"})


# ------------------------------------------------------------------------ changing the file


def test_set_and_unset_keep_the_users_lines(home):
    write(
        home,
        """\
        # my proxy
        ca_cert = "/etc/ssl/proxy.pem"  # from IT

        [base_images]
        "3.7" = "old:3.7"
        """,
    )
    for args in (
        ["set", "base_images.3.8", "envkit-base:py3.8"],
        ["set", "base_images.3.7", "new:3.7"],
        ["set", "registry", "r.example"],
        ["unset", "ca_cert"],
    ):
        result = CliRunner().invoke(main, ["config", *args])
        assert result.exit_code == 0, result.output
    text = home.read_text()
    assert "# my proxy" in text and "ca_cert" not in text
    found = {v.key: v.value for v in settings.read_config(home)}
    assert found == {
        "registry": "r.example",
        "base_images.3.7": "new:3.7",
        "base_images.3.8": "envkit-base:py3.8",
    }
    # A top-level key stays above the first table, where TOML reads it as top-level.
    assert text.index("registry") < text.index("[base_images]")


def test_set_creates_the_file_and_refuses_unknown_names(home):
    assert not home.exists()
    assert CliRunner().invoke(main, ["config", "set", "tag_prefix", "me/envkit"]).exit_code == 0
    assert settings.read_config(home)[0].value == "me/envkit"
    bad = CliRunner().invoke(main, ["config", "set", "base_images", "x"])
    assert bad.exit_code == 2 and "unknown setting 'base_images'" in bad.output
    assert "name one Python: base_images.3.8" in bad.output
    other = CliRunner().invoke(main, ["config", "set", "regstry", "x"])
    assert "did you mean 'registry'" in other.output


def test_config_path_follows_envkit_config_then_xdg(tmp_path):
    assert settings.config_path({"ENVKIT_CONFIG": "/a/b.toml", "XDG_CONFIG_HOME": "/x"}) == Path(
        "/a/b.toml"
    )
    assert settings.config_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/envkit/config.toml")
    assert settings.config_path({}).parts[-3:] == (".config", "envkit", "config.toml")
