"""Loading matrix files: schema problems reported as FILE:LINE with the right exit code."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from envkit import matrix
from envkit.cli import main
from envkit.errors import BadInput, MatrixError, UnknownEntry

BAD = Path(__file__).resolve().parent.parent / "data" / "bad"

# file, exit code, line, fragment of the message
CORPUS = [
    (
        "typo-key.yaml",
        2,
        5,
        "unknown key 'torchvison' in entry 'torch1.4-cuda10' — did you mean 'torchvision'?",
    ),
    ("wrong-type.yaml", 2, 9, "'pins' must be a list of strings"),
    ("bad-version.yaml", 2, 4, "torch '1.4.x' is not a version"),
    ("missing-field.yaml", 2, 3, "entry 'torch1.4-cuda10' is missing 'cuda'"),
    ("duplicate-name.yaml", 2, 9, "duplicate key 'torch1.4-cuda10' in entries (first at line 3)"),
    (
        "duplicate-alias.yaml",
        2,
        11,
        "name 'torch1.4.0-cu101' of entry 'torch1.4-cuda9' is already used by 'torch1.4-cuda10'",
    ),
    ("yaml-syntax.yaml", 2, 6, "YAML syntax error"),
    (
        "bad-flavour.yaml",
        2,
        8,
        "flavour 'runtme' is not one of runtime, devel — did you mean 'runtime'?",
    ),
    ("unquoted-python.yaml", 2, 6, "python '3.1O' is not a version like 3.8"),
    ("top-level-typo.yaml", 2, 2, "unknown top-level key 'entires' — did you mean 'entries'?"),
    ("empty.yaml", 2, 1, "the matrix file is empty"),
    (
        "rule-torchvision-pair.yaml",
        1,
        5,
        "torchvision 0.6.0 does not pair with torch 1.4.0 — use torchvision 0.5.0",
    ),
    ("rule-cuda-variant.yaml", 1, 6, "torch 1.4.0 was never published for CUDA 11.0"),
    ("rule-python.yaml", 1, 7, "torch 1.1.0 has no wheels for Python 3.9"),
    ("rule-base-cuda.yaml", 1, 8, "carries CUDA 10.2, entry has CUDA 10.1"),
    ("rule-base-python.yaml", 1, 8, "has Python 3.8, entry needs 3.7"),
    ("rule-unreleased-torch.yaml", 1, 4, "torch 1.4.3 was never released"),
    ("rule-index.yaml", 1, 3, "the cu92 wheel lives on PyTorch's index"),
    ("rule-template.yaml", 1, 11, "no Dockerfile template runtme.Dockerfile"),
    ("not-utf8.yaml", 2, 5, "not UTF-8 text (byte 0xe9)"),
    ("control-character.yaml", 2, 4, "control characters are not allowed"),
    ("bad-pin.yaml", 2, 10, "pin 'bad pin !!' is not a requirement"),
    ("empty-base-image.yaml", 2, 9, "base_image '' is not an image reference"),
    ("index-not-url.yaml", 2, 10, "index_url 'download.pytorch.org/whl/cu101' is not a URL"),
    ("dockerfile-path.yaml", 2, 10, "dockerfile '../../../tmp/evil' is not a template name"),
    ("cuda-cpu.yaml", 2, 8, "cuda 'cpu': a CPU-only entry has no CUDA — write cuda: null"),
    ("merge-key.yaml", 2, 4, "YAML merge keys (<<) are not supported"),
    (
        "index-injection.yaml",
        2,
        10,
        "has characters a Dockerfile cannot carry (quotes, spaces, shell metacharacters",
    ),
    ("two-part-torch.yaml", 2, 4, "torch '1.4' is not a version like 1.4.0 (all three numbers)"),
    ("pin-line-break.yaml", 2, 10, "has a line break, a control character"),
    (
        "rule-dockerfile-flavour.yaml",
        1,
        11,
        "dockerfile devel is the devel template, but the entry's flavour is runtime",
    ),
]


@pytest.mark.parametrize("name,code,line,fragment", CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_matrix_file_gives_file_line_message_and_exit_code(name, code, line, fragment):
    path = BAD / name
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.exit_code == code, result.output
    assert f"{path}:{line}: " in result.output
    assert fragment in result.output
    assert "Traceback" not in result.output


def test_every_bad_file_is_in_the_corpus():
    assert sorted(p.name for p in BAD.glob("*.yaml")) == sorted(c[0] for c in CORPUS)


@pytest.mark.parametrize("command", [["list"], ["show", "x"], ["dockerfile", "x"], ["matrix"]])
def test_every_matrix_reading_command_reports_bad_input_the_same_way(command):
    path = BAD / "typo-key.yaml"
    result = CliRunner().invoke(main, ["--matrix", str(path), *command])
    assert result.exit_code == 2
    assert f"{path}:5: unknown key 'torchvison'" in result.output
    assert "Traceback" not in result.output


def test_missing_matrix_file_is_bad_input(tmp_path):
    result = CliRunner().invoke(main, ["check", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "cannot read matrix file" in result.output


def test_defaults_apply_and_version_text_is_kept():
    loaded = matrix.parse(
        'version: 1\ndefaults:\n  python: "3.10"\n  base_image: python:3.10-slim\n'
        'entries:\n  a:\n    torch: "1.12.1"\n    cuda: null\n    aliases: [b]\n'
    )
    entry = loaded.get("B")
    assert entry.name == "a" and entry.python == "3.10" and entry.cuda is None
    assert entry.variant == "cpu" and entry.line == 6 and entry.line_of("torch") == 7


def test_unknown_name_suggests_close_names():
    loaded = matrix.load()
    with pytest.raises(UnknownEntry) as info:
        loaded.get("torch1.4-cuda1O")
    assert "torch1.4-cuda10" in info.value.fix


def test_all_problems_are_collected_not_just_the_first():
    text = (
        "version: 1\nentries:\n  a:\n    torch: 1.4\n    cuda: null\n    python: '3.7'\n"
        "    base_image: x\n    colour: red\n  b:\n    torch: '1.4.0'\n"
    )
    with pytest.raises(MatrixError) as info:
        matrix.parse(text, "m.yaml")
    messages = [str(p) for p in info.value.problems]
    assert any(m.startswith("m.yaml:8: unknown key 'colour'") for m in messages)
    assert any(m.startswith("m.yaml:9: entry 'b' is missing 'cuda'") for m in messages)


def test_select_filters():
    loaded = matrix.load()
    picked = matrix.select(loaded.entries, torch=">=1.4,<1.6")
    assert picked and all(e.torch.startswith(("1.4.", "1.5.")) for e in picked)
    cuda10 = matrix.select(loaded.entries, cuda="10")
    assert cuda10 and all(e.cuda.startswith("10.") for e in cuda10)
    assert all(e.cuda is None for e in matrix.select(loaded.entries, cuda="cpu"))
    assert [e.cuda for e in matrix.select(loaded.entries, cuda="cu101")] == [
        "10.1" for _ in matrix.select(loaded.entries, cuda="10.1")
    ]
    assert matrix.select(loaded.entries, cuda="CUDA11.8") == matrix.select(
        loaded.entries, cuda="11.8"
    )
    for bad in ("foo", "10.x", "cu-101"):
        with pytest.raises(BadInput, match="is not a CUDA version"):
            matrix.select(loaded.entries, cuda=bad)


def test_unquoted_python_310_keeps_its_source_text():
    # YAML reads 3.10 as the float 3.1; the loader keeps the text the user wrote.
    loaded = matrix.parse(
        "version: 1\nentries:\n  a:\n    torch: 1.12.1\n    cuda: null\n    python: 3.10\n"
        "    base_image: python:3.10-slim\n"
    )
    assert loaded.get("a").python == "3.10" and loaded.get("a").torch == "1.12.1"


TORCH14 = """\
version: 1
entries:
  torch1.4-cuda10:
    torch: "1.4.0"
    torchvision: "0.5.0"
    cuda: "10.1"
    cudnn: "7.6.3"
    python: "3.8"
    base_image: python:3.8-slim-bookworm
"""


@pytest.mark.parametrize(
    ("pins", "missing"),
    [
        (None, True),
        ('["numpy-financial==1.0.0"]', True),  # another distribution whose name starts alike
        ('["NumPy < 2"]', False),  # any spelling of the same distribution
        ('["numpy==1.26.4"]', False),
    ],
)
def test_required_pin_is_matched_by_distribution_name_and_reported_once(tmp_path, pins, missing):
    path = tmp_path / "matrix.yaml"
    path.write_text(TORCH14 + (f"    pins: {pins}\n" if pins else ""))
    result = CliRunner().invoke(main, ["check", str(path)])
    assert result.output.count("missing pin 'numpy<2'") == (1 if missing else 0), result.output
    assert result.exit_code == (1 if missing else 0), result.output
    if missing:  # both the torch rule and the torchvision rule are named in the one problem
        assert "NumPy 1 ABI" in result.output and "pytorch/vision#8460" in result.output


def test_suggestions_name_each_entry_once_and_keep_the_torch_release():
    loaded = matrix.load()
    assert loaded.suggest("torch1.4-cuda10.2")[0] == "torch1.4-cuda10"
    for typo in ("torch1.4", "torch1.4-cu10", "torch1.4.0-cu1O1"):
        names = loaded.suggest(typo)
        assert len(names) == len(set(names)) == 3, names
        assert all(n.startswith("torch1.4-") for n in names), names


def test_a_cuda_variant_never_published_is_one_problem_not_an_index_to_set():
    from envkit.check import check

    loaded = matrix.parse(
        'version: 1\nentries:\n  odd:\n    torch: "1.4.0"\n    torchvision: "0.5.0"\n'
        '    cuda: "10.7"\n    python: "3.8"\n    base_image: python:3.8-slim-bookworm\n'
    )
    messages = [p.message for p in check(loaded)]
    assert any("never published for CUDA 10.7" in m for m in messages), messages
    assert not any("index" in m for m in messages), messages  # no cu107 index exists to name


@pytest.mark.parametrize(
    ("base", "problem"),
    [
        ("ubuntu:22.04", "Ubuntu 22.04 ships Python 3.10, entry needs 3.8"),
        ("ubuntu:20.04", None),
        ("ubuntu:23.10", None),  # a release the table does not know is not judged
    ],
)
def test_an_ubuntu_base_must_ship_the_entry_python(base, problem):
    from envkit.check import check

    loaded = matrix.parse(TORCH14.replace("python:3.8-slim-bookworm", base))
    messages = [p.message for p in check(loaded) if p.message.startswith("Ubuntu")]
    assert messages == ([problem] if problem else []), messages


@pytest.mark.parametrize(
    ("index", "problem"),
    [
        ("https://download.pytorch.org/whl/cu118", "serves cu118 wheels, not cu101"),
        ("https://download.pytorch.org/whl/cpu", "serves cpu wheels, not cu101"),
        ("https://download.pytorch.org/whl/cu101", None),
        ("https://mirror.example/whl/cu118", None),  # another index: its folders mean nothing
    ],
)
def test_a_pytorch_index_must_serve_the_entry_variant(index, problem):
    from envkit.check import check

    loaded = matrix.parse(TORCH14 + f"    index_url: {index}\n")
    messages = [p.message for p in check(loaded) if "wheels, not" in p.message]
    assert [m.split(" ", 2)[2] for m in messages] == ([problem] if problem else []), messages
