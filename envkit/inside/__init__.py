"""Programs that run inside images: each is one self-contained file, run as `python3 FILE`.

They import only the standard library and torch, run on Python 3.6+ and torch 1.0+, and print
one JSON document on stdout. The host copies a file into a container and reads what it prints;
nothing in this folder may import the rest of envkit.
"""

from pathlib import Path

FOLDER = Path(__file__).resolve().parent
PROBE = FOLDER / "probe.py"
BENCH = FOLDER / "bench.py"
