"""envkit training benchmark: proves that a PyTorch environment trains correctly, and how fast.

Run inside an image as ``python bench.py [options]``; it prints exactly one JSON document on stdout
(progress goes to stderr). Two parts:

* convergence: LeNet-5 with batch norm trained on real handwritten digits (UCI optical digits,
  bundled as digits.csv.gz) must reach the accuracy threshold; with a GPU, one training step on the
  GPU and on the CPU from the same weights must agree within a stated tolerance.
* throughput: ResNet-18 (CIFAR variant) on synthetic on-device data, a batch-size sweep per
  precision with out-of-memory reported as a row, timed in synchronised windows, with counted
  FLOPs and MFU.

Constraints that shape this file: it is copied alone into images whose Python may be 3.6 and whose
torch may be anything from 1.1 to 2.x, so it uses only the standard library and torch, decides
features by probing attributes (never by comparing version strings), and keeps torch imports inside
functions so the host CLI can import it for its helpers without torch installed.

Exit codes: 0 ok, 1 a check failed, 3 a GPU was demanded but none is usable, 4 the GPU's
architecture has no kernels in this torch build.
"""

import argparse
import csv
import gc
import gzip
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback

SCHEMA = 1
ACCURACY_THRESHOLD = 0.95
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_NO_GPU = 3
EXIT_UNSUPPORTED_ARCH = 4

DATA_NAME = "digits.csv.gz"
# A positional split, not a random one: the test rows are the same on every torch version (RNG
# streams are not guaranteed stable across releases), and the tail of the file holds writers the
# network has mostly not seen, which makes the gate a real generalisation test.
N_TEST = 450

# Peak dense TFLOP/s per precision, matched against the GPU name (case-insensitive, word
# boundaries, longest match wins so "A10" does not claim "A100"). Mirrors envkit/data/gpus.yaml,
# which carries the sources; duplicated here because this file must run without PyYAML or the
# envkit package. fp16/bf16 are tensor-core rates with FP32 accumulation.
PEAK_TFLOPS = [
    # (match substrings, {precision: TFLOP/s or None})
    (("Tesla K80",), {"bf16": None, "fp16": None, "fp32": 4.37, "tf32": None}),
    (("P100-SXM2",), {"bf16": None, "fp16": 21.2, "fp32": 10.6, "tf32": None}),
    (("P100-PCIE", "P100 PCIe"), {"bf16": None, "fp16": 18.7, "fp32": 9.3, "tf32": None}),
    (("GTX 1080 Ti",), {"bf16": None, "fp16": None, "fp32": 11.3, "tf32": None}),
    (("V100-SXM2", "V100 SXM2"), {"bf16": None, "fp16": 125, "fp32": 15.7, "tf32": None}),
    (("V100-PCIE", "V100 PCIe"), {"bf16": None, "fp16": 112, "fp32": 14, "tf32": None}),
    (("TITAN V",), {"bf16": None, "fp16": 110, "fp32": 14.9, "tf32": None}),
    (("Tesla T4", "NVIDIA T4"), {"bf16": None, "fp16": 65, "fp32": 8.1, "tf32": None}),
    (("RTX 2080 Ti",), {"bf16": None, "fp16": 53.8, "fp32": 13.4, "tf32": None}),
    (("A100-SXM4", "A100 SXM4", "A100-SXM"), {"bf16": 312, "fp16": 312, "fp32": 19.5, "tf32": 156}),
    (
        ("A100-PCIE", "A100 PCIe", "A100 80GB PCIe"),
        {"bf16": 312, "fp16": 312, "fp32": 19.5, "tf32": 156},
    ),
    (("NVIDIA A30",), {"bf16": 165, "fp16": 165, "fp32": 10.3, "tf32": 82}),
    (("NVIDIA A10",), {"bf16": 125, "fp16": 125, "fp32": 31.2, "tf32": 62.5}),
    (("NVIDIA A40",), {"bf16": 149.7, "fp16": 149.7, "fp32": 37.4, "tf32": 74.8}),
    (("RTX 3090",), {"bf16": 71, "fp16": 71, "fp32": 35.6, "tf32": 35.6}),
    (("NVIDIA L4",), {"bf16": 121, "fp16": 121, "fp32": 30.3, "tf32": 60}),
    (("L40S",), {"bf16": 362.05, "fp16": 362.05, "fp32": 91.6, "tf32": 183}),
    (("RTX 4090",), {"bf16": 165.2, "fp16": 165.2, "fp32": 82.6, "tf32": 82.6}),
    (
        ("H100 80GB HBM3", "H100 SXM", "H100-SXM"),
        {"bf16": 989, "fp16": 989, "fp32": 67, "tf32": 494},
    ),
    (("H100 PCIe",), {"bf16": 756, "fp16": 756, "fp32": 51, "tf32": 378}),
    (("NVIDIA H200", "H200 SXM"), {"bf16": 989, "fp16": 989, "fp32": 67, "tf32": 494}),
    # The NVL cards run at lower clocks than the SXM parts their names also match: no MFU rather
    # than an SXM peak that would understate it.
    (
        ("NVIDIA H100 NVL", "NVIDIA H200 NVL"),
        {"bf16": None, "fp16": None, "fp32": None, "tf32": None},
    ),
    (("NVIDIA B200",), {"bf16": 2250, "fp16": 2250, "fp32": 80, "tf32": 1100}),
    (("GB200",), {"bf16": 2500, "fp16": 2500, "fp32": 90, "tf32": 1250}),
    (("RTX 5090",), {"bf16": 209.5, "fp16": 209.5, "fp32": 104.8, "tf32": 104.8}),
]

# One step on each device from identical weights and batch: in strict fp32 the only differences are
# reduction order and algorithm choice. Measured on the CPU over seeds 0-19
# (scripts/gpu_cpu_tolerance.py): the fp32 step lies within 2.1e-6 (parameters) and 3.4e-7 (loss)
# of the same step in fp64, so two correct fp32 implementations differ by about 4e-6 at most,
# 24x under the 1e-4 parameter tolerance; TF32 rounding of every conv and linear operand moves
# parameters by 3.8e-4 to 2.0e-3, 3.8x over it. The loss tolerance (the loss is about 2.3 at
# init) catches broken kernels, not TF32, which moves the loss by 3.6e-4 at most.
GPU_CPU_LOSS_TOL = 1e-3
GPU_CPU_PARAM_TOL = 1e-4

# torch 1.x reports a cuBLAS or cuDNN workspace that does not fit by its status name.
OOM_MARKERS = (
    "out of memory",
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_NOT_ENOUGH_MEMORY",
    "CUBLAS_STATUS_ALLOC_FAILED",
)


def log(message):
    """Progress goes to stderr so that stdout carries nothing but the JSON report."""
    sys.stderr.write("[bench] " + message + "\n")
    sys.stderr.flush()


class _NullContext:
    # contextlib.nullcontext only exists from Python 3.7.
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


# ---------------------------------------------------------------------------------------------
# Pure helpers (no torch): the host imports these.
# ---------------------------------------------------------------------------------------------


def peak_tflops(gpu_name, precision):
    """Peak dense TFLOP/s of `gpu_name` for `precision` (fp32, tf32, bf16, fp16), or None."""
    if not gpu_name:
        return None
    best = None
    best_len = -1
    for matches, peaks in PEAK_TFLOPS:
        for sub in matches:
            pattern = r"(?<![A-Za-z0-9])" + re.escape(sub) + r"(?![A-Za-z0-9])"
            if re.search(pattern, gpu_name, re.IGNORECASE) and len(sub) > best_len:
                best, best_len = peaks, len(sub)
    if best is None:
        return None
    return best.get(precision)


def parse_peak_override(text):
    """`--peak-tflops`: "400" applies to every precision; "bf16=989,fp32=67" sets some."""
    if text is None:
        return {}
    text = text.strip()
    try:
        value = float(text)
        return {p: value for p in ("fp32", "tf32", "bf16", "fp16")}
    except ValueError:
        pass
    out = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(
                "--peak-tflops: expected NUMBER or PRECISION=NUMBER[,...], got " + text
            )
        out[key.strip()] = float(value)
    return out


def arch_supported(capability, arch_list):
    """Whether a device of `capability` (major, minor) can run a build compiled for `arch_list`.

    Returns (supported: bool|None, reason). sm_XY machine code runs on devices of the same major
    version and minor >= Y, except arch-specific sm_XYa builds which run only on exactly XY;
    compute_XY PTX is JIT-compiled for any device >= XY, compute_XYa only on XY, compute_XYf
    only within major X. None when the list is empty (unknown). The same rules as
    envkit.facts.kernel_supports, which this file cannot import.
    """
    if not arch_list:
        return None, "torch does not report the architectures it was compiled for"
    major, minor = int(capability[0]), int(capability[1])
    for arch in arch_list:
        m = re.match(r"^(sm|compute)_(\d+)(\d)([a-z]?)$", arch)
        if not m:
            continue
        kind, a_major, a_minor, suffix = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        if kind == "sm":
            if suffix == "a" and (a_major, a_minor) == (major, minor):
                return True, "machine code for " + arch
            if suffix != "a" and a_major == major and a_minor <= minor:
                return True, "machine code for " + arch
        elif kind == "compute":
            if suffix == "a":
                runs = (a_major, a_minor) == (major, minor)
            elif suffix == "f":
                runs = a_major == major and a_minor <= minor
            else:
                runs = (a_major, a_minor) <= (major, minor)
            if runs:
                return True, "PTX for " + arch + " (JIT-compiled at first use)"
    return False, (
        "GPU compute capability sm_{}{} is not covered by this torch build's architectures {}: "
        "every CUDA kernel would fail with 'no kernel image is available'. Use a torch build "
        "whose CUDA version and arch list include sm_{}{}".format(
            major, minor, " ".join(arch_list), major, minor
        )
    )


def summarise_windows(rates):
    """Median and spread ((max-min)/median) of per-window rates."""
    med = statistics.median(rates)
    spread = (max(rates) - min(rates)) / med if med > 0 else None
    return med, spread


def find_data(explicit=None):
    """The digits file: --data, else beside this program, else in data/ beside it."""
    if explicit:
        return explicit
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = (
        os.path.join(here, DATA_NAME),  # copied beside it into an image
        os.path.join(here, "data", DATA_NAME),
        os.path.join(here, os.pardir, "data", DATA_NAME),  # in the envkit package
    )
    for candidate in candidates:
        if os.path.exists(candidate):
            return candidate
    return None


def read_digits(path):
    """Rows of the digits CSV as (pixels: list of 64 ints 0..16, label: int)."""
    rows = []
    with gzip.open(path, "rt") as fh:
        for record in csv.reader(fh):
            if not record:
                continue
            values = [int(float(v)) for v in record]
            if len(values) != 65:
                raise ValueError(f"{path}: expected 65 values per row, got {len(values)}")
            rows.append((values[:64], values[64]))
    return rows


# ---------------------------------------------------------------------------------------------
# Models (defined in functions so that importing this module does not import torch).
# ---------------------------------------------------------------------------------------------


def build_lenet():
    import torch.nn as nn
    import torch.nn.functional as F

    class LeNet5BN(nn.Module):
        """LeNet-5 on 32x32 with batch norm after each conv; the classic digits workload."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5, bias=False)
            self.bn1 = nn.BatchNorm2d(6)
            self.conv2 = nn.Conv2d(6, 16, 5, bias=False)
            self.bn2 = nn.BatchNorm2d(16)
            self.fc1 = nn.Linear(16 * 5 * 5, 120)
            self.fc2 = nn.Linear(120, 84)
            self.fc3 = nn.Linear(84, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
            x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
            # reshape rather than view: channels_last or other strides must not break it.
            x = x.reshape(x.size(0), -1)
            x = F.relu(self.fc1(x))
            x = F.relu(self.fc2(x))
            return self.fc3(x)

    model = LeNet5BN()
    _he_init(model)
    return model


def build_resnet18(num_classes=10):
    import torch.nn as nn
    import torch.nn.functional as F

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = None
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return F.relu(out + (x if self.shortcut is None else self.shortcut(x)))

    class ResNet18(nn.Module):
        """ResNet-18 for 32x32 inputs: 3x3 stem, no max-pool, four stages of two basic blocks."""

        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            layers = []
            cin = 64
            for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                layers.append(
                    nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))
                )
                cin = cout
            self.layer1, self.layer2, self.layer3, self.layer4 = layers
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x):
            x = F.relu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            x = F.adaptive_avg_pool2d(x, 1)
            return self.fc(x.reshape(x.size(0), -1))

    model = ResNet18()
    _he_init(model)
    return model


def _he_init(model):
    # He init keeps activation variance constant through ReLU layers, so the nets train from step
    # one at the learning rates used here; BN starts as the identity.
    import torch.nn as nn

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def count_macs(model, input_shape):
    """Multiply-accumulates of one forward pass of one input, counted from the layers' shapes.

    Conv2d: out_h * out_w * out_channels * (in_channels / groups) * kernel_h * kernel_w.
    Linear: in_features * out_features. Norms, activations, pooling and adds are not counted (the
    usual convention: they are memory-bound and a few percent of the arithmetic). Output sizes are
    read from one forward on the CPU through hooks, so the count follows the model as defined.
    """
    import torch
    import torch.nn as nn

    total = [0]
    hooks = []

    def conv_hook(module, inputs, output):
        kh, kw = module.kernel_size
        per_out = (module.in_channels // module.groups) * kh * kw
        total[0] += int(output[0].numel()) * per_out

    def linear_hook(module, inputs, output):
        total[0] += module.in_features * module.out_features

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1,) + tuple(input_shape)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total[0]


# ---------------------------------------------------------------------------------------------
# Environment and features
# ---------------------------------------------------------------------------------------------


def nvidia_driver():
    try:
        # stdout/stderr=PIPE and universal_newlines: capture_output and text need Python 3.7.
        proc = subprocess.run(  # noqa: UP022
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            universal_newlines=True,  # noqa: UP021
            timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    lines = proc.stdout.strip().splitlines()
    return lines[0].strip() if proc.returncode == 0 and lines else None


def collect_env(torch, device):
    try:
        import torchvision

        tv = getattr(torchvision, "__version__", None)
    except Exception:  # absent or broken against this torch: either way, not usable
        tv = None
    cudnn = None
    try:
        if torch.backends.cudnn.is_available():
            cudnn = torch.backends.cudnn.version()
    except Exception:
        cudnn = None
    env = {
        "torch": torch.__version__,
        "torchvision": tv,
        "cuda": getattr(torch.version, "cuda", None),
        "cudnn": cudnn,
        "python": platform.python_version(),
        "gpu": None,
        "driver": None,
        "capability": None,
        "arch_list": [],
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    if hasattr(torch.cuda, "get_arch_list"):
        try:
            env["arch_list"] = list(torch.cuda.get_arch_list())
        except Exception:
            env["arch_list"] = []
    if device == "cuda" or (device is None and torch.cuda.is_available()):
        try:
            env["gpu"] = torch.cuda.get_device_name(0)
            cap = torch.cuda.get_device_capability(0)
            env["capability"] = f"{cap[0]}.{cap[1]}"
        except Exception:
            pass
        env["driver"] = nvidia_driver()
    return env


def autocast_context(torch, device, dtype):
    """A mixed-precision context for `device`, or None when this torch has none for it."""
    if hasattr(torch, "autocast"):
        try:
            return lambda: torch.autocast(device_type=device, dtype=dtype)
        except Exception:
            pass
    if device == "cuda" and hasattr(torch.cuda, "amp") and hasattr(torch.cuda.amp, "autocast"):
        if dtype == torch.float16:
            return lambda: torch.cuda.amp.autocast()
        return None
    if device == "cpu" and hasattr(torch, "cpu") and hasattr(torch.cpu, "amp"):
        if dtype == getattr(torch, "bfloat16", None):
            return lambda: torch.cpu.amp.autocast()
    return None


def _autocast_works(torch, device, dtype):
    # Construct and enter it once: some builds expose the API but reject the device/dtype pair.
    factory = autocast_context(torch, device, dtype)
    if factory is None:
        return False
    try:
        with factory():
            a = torch.ones(4, 4, device=device)
            torch.mm(a, a)
        return True
    except Exception:
        return False


def gpu_bf16_usable(torch):
    # is_bf16_supported() reports True on pre-Ampere parts where bf16 is emulated and slow, so the
    # capability is checked too.
    fn = getattr(torch.cuda, "is_bf16_supported", None)
    if fn is None or torch.cuda.get_device_capability(0)[0] < 8:
        return False
    try:
        return bool(fn(including_emulation=False))
    except TypeError:
        return bool(fn())


def make_grad_scaler(torch):
    # torch.amp.GradScaler("cuda") is the current spelling; torch.cuda.amp.GradScaler is the
    # older one (deprecated in recent releases, so tried second).
    amp = getattr(torch, "amp", None)
    if amp is not None and hasattr(amp, "GradScaler"):
        try:
            return amp.GradScaler("cuda")
        except TypeError:
            pass
    if hasattr(torch.cuda, "amp") and hasattr(torch.cuda.amp, "GradScaler"):
        return torch.cuda.amp.GradScaler()
    return None


def mixed_precision(torch, device):
    """The mixed precision this device should use: "bf16", "fp16" or None."""
    bf16 = getattr(torch, "bfloat16", None)
    if device == "cuda":
        if bf16 is not None and gpu_bf16_usable(torch) and _autocast_works(torch, "cuda", bf16):
            return "bf16"
        return "fp16" if fp16_usable(torch, device) else None
    if bf16 is not None and _autocast_works(torch, "cpu", bf16):
        return "bf16"
    return None


def _tf32_switches(torch):
    """[(object, attribute, value when on, value when off)] for TF32 in this torch, or [].

    torch 2.9+ has per-backend `fp32_precision` settings and rejects reading the old
    `allow_tf32` flags once the new ones were used; older torch (1.7+) has only `allow_tf32`.
    One API is used, never both.
    """
    matmul = getattr(getattr(torch.backends, "cuda", None), "matmul", None)
    conv = getattr(torch.backends.cudnn, "conv", None)
    if matmul is not None and conv is not None:
        if hasattr(matmul, "fp32_precision") and hasattr(conv, "fp32_precision"):
            return [
                (matmul, "fp32_precision", "tf32", "ieee"),
                (conv, "fp32_precision", "tf32", "ieee"),
            ]
    if matmul is not None and hasattr(matmul, "allow_tf32"):
        if hasattr(torch.backends.cudnn, "allow_tf32"):
            return [
                (matmul, "allow_tf32", True, False),
                (torch.backends.cudnn, "allow_tf32", True, False),
            ]
    return []


def tf32_available(torch, device):
    return (
        device == "cuda"
        and bool(_tf32_switches(torch))
        and torch.cuda.get_device_capability(0)[0] >= 8
    )


def set_tf32(torch, enabled):
    """Set TF32 for matmuls and convs; returns the previous values for restore_tf32."""
    previous = []
    for obj, attr, on, off in _tf32_switches(torch):
        previous.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, on if enabled else off)
    return previous


def restore_tf32(torch, previous):
    for obj, attr, value in previous:
        setattr(obj, attr, value)


def collect_features(torch, device):
    mp = mixed_precision(torch, device)
    cudnn_ok = False
    try:
        cudnn_ok = device == "cuda" and torch.backends.cudnn.is_available()
    except Exception:
        pass
    return {
        "autocast": hasattr(torch, "autocast")
        or (hasattr(torch.cuda, "amp") and hasattr(torch.cuda.amp, "autocast")),
        "bf16": mp == "bf16",
        "fp16_grad_scaler": fp16_usable(torch, device),
        "channels_last": hasattr(torch, "channels_last"),
        "tf32": tf32_available(torch, device),
        "cudnn_benchmark": cudnn_ok,
        "cuda_graphs": device == "cuda" and hasattr(torch.cuda, "CUDAGraph"),
        "compile": hasattr(torch, "compile"),
    }


def features_used(available, rows):
    """The features this run's throughput rows ran with, in collect_features' keys. The rows run
    eagerly, so torch.compile and CUDA graphs are never used; cuDNN autotuning is on for the
    whole run wherever it is available."""
    ran = [r for r in rows if r.get("images_per_s") is not None]
    precisions = set(r["precision"] for r in ran)
    return {
        "autocast": bool(precisions & set(("bf16", "fp16"))),
        "bf16": "bf16" in precisions,
        "fp16_grad_scaler": "fp16" in precisions,
        "channels_last": any(r["channels_last"] for r in ran),
        "tf32": "tf32" in precisions,
        "cudnn_benchmark": bool(available.get("cudnn_benchmark")),
        "cuda_graphs": False,
        "compile": False,
    }


def synchronize(torch, device):
    if device == "cuda":
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------------------------
# Part 1: convergence
# ---------------------------------------------------------------------------------------------


def load_digit_tensors(torch, path):
    """(train_x, train_y, test_x, test_y): images upsampled to 32x32, scaled to [0, 1]."""
    import torch.nn.functional as F

    rows = read_digits(path)
    pixels = torch.tensor([r[0] for r in rows], dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    labels = torch.tensor([r[1] for r in rows], dtype=torch.long)
    # Bilinear 4x keeps stroke shapes smooth; LeNet-5's geometry (5x5 convs, two poolings, 16x5x5
    # features) is defined for 32x32 inputs.
    images = F.interpolate(pixels, size=(32, 32), mode="bilinear", align_corners=False)
    images = images.clamp(0.0, 1.0)
    n_train = images.size(0) - N_TEST
    return images[:n_train], labels[:n_train], images[n_train:], labels[n_train:]


def draw_shifts(torch, steps, batch, pad, generator):
    """(dy, dx) offsets for `steps` batches, each (steps, batch), drawn on the CPU generator in
    the order per-batch draws would take them, so the augmentation is the same either way."""
    dys, dxs = [], []
    for _ in range(steps):
        dys.append(torch.randint(0, 2 * pad + 1, (batch,), generator=generator))
        dxs.append(torch.randint(0, 2 * pad + 1, (batch,), generator=generator))
    return torch.stack(dys), torch.stack(dxs)


def random_shift(torch, images, pad, generator, offsets=None):
    """Each image shifted by up to `pad` pixels in x and y (zero padding, random crop).

    Zero is the background in [0, 1] space. One gather handles the whole batch; advanced indexing
    with broadcasting exists in every supported torch, unlike newer augmentation helpers.
    `offsets` = (dy, dx) already on the images' device; otherwise they are drawn here.
    """
    n, _, h, w = images.shape
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    if offsets is None:
        dy, dx = (t[0].to(images.device) for t in draw_shifts(torch, 1, n, pad, generator))
    else:
        dy, dx = offsets
    rows = (dy.view(n, 1) + torch.arange(h, device=images.device).view(1, h)).view(n, h, 1)
    cols = (dx.view(n, 1) + torch.arange(w, device=images.device).view(1, w)).view(n, 1, w)
    batch = torch.arange(n, device=images.device).view(n, 1, 1)
    return padded[:, 0][batch, rows, cols].unsqueeze(1)


def param_groups(model, weight_decay):
    # Decay only weights of convs and linears: decaying BN scales and biases fights the
    # normalisation and measurably hurts small nets.
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def make_optimizer(torch, model, name, lr, weight_decay):
    groups = param_groups(model, weight_decay)
    if name == "adam":
        # AdamW decouples weight decay from the adaptive step; plain Adam is the fallback for
        # torch releases before it existed.
        cls = getattr(torch.optim, "AdamW", torch.optim.Adam)
        return cls(groups, lr=lr)
    return torch.optim.SGD(groups, lr=lr, momentum=0.9, nesterov=True)


def lr_at(step, total_steps, warmup_steps, base_lr):
    """Linear warm-up from base_lr/warmup to base_lr, then cosine decay to zero."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def evaluate(torch, model, images, labels, mean, std, device):
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, images.size(0), 500):
            x = ((images[i : i + 500] - mean) / std).to(device)
            pred = model(x).argmax(dim=1)
            correct += int((pred.cpu() == labels[i : i + 500]).sum())
    model.train()
    return correct / float(images.size(0))


def run_convergence(torch, device, args):
    t0 = time.time()
    path = find_data(args.data)
    if path is None or not os.path.exists(path):
        raise RuntimeError(
            f"digits data not found: {path or DATA_NAME} "
            "(looked beside bench.py and in data/; pass --data PATH)"
        )
    train_x, train_y, test_x, test_y = load_digit_tensors(torch, path)
    mean = float(train_x.mean())
    std = float(train_x.std())
    torch.manual_seed(args.seed)
    model = build_lenet().to(device)
    if args.optimizer == "adam":
        base_lr = 2e-3 if args.lr is None else args.lr
        weight_decay = 1e-2
    else:
        base_lr = 0.05 if args.lr is None else args.lr
        weight_decay = 5e-4
    opt = make_optimizer(torch, model, args.optimizer, base_lr, weight_decay)
    epochs = args.epochs or (15 if args.quick else 40)
    batch = 64
    n = train_x.size(0)
    # The remainder batch is dropped: a batch of a few images gives batch norm noisy statistics
    # and visibly spiked the loss curve.
    steps_per_epoch = n // batch
    total = epochs * steps_per_epoch
    warmup = 2 * steps_per_epoch
    gen = torch.Generator()
    gen.manual_seed(args.seed)
    threads = torch.get_num_threads()
    if device == "cpu":
        # LeNet's ops are tiny (a batch is ~30 MFLOP): splitting them across threads costs more in
        # synchronisation than it gains, and on a shared machine it collapses (3x slower measured
        # on 2 busy cores). One thread makes this part fast and its timing repeatable.
        torch.set_num_threads(1)
    try:
        tx = train_x.to(device)
        ty = train_y.to(device)
        losses = []
        step = 0
        for epoch in range(epochs):
            order = torch.randperm(n, generator=gen).to(device)
            # The epoch's shifts are drawn at once and copied to the device once: a copy per
            # step would wait for the GPU's queue to drain every time.
            shift_y, shift_x = (
                t.to(device) for t in draw_shifts(torch, steps_per_epoch, batch, 3, gen)
            )
            epoch_loss = torch.zeros((), device=device)
            for k, i in enumerate(range(0, steps_per_epoch * batch, batch)):
                idx = order[i : i + batch]
                shifted = random_shift(torch, tx[idx], 3, gen, (shift_y[k], shift_x[k]))
                x = (shifted - mean) / std
                for group in opt.param_groups:
                    group["lr"] = lr_at(step, total, warmup, base_lr)
                loss = torch.nn.functional.cross_entropy(model(x), ty[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                # Accumulate on the device: one host sync per epoch instead of one per step.
                epoch_loss = epoch_loss + loss.detach() * idx.size(0)
                step += 1
            losses.append(round(float(epoch_loss) / (steps_per_epoch * batch), 5))
            log(f"convergence epoch {epoch + 1}/{epochs} loss {losses[-1]:.4f}")
        accuracy = evaluate(torch, model, test_x, test_y, mean, std, device)
    finally:
        torch.set_num_threads(threads)
    log(f"convergence test accuracy {accuracy:.4f} on {N_TEST} held-out digits")
    finite = all(math.isfinite(v) for v in losses)
    return {
        "model": "lenet5_bn",
        "dataset": "uci_optical_digits_8x8_upsampled_32",
        "train_size": n,
        "test_size": int(test_x.size(0)),
        "optimizer": args.optimizer,
        "base_lr": base_lr,
        "batch": batch,
        "accuracy": round(accuracy, 5),
        "epochs": epochs,
        "seconds": round(time.time() - t0, 3),
        "losses": losses,
        "losses_finite": finite,
        "threshold": ACCURACY_THRESHOLD,
        "passed": bool(accuracy >= ACCURACY_THRESHOLD and finite),
        "gpu_cpu_step": None,
        "_data": (test_x, test_y, mean, std),
    }


def gpu_cpu_step(torch, seed, images, labels, mean, std):
    """One SGD step of the same LeNet from the same weights on the same batch, on GPU and CPU."""
    import copy

    previous = set_tf32(torch, False)
    # TF32 would round conv/matmul inputs to 10 mantissa bits on the GPU only; the comparison is
    # about kernel correctness, so both sides must compute in full fp32. cuDNN's autotuner may
    # pick FFT or Winograd convolutions, less exact than the CPU's direct ones: use its default
    # deterministic choice for this one step.
    cudnn = getattr(torch.backends, "cudnn", None)
    cudnn_flags = (cudnn.benchmark, cudnn.deterministic) if cudnn is not None else None
    if cudnn is not None:
        cudnn.benchmark, cudnn.deterministic = False, True
    try:
        torch.manual_seed(seed)
        cpu_model = build_lenet()
        gpu_model = copy.deepcopy(cpu_model).cuda()
        x = (images[:128] - mean) / std
        y = labels[:128]
        results = []
        for model, dev in ((cpu_model, "cpu"), (gpu_model, "cuda")):
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            loss = torch.nn.functional.cross_entropy(model(x.to(dev)), y.to(dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            synchronize(torch, dev)
            results.append((float(loss), [p.detach().cpu() for p in model.parameters()]))
    finally:
        restore_tf32(torch, previous)
        if cudnn_flags is not None:
            cudnn.benchmark, cudnn.deterministic = cudnn_flags
    loss_diff = abs(results[0][0] - results[1][0])
    param_diff = max(float((a - b).abs().max()) for a, b in zip(results[0][1], results[1][1]))
    return {
        "loss_cpu": results[0][0],
        "loss_gpu": results[1][0],
        "loss_max_abs_diff": loss_diff,
        "param_max_abs_diff": param_diff,
        "loss_tolerance": GPU_CPU_LOSS_TOL,
        "param_tolerance": GPU_CPU_PARAM_TOL,
        "tf32": False,
        "batch": int(x.size(0)),
        "passed": bool(loss_diff <= GPU_CPU_LOSS_TOL and param_diff <= GPU_CPU_PARAM_TOL),
    }


# ---------------------------------------------------------------------------------------------
# Part 2: throughput
# ---------------------------------------------------------------------------------------------


class StepState:
    """What one training step needs; built once per (precision, batch) row."""

    def __init__(self, model, optimizer, autocast, scaler):
        self.model = model
        self.optimizer = optimizer
        self.autocast = autocast
        self.scaler = scaler


def train_step(state, x, y):
    """One forward/backward/update. Returns the loss as a device tensor (never synced here)."""
    import torch.nn.functional as F

    with state.autocast() if state.autocast is not None else _NullContext():
        loss = F.cross_entropy(state.model(x), y)
    # Dropping grads instead of zeroing them saves a memset kernel per parameter.
    for p in state.model.parameters():
        p.grad = None
    if state.scaler is not None:
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        loss.backward()
        state.optimizer.step()
    return loss.detach()


def is_oom(exc):
    message = str(exc)
    return any(marker in message for marker in OOM_MARKERS)


def _make_sgd(torch, params, device):
    # Fused SGD (one kernel for all parameters) where this torch has it for CUDA; the for-each
    # default elsewhere. Probed by construction, since the keyword arrived late.
    params = list(params)  # a generator would be spent by a failed first attempt
    if device == "cuda":
        try:
            return torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, fused=True)
        except (TypeError, RuntimeError, ValueError):
            pass
    return torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True)


def reset_peak_memory(torch):
    if hasattr(torch.cuda, "reset_peak_memory_stats"):
        torch.cuda.reset_peak_memory_stats()
    elif hasattr(torch.cuda, "reset_max_memory_allocated"):
        torch.cuda.reset_max_memory_allocated()


def new_row(precision, channels_last, batch):
    """A throughput row with every field present; measurements stay None until made."""
    return {
        "model": "resnet18_cifar",
        "precision": precision,
        "channels_last": bool(channels_last),
        "batch": batch,
        "images_per_s": None,
        "ms_per_step": None,
        "spread": None,
        "noisy": None,
        "peak_mem_mb": None,
        "tflops": None,
        "mfu": None,
        "oom": False,
        "windows": None,
        "steps_per_window": None,
        "final_loss": None,
        "seconds": None,
    }


def measure_row(torch, device, precision, channels_last, batch, timing, macs, peaks, seed=0):
    """Throughput of ResNet-18 training at one (precision, batch). OOM becomes a row, not a raise.

    timing: dict with warmup (steps), windows (count), window_s (target seconds per window),
    min_steps / max_steps (per window).
    """
    row = new_row(precision, channels_last, batch)
    started = time.time()
    oom_message = None
    model = state = optimizer = scaler = x = y = loss = None
    previous_tf32 = None
    if device == "cuda":
        # fp32 rows are strict fp32; the tf32 row is the same run with TF32 tensor cores allowed.
        previous_tf32 = set_tf32(torch, precision == "tf32")
    try:
        torch.manual_seed(seed)
        model = build_resnet18().to(device)
        x = torch.randn(batch, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        autocast = scaler = None
        if precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            autocast = autocast_context(torch, device, dtype)
            if precision == "fp16":
                # fp16's 5-bit exponent underflows small gradients; loss scaling keeps them.
                scaler = make_grad_scaler(torch)
        optimizer = _make_sgd(torch, model.parameters(), device)
        row["fused_sgd"] = bool(getattr(optimizer, "defaults", {}).get("fused"))
        state = StepState(model, optimizer, autocast, scaler)
        # Warm-up: first steps pay for cuDNN autotuning, allocator growth and lazy init.
        for _ in range(timing["warmup"]):
            loss = train_step(state, x, y)
        synchronize(torch, device)
        if device == "cuda":
            # From here the peak is a training step's, not cuDNN's autotuning workspaces.
            reset_peak_memory(torch)
        # Calibrate the window length from two timed steps so every window lasts about window_s.
        t = time.perf_counter()
        for _ in range(2):
            loss = train_step(state, x, y)
        synchronize(torch, device)
        per_step = (time.perf_counter() - t) / 2
        steps = int(math.ceil(timing["window_s"] / max(per_step, 1e-6)))
        steps = max(timing["min_steps"], min(timing["max_steps"], steps))
        rates = []
        for _ in range(timing["windows"]):
            synchronize(torch, device)
            t = time.perf_counter()
            for _ in range(steps):
                # No .item() or other host reads here: each would stall the GPU queue.
                loss = train_step(state, x, y)
            synchronize(torch, device)
            rates.append(steps * batch / (time.perf_counter() - t))
        final_loss = float(loss)
        med, spread = summarise_windows(rates)
        row["images_per_s"] = round(med, 2)
        row["ms_per_step"] = round(1000.0 * batch / med, 3)
        row["spread"] = round(spread, 4) if spread is not None else None
        row["noisy"] = bool(spread is not None and spread > 0.1)
        row["windows"] = [round(r, 2) for r in rates]
        row["steps_per_window"] = steps
        row["final_loss"] = round(final_loss, 4) if math.isfinite(final_loss) else final_loss
        if device == "cuda":
            row["peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2.0**20, 1)
        # Training FLOPs: backward costs about twice the forward (grads w.r.t. inputs and
        # weights), so a step is 3x the forward multiply-adds, at 2 FLOPs each.
        tflops = med * macs * 3 * 2 / 1e12
        row["tflops"] = round(tflops, 4)
        peak = peaks.get(precision)
        row["mfu"] = round(tflops / peak, 4) if peak else None
    except RuntimeError as exc:
        oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
        if not (is_oom(exc) or (oom_type is not None and isinstance(exc, oom_type))):
            raise
        oom_message = str(exc).splitlines()[0][:300]
    finally:
        if previous_tf32:
            restore_tf32(torch, previous_tf32)
    if oom_message is not None:
        # Freed outside the except block: the live traceback would otherwise pin the frames that
        # hold the activations, and empty_cache could not return them.
        row["oom"] = True
        row["error"] = oom_message
    # The optimizer holds the parameters, their grads and momentum buffers: all must go before
    # the cache is emptied, or the next row starts with them still allocated.
    del model, state, optimizer, scaler, x, y, loss
    release_memory(torch, device)
    row["seconds"] = round(time.time() - started, 2)
    return row


def device_broken(torch, device):
    """None when `device` still runs a kernel after an error; else what went wrong."""
    try:
        release_memory(torch, device)
        if device == "cuda":
            (torch.ones(8, device="cuda") * 2).sum().item()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
    return None


# What CUDA and its libraries say when a build has no code for the GPU (torch 1.x's THC words
# cuBLAS's failure as "the GPU program failed to execute").
ARCH_ERRORS = (
    "no kernel image",
    "CUBLAS_STATUS_EXECUTION_FAILED",
    "CUBLAS_STATUS_ARCH_MISMATCH",
    "CUDNN_STATUS_EXECUTION_FAILED",
    "CUDNN_STATUS_ARCH_MISMATCH",
    "the GPU program failed to execute",
)


def device_runs_kernels(torch, device):
    """None when an elementwise kernel, a matmul (cuBLAS) and a convolution (cuDNN) run on
    `device`; else which one failed and why, when the error says the build has no code for
    the GPU. Any other error is raised."""
    x = torch.ones(1, 1, 8, 8, device=device)
    w = torch.ones(1, 1, 3, 3, device=device)
    kernels = (
        ("an elementwise kernel", lambda: (x * 2).sum().item()),
        ("a matmul (cuBLAS)", lambda: torch.mm(x[0, 0], x[0, 0]).sum().item()),
        ("a convolution (cuDNN)", lambda: torch.nn.functional.conv2d(x, w).sum().item()),
    )
    for what, run in kernels:
        try:
            run()
        except RuntimeError as exc:
            text = str(exc)
            if not any(marker in text for marker in ARCH_ERRORS):
                raise
            return f"{what} failed on this GPU: {text.strip().splitlines()[0][:300]}"
    return None


def release_memory(torch, device):
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()


def default_batches(device, quick):
    if device == "cuda":
        return [256, 1024] if quick else [64, 128, 256, 512, 1024, 2048]
    # A ResNet-18 step on a small CPU takes seconds: keep the sweep to sizes that finish in minutes.
    return [8] if quick else [8, 16, 32]


def default_timing(device, quick):
    if device == "cuda":
        return {"warmup": 10, "windows": 5, "window_s": 0.5, "min_steps": 5, "max_steps": 500}
    if quick:
        return {"warmup": 1, "windows": 3, "window_s": 1.0, "min_steps": 2, "max_steps": 50}
    return {"warmup": 1, "windows": 3, "window_s": 2.0, "min_steps": 2, "max_steps": 200}


def fp16_usable(torch, device):
    """fp16 autocast with loss scaling works here (a GPU's second choice after bf16)."""
    return (
        device == "cuda"
        and make_grad_scaler(torch) is not None
        and _autocast_works(torch, "cuda", torch.float16)
    )


def usable_precisions(torch, device):
    """Every precision this torch can train in on `device`."""
    usable = ["fp32"]
    if tf32_available(torch, device):
        usable.append("tf32")
    mp = mixed_precision(torch, device)
    if mp is not None:
        usable.append(mp)
    if mp == "bf16" and fp16_usable(torch, device):
        usable.append("fp16")
    return usable


def throughput_plan(torch, device, precisions=None):
    """[(precision, channels_last)] to measure: `precisions` where usable, else every usable
    one with a single mixed precision (bf16 where the GPU has it, else fp16 with loss scaling)."""
    usable = usable_precisions(torch, device)
    if precisions:
        wanted = [p for p in precisions if p in usable]
    else:
        wanted = [p for p in usable if not (p == "fp16" and "bf16" in usable)]
    has_cl = hasattr(torch, "channels_last")
    # channels_last (NHWC) is what tensor-core and oneDNN reduced-precision convs want; fp32 rows
    # stay NCHW as the plain baseline.
    return [(p, has_cl and p in ("bf16", "fp16", "tf32")) for p in wanted]


def run_throughput(torch, device, batches, plan, timing, peaks, rows):
    """Sweep each (precision, channels_last) over `batches`, appending to `rows` as it goes.

    A precision stops at its first OOM (the row says so) or at its first other error: that row
    carries the error, and the next precision still runs.
    """
    max_batch = {}
    macs = count_macs(build_resnet18(), (3, 32, 32))
    for precision, channels_last in plan:
        max_batch[precision] = None
        for batch in batches:
            log(f"throughput {precision} channels_last={channels_last} batch {batch}")
            row = None
            try:
                row = measure_row(
                    torch, device, precision, channels_last, batch, timing, macs, peaks
                )
            except Exception as exc:
                failed = new_row(precision, channels_last, batch)
                failed["error"] = f"{type(exc).__name__}: {exc}"[:2000]
                rows.append(failed)
                log(f"  failed: {failed['error'].splitlines()[0]}")
            if row is None:
                # Outside the except block, so the failed step's frames are already released.
                broken = device_broken(torch, device)
                if broken:
                    # A sticky CUDA error (an illegal address, a launch failure) poisons the
                    # context: every later measurement would fail the same way.
                    rows[-1]["error"] += "\nthe CUDA context is unusable afterwards: " + broken
                    log("  the CUDA context is unusable; the sweep stops here")
                    return max_batch, macs
                break
            rows.append(row)
            if row["oom"]:
                log(f"  out of memory at batch {batch}; larger batches skipped")
                break
            max_batch[precision] = batch
            log(
                "  {:.1f} images/s, {:.2f} ms/step, spread {}".format(
                    row["images_per_s"], row["ms_per_step"], row["spread"]
                )
            )
    return max_batch, macs


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="envkit training benchmark (prints one JSON document)")
    p.add_argument("--quick", action="store_true", help="CI-sized run (same accuracy gate)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--out", help="also write the JSON report to this file")
    p.add_argument("--data", help="digits.csv.gz (default: beside this program, or data/)")
    p.add_argument("--lr", type=float, default=None, help="base learning rate for the digits run")
    p.add_argument("--optimizer", choices=["sgd", "adam"], default="sgd")
    p.add_argument("--epochs", type=int, default=None, help="digits epochs (default 40, quick 15)")
    p.add_argument("--parts", default="convergence,throughput", help="comma-separated parts")
    p.add_argument("--batches", default=None, help="throughput batch sizes, e.g. 32,64,128")
    p.add_argument(
        "--precisions", default=None, help="subset of fp32,tf32,bf16,fp16 (default: all usable)"
    )
    p.add_argument(
        "--peak-tflops",
        default=None,
        help="peak TFLOP/s for MFU: a number for every precision or bf16=989,fp32=67",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    parts = [s.strip() for s in args.parts.split(",") if s.strip()]
    for part in parts:
        if part not in ("convergence", "throughput"):
            p.error(f"--parts: unknown part {part!r} (convergence, throughput)")
    args.parts = parts
    if args.batches:
        try:
            args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
        except ValueError:
            p.error("--batches: expected comma-separated integers")
        if not args.batches or min(args.batches) < 1:
            p.error("--batches: expected positive integers")
    if args.precisions:
        args.precisions = [s.strip() for s in args.precisions.split(",") if s.strip()]
        unknown = [s for s in args.precisions if s not in ("fp32", "tf32", "bf16", "fp16")]
        if unknown or not args.precisions:
            p.error("--precisions: expected some of fp32,tf32,bf16,fp16")
    try:
        args.peak_override = parse_peak_override(args.peak_tflops)
    except ValueError as exc:
        p.error(str(exc))
    return args


def empty_report():
    return {
        "schema": SCHEMA,
        "status": "failed",
        "failed_checks": [],
        "env": None,
        "features": None,  # used by this run (features_used), set once the device is known
        "features_available": None,
        "convergence": None,
        "throughput": [],
        "throughput_max_batch": {},
        "notes": [],
        "seconds_total": None,
    }


def exit_code_for(status):
    return {
        "ok": EXIT_OK,
        "no_gpu": EXIT_NO_GPU,
        "unsupported_arch": EXIT_UNSUPPORTED_ARCH,
    }.get(status, EXIT_FAILED)


def run(args, report):
    """Fill `report` in place (so a crash part-way still reports what was measured)."""
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        report["env"] = collect_env(torch, "cpu")
        report["env"]["device"] = None
        report["status"] = "no_gpu"
        report["failed_checks"].append("device.cuda")
        report["notes"].append(
            "--device cuda was demanded but torch.cuda.is_available() is False "
            "(torch.version.cuda={}, driver={})".format(
                getattr(torch.version, "cuda", None), nvidia_driver()
            )
        )
        return
    device = "cuda" if args.device in ("cuda", "auto") and torch.cuda.is_available() else "cpu"
    report["env"] = env = collect_env(torch, device)
    if device == "cuda":
        cap = torch.cuda.get_device_capability(0)
        supported, reason = arch_supported(cap, env["arch_list"])
        if supported is not False:
            # Belt and braces: the arch list can be missing (torch < 1.7) or cover only torch's
            # own kernels (torch < 1.6 links cuBLAS and cuDNN in, without PTX): real kernels
            # from each library decide.
            failed = device_runs_kernels(torch, "cuda")
            if failed is not None:
                supported, reason = False, failed
        if supported is False:
            report["status"] = "unsupported_arch"
            report["failed_checks"].append("device.arch")
            report["notes"].append(reason)
            return
        if hasattr(torch.backends, "cudnn"):
            # Autotuning picks the fastest conv algorithm per shape; the fixed shapes here are
            # its ideal case.
            torch.backends.cudnn.benchmark = True
    report["features_available"] = collect_features(torch, device)

    if "convergence" in args.parts:
        # Strict fp32 on a GPU too (cuDNN allows TF32 convolutions by default): the gate checks
        # correctness, and `features` then reports TF32 only where a tf32 row used it.
        previous_tf32 = set_tf32(torch, False) if device == "cuda" else []
        try:
            conv = run_convergence(torch, device, args)
        finally:
            restore_tf32(torch, previous_tf32)
        test_x, test_y, mean, std = conv.pop("_data")
        report["convergence"] = conv
        if not conv["passed"]:
            report["failed_checks"].append("convergence.accuracy")
        if device == "cuda":
            step = gpu_cpu_step(torch, args.seed, test_x, test_y, mean, std)
            conv["gpu_cpu_step"] = step
            log(
                "gpu/cpu step: loss diff {:.2e}, param diff {:.2e}".format(
                    step["loss_max_abs_diff"], step["param_max_abs_diff"]
                )
            )
            if not step["passed"]:
                report["failed_checks"].append("convergence.gpu_cpu_step")

    if "throughput" in args.parts:
        gpu = env["gpu"]
        peaks = {}
        for precision in ("fp32", "tf32", "bf16", "fp16"):
            peaks[precision] = args.peak_override.get(precision, peak_tflops(gpu, precision))
        batches = args.batches or default_batches(device, args.quick)
        plan = throughput_plan(torch, device, args.precisions)
        skipped = [p for p in args.precisions or () if p not in [q for q, _ in plan]]
        if skipped:
            report["notes"].append(
                "--precisions {}: not usable with this torch on {} (usable: {})".format(
                    ",".join(skipped), device, ",".join(usable_precisions(torch, device))
                )
            )
        timing = default_timing(device, args.quick)
        rows = report["throughput"]  # filled as rows finish: a crash keeps what was measured
        max_batch, macs = run_throughput(torch, device, batches, plan, timing, peaks, rows)
        report["throughput_max_batch"] = max_batch
        report["throughput_config"] = {
            "forward_macs_per_image": macs,
            "flops_per_image_train": macs * 2 * 3,
            "timing": timing,
            "peak_tflops": peaks,
            "optimizer": "sgd_nesterov",
        }
        if device == "cpu":
            try:
                import resource

                # ru_maxrss is KiB on Linux; a process-wide high-water mark, so it is reported once
                # here rather than per row.
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
                report["max_rss_mb"] = round(rss, 1)
            except Exception:
                report["max_rss_mb"] = None
            report["notes"].append(
                "peak_mem_mb is null on CPU: there are no per-row allocator statistics; "
                "max_rss_mb is the whole process's peak resident memory"
            )
        if any(r["precision"] == "fp16" and r.get("fused_sgd") is False for r in rows):
            report["notes"].append(
                "fp16 rows ran without fused SGD: GradScaler then reads its overflow flag back "
                "to the host every step, a sync the other rows do not pay"
            )
        if device == "cuda":
            report["notes"].append(
                "peak_mem_mb is the allocator's peak over the timed steps, after warm-up "
                "(cuDNN autotuning workspaces excluded)"
            )
        if any(r.get("error") and not r["oom"] for r in rows):
            report["failed_checks"].append("throughput.error")
        if any(
            r.get("final_loss") is not None and not math.isfinite(r["final_loss"]) for r in rows
        ):
            report["failed_checks"].append("throughput.finite_loss")
        if rows and all(r["oom"] for r in rows if r["batch"] == min(batches)):
            report["failed_checks"].append("throughput.smallest_batch_oom")

    report["status"] = "failed" if report["failed_checks"] else "ok"


def write_report(path, text):
    """Write `text` to `path` whole or not at all, never through a link: an exclusive temporary
    file beside it, fsync, rename. Returns None, or why it could not be written."""
    if os.path.islink(path):
        return "it is a symbolic link"
    folder = os.path.dirname(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    temporary, fd = None, -1
    try:
        for _ in range(100):
            name = f".{os.path.basename(path)}.{os.urandom(4).hex()}.tmp"
            try:
                fd = os.open(os.path.join(folder, name), flags, 0o644)
            except FileExistsError:
                continue
            temporary = os.path.join(folder, name)
            break
        if temporary is None:
            return "no free temporary name in " + folder
        view = memoryview(text.encode("utf-8"))
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        closing, fd = fd, -1
        os.close(closing)
        os.replace(temporary, path)
        temporary = None
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        if fd >= 0:
            os.close(fd)
        if temporary is not None:
            try:
                os.unlink(temporary)
            except OSError:
                pass
    return None


def main(argv=None):
    t0 = time.time()
    args = parse_args(argv)
    report = empty_report()
    try:
        run(args, report)
    except Exception as exc:
        # A crash still yields a parsable report naming it: the CLI relies on one JSON document.
        report["status"] = "failed"
        report["failed_checks"].append("crash")
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["traceback"] = traceback.format_exc()
        log(report["traceback"])
    if report["features_available"] is not None:  # a crash part-way reports what it used
        report["features"] = features_used(report["features_available"], report["throughput"])
    report["seconds_total"] = round(time.time() - t0, 3)
    text = json.dumps(report, indent=2, sort_keys=False, default=str)
    if args.out:
        problem = write_report(args.out, text + "\n")
        if problem:  # the run's results are not lost: stdout still carries them
            log(f"could not write {args.out}: {problem}; the report is on stdout only")
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
    log("status {} {}".format(report["status"], report["failed_checks"] or ""))
    return exit_code_for(report["status"])


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # Ctrl-C ends the run: no report and no traceback, the shell's exit code for SIGINT.
        sys.stderr.write("[bench] interrupted\n")
        sys.exit(130)
