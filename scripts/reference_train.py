#!/usr/bin/env python3
"""Reference ResNet-18 training loop, run beside the bench's own throughput measurement.

The bench (envkit/inside/bench.py) measures ResNet-18 (CIFAR variant) training throughput via its
generic sweep machinery. This script answers "how much does that machinery cost?": it trains the
same workload with a loop written by hand for speed (bf16 autocast, channels_last, cuDNN autotuning,
fused optimizer where available, no host syncs between steps), then, in the same process and on the
same device, runs the bench's mixed-precision measurement at the same batch size and prints both
and the ratio bench/reference as one JSON document. The target is a ratio >= 0.95 at batch 1024 on
an H100:

    python scripts/reference_train.py --batch 1024 --device cuda

The model here is written independently of bench.py on purpose, so that an inefficiency in the
bench's model would show up as a ratio below 1; the script checks that both have the same parameter
count and the same counted multiply-adds, i.e. that they are the same workload.
"""

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_PATH = os.path.join(REPO, "envkit", "inside", "bench.py")
TARGET_RATIO = 0.95


def load_bench(path=BENCH_PATH):
    spec = importlib.util.spec_from_file_location("envkit_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def reference_model(torch):
    nn = torch.nn

    def conv_bn(cin, cout, k, stride):
        return [nn.Conv2d(cin, cout, k, stride, k // 2, bias=False), nn.BatchNorm2d(cout)]

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.body = nn.Sequential(
                *conv_bn(cin, cout, 3, stride),
                nn.ReLU(inplace=True),
                *conv_bn(cout, cout, 3, 1),
            )
            self.skip = (
                nn.Sequential(*conv_bn(cin, cout, 1, stride))
                if stride != 1 or cin != cout
                else nn.Identity()
            )

        def forward(self, x):
            return torch.relu(self.body(x) + self.skip(x))

    stages = []
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        stages += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    model = nn.Sequential(
        *conv_bn(3, 64, 3, 1),
        nn.ReLU(inplace=True),
        *stages,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(512, 10),
    )
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    return model


def reference_rate(bench, torch, device, precision, batch, steps, windows, warmup):
    """Images/s of the hand-written loop: median over `windows` timed windows of `steps` steps."""
    torch.manual_seed(0)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    model = reference_model(torch).to(device).to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch,), device=device)
    kwargs = {"lr": 0.01, "momentum": 0.9, "nesterov": True}
    try:
        opt = torch.optim.SGD(model.parameters(), fused=(device == "cuda"), **kwargs)
    except (TypeError, RuntimeError):
        opt = torch.optim.SGD(model.parameters(), **kwargs)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    # The bench's helpers pick torch.amp or torch.cuda.amp, whichever this torch has.
    scaler = bench.make_grad_scaler(torch) if precision == "fp16" else None
    autocast = bench.autocast_context(torch, device, dtype)
    loss_fn = torch.nn.functional.cross_entropy

    def step():
        with autocast():
            loss = loss_fn(model(x), y)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        opt.zero_grad(set_to_none=True)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    rates = []
    for _ in range(windows):
        sync()
        t = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        rates.append(steps * batch / (time.perf_counter() - t))
    return statistics.median(rates), rates


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=50, help="steps per reference timing window")
    p.add_argument("--windows", type=int, default=5, help="reference timing windows")
    p.add_argument("--rounds", type=int, default=2, help="alternations reference/bench")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    args = p.parse_args(argv)

    import torch

    bench = load_bench()
    if args.device == "cuda" and not torch.cuda.is_available():
        print(json.dumps({"status": "no_gpu", "error": "--device cuda but no usable GPU"}))
        return 3
    device = "cuda" if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    precision = bench.mixed_precision(torch, device)
    if precision is None:
        print(json.dumps({"status": "unsupported", "error": "no mixed precision on " + device}))
        return 1

    same_params = sum(p.numel() for p in reference_model(torch).parameters()) == sum(
        p.numel() for p in bench.build_resnet18().parameters()
    )
    ref_macs = bench.count_macs(reference_model(torch), (3, 32, 32))
    macs = bench.count_macs(bench.build_resnet18(), (3, 32, 32))
    gpu = torch.cuda.get_device_name(0) if device == "cuda" else None
    peaks = {p: bench.peak_tflops(gpu, p) for p in ("fp32", "tf32", "bf16", "fp16")}
    timing = bench.default_timing(device, quick=False)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    warmup = timing["warmup"]

    # Alternate the two so that clock ramp-up or thermal drift penalises neither side.
    ref_rounds, bench_rounds, bench_rows = [], [], []
    for r in range(args.rounds):
        rate, windows = reference_rate(
            bench, torch, device, precision, args.batch, args.steps, args.windows, warmup
        )
        ref_rounds.append(
            {"images_per_s": round(rate, 2), "windows": [round(w, 2) for w in windows]}
        )
        sys.stderr.write(f"[reference] round {r + 1}: {rate:.1f} images/s\n")
        row = bench.measure_row(torch, device, precision, True, args.batch, timing, macs, peaks)
        bench_rows.append(row)
        if row["oom"]:
            break
        bench_rounds.append(row["images_per_s"])
        sys.stderr.write(
            "[bench]     round {}: {:.1f} images/s\n".format(r + 1, row["images_per_s"])
        )

    ref = statistics.median([r["images_per_s"] for r in ref_rounds])
    bench_rate = statistics.median(bench_rounds) if bench_rounds else None
    ratio = round(bench_rate / ref, 4) if bench_rate else None
    doc = {
        "device": device,
        "gpu": gpu,
        "torch": torch.__version__,
        "precision": precision,
        "channels_last": True,
        "batch": args.batch,
        "same_workload": bool(same_params and ref_macs == macs),
        "forward_macs_per_image": macs,
        "reference": {
            "images_per_s": round(ref, 2),
            "ms_per_step": round(1000.0 * args.batch / ref, 3),
            "tflops": round(ref * macs * 6 / 1e12, 4),
            "rounds": ref_rounds,
            "steps_per_window": args.steps,
        },
        "bench": {
            "images_per_s": bench_rate,
            "rows": bench_rows,
        },
        "ratio": ratio,
        "target": TARGET_RATIO,
        "meets_target": bool(ratio is not None and ratio >= TARGET_RATIO),
    }
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
