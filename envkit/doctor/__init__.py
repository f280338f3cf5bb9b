"""`envkit doctor`: can this host run GPU containers, and does an entry's image really work here?

- `finding`: the one finding type (`Check`: status, detail, fix) and the report;
- `host_checks`: engine, GPU runtime, driver, GPUs, /dev/shm, from raw host facts;
- `entry_checks`: an entry's driver and arch rows, which put an envkit.gpu `Fit` into words;
- `probe_checks`: what the probe found inside the image (or on the host);
- `runner`: gathers the facts, runs the probe and assembles the report; the only one of them
  that talks to the engine.

No torch import here: the probe does that, in its own process.
"""

from ..gpu.fit import alternatives
from ..gpu.host import (
    NVIDIA_SMI_MISSING,
    TOOLKIT_FIX,
    HostFacts,
    HostGpu,
    gather_host,
    parse_nvidia_smi,
    parse_proc_driver,
    run_nvidia_smi,
)
from ..gpu.known_errors import explain_error
from .entry_checks import static_checks
from .finding import STATUSES, Check, DoctorReport
from .host_checks import host_checks
from .probe_checks import container_checks, parse_probe_output
from .runner import PROBE_PATH, run_doctor

__all__ = [
    "NVIDIA_SMI_MISSING",
    "PROBE_PATH",
    "STATUSES",
    "TOOLKIT_FIX",
    "Check",
    "DoctorReport",
    "HostFacts",
    "HostGpu",
    "alternatives",
    "container_checks",
    "explain_error",
    "gather_host",
    "host_checks",
    "parse_nvidia_smi",
    "parse_probe_output",
    "parse_proc_driver",
    "run_doctor",
    "run_nvidia_smi",
    "static_checks",
]
