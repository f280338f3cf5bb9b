"""Where bench.py's GPU/CPU one-step tolerances sit, measured on the CPU alone.

bench.gpu_cpu_step trains one SGD step of LeNet from the same weights on the GPU and on the CPU
and compares the loss and the parameters. Two measurements bound what a GPU can produce:

- healthy: the fp32 step against the same step in fp64 (the exact answer, near enough). Two
  correct fp32 implementations, whatever their reduction order or algorithm, each sit about
  this far from it, so they differ by at most about twice this.
- tf32: the fp32 step with every conv and linear operand (forward and backward) rounded to
  TF32's 10 mantissa bits, which is what a GPU with TF32 silently on computes.

    python scripts/gpu_cpu_tolerance.py [--seeds 20]

The tolerances must sit well above `healthy` x 2 and below `tf32`.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "envkit" / "inside"))

import bench  # noqa: E402  (the benchmark program itself, stdlib + torch only)
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


def round_mantissa(t: torch.Tensor, bits: int) -> torch.Tensor:
    """fp32 `t` rounded to nearest with `bits` mantissa bits (TF32 keeps 10 of fp32's 23)."""
    drop = 23 - bits
    i = t.contiguous().view(torch.int32)
    return ((i + (1 << (drop - 1))) & ~((1 << drop) - 1)).view(torch.float32)


def _rounded_ops(bits: int):
    r = lambda t: round_mantissa(t, bits)  # noqa: E731

    class Conv(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, b, stride, padding):
            ctx.save_for_backward(x, w)
            ctx.geometry, ctx.has_bias = (stride, padding), b is not None
            return F.conv2d(r(x), r(w), b, stride, padding)

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            stride, padding = ctx.geometry
            gx = torch.nn.grad.conv2d_input(x.shape, r(w), r(g), stride, padding)
            gw = torch.nn.grad.conv2d_weight(r(x), w.shape, r(g), stride, padding)
            return gx, gw, g.sum((0, 2, 3)) if ctx.has_bias else None, None, None

    class Linear(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, w, b):
            ctx.save_for_backward(x, w)
            return r(x) @ r(w).t() + b

        @staticmethod
        def backward(ctx, g):
            x, w = ctx.saved_tensors
            return r(g) @ r(w), r(g).t() @ r(x), g.sum(0)

    return Conv, Linear


def with_rounded_operands(model: torch.nn.Module, bits: int) -> torch.nn.Module:
    """`model` with every Conv2d and Linear computing on operands rounded to `bits` bits."""
    conv, linear = _rounded_ops(bits)
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.forward = lambda x, m=m: conv.apply(x, m.weight, m.bias, m.stride, m.padding)
        elif isinstance(m, torch.nn.Linear):
            m.forward = lambda x, m=m: linear.apply(x, m.weight, m.bias)
    return model


def _step(model, x, y) -> tuple[float, list[torch.Tensor]]:
    """One step as bench.gpu_cpu_step takes it: SGD, lr 0.1, momentum 0.9, batch 128."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return float(loss.detach()), [p.detach().double() for p in model.parameters()]


def step_differences(seed: int, variant: str) -> tuple[float, float]:
    """(loss diff, max parameter diff) between the fp32 step and `variant` ("fp64" or "tf32")."""
    _, _, images, labels = bench.load_digit_tensors(torch, bench.find_data())
    mean, std = float(images.mean()), float(images.std())
    x, y = (images[:128] - mean) / std, labels[:128]
    torch.manual_seed(seed)
    reference = bench.build_lenet()
    other = copy.deepcopy(reference)
    if variant == "fp64":
        other, x_other = other.double(), x.double()
    else:
        other, x_other = with_rounded_operands(other, 10), x
    loss_a, params_a = _step(reference, x, y)
    loss_b, params_b = _step(other, x_other, y)
    return abs(loss_a - loss_b), max(float((a - b).abs().max()) for a, b in zip(params_a, params_b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"tolerances: loss {bench.GPU_CPU_LOSS_TOL:g}, parameters {bench.GPU_CPU_PARAM_TOL:g}")
    for variant in ("fp64", "tf32"):
        diffs = [step_differences(seed, variant) for seed in range(args.seeds)]
        losses, params = [d[0] for d in diffs], [d[1] for d in diffs]
        print(
            f"fp32 vs {variant}, seeds 0-{args.seeds - 1}: loss diff {min(losses):.2e} to "
            f"{max(losses):.2e}, parameter diff {min(params):.2e} to {max(params):.2e}"
        )


if __name__ == "__main__":
    main()
