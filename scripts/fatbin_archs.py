#!/usr/bin/env python3
"""Which GPU architectures the CUDA code inside shared libraries was compiled for.

Every CUDA translation unit linked into a library leaves a fat binary: a header (magic
0xBA55ED50) followed by one entry per target, either machine code (an ELF cubin, `sm_XY`) or
PTX (`compute_XY`, which the driver can JIT-compile for newer GPUs). torch < 1.6 has no
`torch.cuda.get_arch_list()` and its wheels link cuBLAS, cuDNN, cuFFT and cuRAND statically,
so this is how to see what a wheel really runs on: torch's own kernels share the arch list of
its build, and the bundled libraries show up as other sets.

    python scripts/fatbin_archs.py SITE_PACKAGES/torch/lib [--names] [--json]

For each library: how many fat binaries carry each set of targets, most common first, and
with --names a few kernel names from each set (which tells torch's kernels from cuBLAS's).
Standard library only.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import signal
import struct
import sys
from pathlib import Path

MAGIC = struct.pack("<I", 0xBA55ED50)
HEADER = struct.Struct("<IHHQ")  # magic, version, header size, size of the entries
ENTRY = struct.Struct("<HHIQ")  # kind (1 PTX, 2 ELF), version, header size, payload size
ENTRY_ARCH_OFFSET = 28  # u32 compute capability as a number: 35, 75, 90, 100
KINDS = {1: "compute_", 2: "sm_"}
KERNEL_NAME = re.compile(rb"_Z[A-Za-z0-9_]{6,120}")


def fat_binaries(data: bytes):
    """Yield [(kind, arch, payload)] for every well-formed fat binary in `data`."""
    pos = data.find(MAGIC)
    while pos != -1 and pos + HEADER.size <= len(data):
        _, version, header_size, size = HEADER.unpack_from(data, pos)
        end = pos + header_size + size
        if version != 1 or header_size != HEADER.size or size == 0 or end > len(data):
            pos = data.find(MAGIC, pos + 4)
            continue
        entries = []
        off = pos + header_size
        while off + ENTRY_ARCH_OFFSET + 4 <= end:
            kind, _, entry_header, payload = ENTRY.unpack_from(data, off)
            if kind not in KINDS or entry_header < ENTRY_ARCH_OFFSET + 4:
                break
            (arch,) = struct.unpack_from("<I", data, off + ENTRY_ARCH_OFFSET)
            body = data[off + entry_header : off + entry_header + payload]
            entries.append((kind, arch, body))
            off += entry_header + payload
        if entries:
            yield entries
        pos = data.find(MAGIC, max(end, pos + 4))


def _target_key(target: str) -> tuple[int, int]:
    return (int(target.split("_")[1]), 0 if target.startswith("sm_") else 1)


def scan(path: Path, names: int = 0) -> dict:
    """{"file", "fat_binaries", "sets": [{"targets", "count", "names"}]} for one library."""
    data = path.read_bytes()
    counts: collections.Counter = collections.Counter()
    samples: dict[tuple, list[str]] = collections.defaultdict(list)
    for entries in fat_binaries(data):
        targets = tuple(sorted({KINDS[k] + str(a) for k, a, _ in entries}, key=_target_key))
        counts[targets] += 1
        if names and len(samples[targets]) < names:
            # Kernel names are plain text in uncompressed cubins (CUDA < 11.x's default).
            for kind, _, body in entries:
                found = KERNEL_NAME.findall(body) if kind == 2 else []
                if found:
                    samples[targets].append(found[0].decode("ascii")[:80])
                    break
    return {
        "file": str(path),
        "fat_binaries": sum(counts.values()),
        "sets": [
            {"targets": list(t), "count": n, "names": samples.get(t, [])}
            for t, n in counts.most_common()
        ],
    }


def libraries(paths: list[str]) -> list[Path]:
    out = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if ".so" in f.name and f.is_file()))
        else:
            out.append(p)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="shared libraries, or folders of them")
    parser.add_argument("--names", action="store_true", help="show sample kernel names")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `| head` ends the output quietly
    files = libraries(args.paths)
    missing = [str(f) for f in files if not f.is_file()]
    if missing or not files:
        print("fatbin_archs: no such library: " + ", ".join(missing or args.paths), file=sys.stderr)
        return 2
    reports = [r for r in (scan(f, 3 if args.names else 0) for f in files) if r["fat_binaries"]]
    if args.json:
        print(json.dumps(reports, indent=1))
        return 0
    for report in reports:
        print(f"{report['file']}: {report['fat_binaries']} fat binaries")
        for s in report["sets"]:
            print(f"  {s['count']:6d}  {' '.join(s['targets'])}")
            for name in s["names"]:
                print(f"          {name}")
    if not reports:
        print("no CUDA code found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
