"""scripts/fatbin_archs.py reads the targets of CUDA fat binaries out of a library's bytes.

No CUDA compiler exists here to make a real one, so the inputs are built to the layout the
script documents (the real 1.x wheels it was run on are in docs/facts.md).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fatbin_archs.py"


def entry(kind: int, arch: int, payload: bytes) -> bytes:
    header = struct.pack("<HHIQ", kind, 0x0101, 64, len(payload))
    header += struct.pack("<IIHHI", 0, 0, 0, 0, arch) + bytes(64 - 32)
    return header + payload


def fat_binary(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return struct.pack("<IHHQ", 0xBA55ED50, 1, 16, len(body)) + body


def library(tmp_path: Path) -> Path:
    torch_unit = fat_binary(
        entry(2, 37, b"\x7fELF _Z21kernelPointwiseApply2I6CopyOp"),
        entry(2, 75, b"\x7fELF _Z21kernelPointwiseApply2I6CopyOp"),
        entry(1, 37, b".version 6.4 .target sm_37"),
    )
    cublas_unit = fat_binary(
        entry(2, 70, b"\x7fELF _Z13gemmk1_kernelI6float2Li256"),
        entry(2, 75, b"\x7fELF _Z13gemmk1_kernelI6float2Li256"),
    )
    # Noise: the magic number with a header that makes no sense must be skipped.
    noise = struct.pack("<IHHQ", 0xBA55ED50, 7, 99, 5)
    path = tmp_path / "libtorch.so"
    path.write_bytes(b"\0" * 13 + torch_unit + noise + torch_unit + b"\0" * 7 + cublas_unit)
    return path


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60
    )


def test_sets_of_targets_are_counted_most_common_first(tmp_path):
    done = run(str(library(tmp_path)), "--json", "--names")
    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)
    assert report["fat_binaries"] == 3
    first, second = report["sets"]
    assert first["targets"] == ["sm_37", "compute_37", "sm_75"] and first["count"] == 2
    assert first["names"][0].startswith("_Z21kernelPointwiseApply2")
    assert second["targets"] == ["sm_70", "sm_75"] and second["count"] == 1
    assert second["names"] == ["_Z13gemmk1_kernelI6float2Li256"]


def test_a_folder_is_scanned_and_files_without_cuda_are_left_out(tmp_path):
    library(tmp_path)
    (tmp_path / "libc10.so").write_bytes(b"\0" * 64)
    done = run(str(tmp_path))
    assert done.returncode == 0
    assert "libtorch.so: 3 fat binaries" in done.stdout
    assert "libc10.so" not in done.stdout
    assert "     2  sm_37 compute_37 sm_75" in done.stdout


def test_a_missing_library_is_a_usage_error(tmp_path):
    done = run(str(tmp_path / "nope.so"))
    assert done.returncode == 2
    assert "no such library" in done.stderr
