"""One answer to "can this entry use this host's GPUs, and if not, why and what instead?".

- `host`: the host's GPUs and driver as nvidia-smi and /proc report them, and whether Docker can
  hand GPUs to containers (`gpu_runtime`), for doctor and run alike.
- `fit`: a `Fit`, computed once by `assess(entry, host)` from the fact tables: driver floor, arch
  coverage, PTX JIT, linked-library limits; the entries that would work instead; an entry's
  profile as `show` prints it.
- `known_errors`: the error texts of docker, the NVIDIA runtime and torch, and what each means.

Pure rules over facts and raw texts: this package may import envkit.facts, envkit.errors and the
standard library, never the engine, doctor, init or the CLI.
"""
