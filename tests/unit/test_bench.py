"""The bench program (envkit/inside/bench.py), run for real with the host's CPU torch.

The quick run is executed once per test session (about 40 s on 2 cores) and its JSON shared with
test_report.py through a file in pytest's session temp folder.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envkit.inside import bench

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "envkit" / "inside" / "bench.py"
REFERENCE = REPO / "scripts" / "reference_train.py"

ENV_FIELDS = {
    "torch",
    "torchvision",
    "cuda",
    "cudnn",
    "python",
    "gpu",
    "driver",
    "capability",
    "arch_list",
    "cpu_count",
    "device",
}
ROW_FIELDS = {
    "model",
    "precision",
    "channels_last",
    "batch",
    "images_per_s",
    "ms_per_step",
    "spread",
    "noisy",
    "peak_mem_mb",
    "tflops",
    "mfu",
    "oom",
}
FEATURES = {
    "autocast",
    "bf16",
    "fp16_grad_scaler",
    "channels_last",
    "tf32",
    "cudnn_benchmark",
    "cuda_graphs",
    "compile",
}


def run_bench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def quick_report(tmp_path_factory) -> tuple[dict, subprocess.CompletedProcess | None, Path]:
    """The --quick CPU report, computed once per session (shared with test_report.py)."""
    pytest.importorskip("torch")
    folder = tmp_path_factory.getbasetemp() / "bench-quick"
    out = folder / "report.json"
    if out.exists():
        return json.loads(out.read_text()), None, out
    folder.mkdir(exist_ok=True)
    proc = run_bench("--quick", "--device", "cpu", "--out", str(folder / "partial.json"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder / "partial.json").rename(out)
    (folder / "stdout.txt").write_text(proc.stdout)
    return json.loads(out.read_text()), proc, out


@pytest.fixture(scope="session")
def quick(tmp_path_factory):
    return quick_report(tmp_path_factory)


# --- the program as a whole ------------------------------------------------------------------


def test_importable_without_torch():
    # The host CLI imports bench.py for its helpers and path; torch may not be installed there.
    code = (
        "import sys; sys.modules['torch'] = None; "
        "import envkit.inside.bench as b; assert b.peak_tflops('NVIDIA H100 PCIe', 'bf16') == 756; "
        "print(b.SCHEMA)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1"


def test_source_parses_as_python_36():
    # The file runs in images with Python 3.6: no walrus, no positional-only parameters, no
    # f-string '=' (the ast check), and none of the 3.7+ library spellings it could slip into.
    import ast

    text = BENCH.read_text()
    ast.parse(text, feature_version=(3, 6))
    for banned in ("from __future__ import annotations", "dataclasses", "nullcontext()"):
        assert banned not in text, banned
    assert "capture_output=" not in text and "text=True" not in text  # both need 3.7
    python36 = shutil.which("python3.6")
    if python36:
        # A pyenv shim may exist without the version being active: only use a working one.
        probe = subprocess.run([python36, "-c", "print(1)"], capture_output=True, text=True)
        if probe.returncode == 0:
            proc = subprocess.run([python36, str(BENCH), "--help"], capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr


@pytest.mark.torch
def test_quick_report_has_documented_fields(quick):
    doc, proc, out = quick
    if proc is not None:
        # stdout carries exactly one JSON document, identical to the --out file
        assert json.loads(proc.stdout) == doc
    assert doc["schema"] == 1
    assert doc["status"] == "ok"
    assert doc["failed_checks"] == []
    assert ENV_FIELDS <= set(doc["env"])
    assert doc["env"]["device"] == "cpu"
    assert doc["env"]["gpu"] is None and doc["env"]["cuda"] is None
    assert set(doc["features"]) == set(doc["features_available"]) == FEATURES
    assert all(isinstance(v, bool) for v in doc["features"].values())
    # `features` is what the rows ran with; nothing is used that is not available.
    ran = {r["precision"] for r in doc["throughput"]}
    used = doc["features"]
    assert used["bf16"] == used["autocast"] == ("bf16" in ran)
    assert used["channels_last"] == any(r["channels_last"] for r in doc["throughput"])
    assert used["tf32"] is used["fp16_grad_scaler"] is used["cudnn_benchmark"] is False  # CPU
    assert used["compile"] is used["cuda_graphs"] is False  # the rows run eagerly
    assert all(doc["features_available"][k] for k, v in used.items() if v)

    conv = doc["convergence"]
    for key in ("accuracy", "epochs", "seconds", "losses", "threshold", "passed", "gpu_cpu_step"):
        assert key in conv
    assert conv["threshold"] == 0.95
    assert conv["accuracy"] >= 0.95 and conv["passed"] is True
    assert len(conv["losses"]) == conv["epochs"]
    assert conv["losses"][-1] < conv["losses"][0] / 10
    assert conv["gpu_cpu_step"] is None  # no GPU here

    assert doc["throughput"], "quick mode still measures at least one row"
    for row in doc["throughput"]:
        assert ROW_FIELDS <= set(row)
        assert row["model"] == "resnet18_cifar"
        assert row["oom"] is False
        assert row["images_per_s"] > 0 and row["ms_per_step"] > 0
        assert row["ms_per_step"] == pytest.approx(1000 * row["batch"] / row["images_per_s"], 1e-2)
        assert row["peak_mem_mb"] is None  # CPU: no allocator statistics, said in notes
        assert row["mfu"] is None  # no known peak for a CPU
        assert row["noisy"] == (row["spread"] > 0.1)
        # TFLOP/s follow from counted FLOPs, not from a constant
        flops = doc["throughput_config"]["flops_per_image_train"]
        # (the report rounds TFLOP/s to 4 decimals: on a slow or busy CPU that is more than 1%)
        assert row["tflops"] == pytest.approx(
            row["images_per_s"] * flops / 1e12, rel=1e-2, abs=5e-5
        )
    assert {r["precision"] for r in doc["throughput"]} >= {"fp32"}
    assert any("peak_mem_mb is null on CPU" in n for n in doc["notes"])


@pytest.mark.torch
def test_zero_learning_rate_fails_the_accuracy_gate():
    pytest.importorskip("torch")
    proc = run_bench("--quick", "--device", "cpu", "--parts", "convergence", "--lr", "0")
    assert proc.returncode == 1, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["status"] == "failed"
    assert "convergence.accuracy" in doc["failed_checks"]
    assert doc["convergence"]["passed"] is False
    assert doc["convergence"]["accuracy"] < 0.5
    assert doc["throughput"] == []


@pytest.mark.parametrize(
    "wanted, plan",
    [
        (None, [("fp32", False), ("tf32", True), ("bf16", True)]),  # one mixed precision
        (["fp16"], [("fp16", True)]),  # asked for by name: loss scaling on a bf16 GPU too
        (["fp32", "fp16", "bf16"], [("fp32", False), ("fp16", True), ("bf16", True)]),
    ],
)
def test_throughput_plan_on_a_gpu_with_bf16_and_fp16(monkeypatch, wanted, plan):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(bench, "tf32_available", lambda torch, device: True)
    monkeypatch.setattr(bench, "mixed_precision", lambda torch, device: "bf16")
    monkeypatch.setattr(bench, "fp16_usable", lambda torch, device: True)
    assert bench.throughput_plan(torch, "cuda", wanted) == plan


@pytest.mark.torch
def test_a_precision_that_cannot_run_here_is_noted_not_silently_dropped():
    pytest.importorskip("torch")
    proc = run_bench(
        "--device", "cpu", "--parts", "throughput", "--batches", "2", "--precisions", "fp16,fp32"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert [r["precision"] for r in doc["throughput"]] == ["fp32"]
    assert any(n.startswith("--precisions fp16: not usable") for n in doc["notes"]), doc["notes"]
    assert run_bench("--precisions", "fp8").returncode == 2


@pytest.mark.torch
def test_the_fp16_loss_scaling_step_trains(monkeypatch):
    # The GPU path of fp16 (autocast + GradScaler) with the CPU's own GradScaler and fp16
    # autocast, where this torch has them: scale, unscale-and-step, update, as on a GPU.
    torch = pytest.importorskip("torch")
    amp = getattr(torch, "amp", None)
    if amp is None or not hasattr(amp, "GradScaler"):
        pytest.skip("this torch has no device-generic GradScaler")
    try:
        with torch.autocast("cpu", dtype=torch.float16):
            pass
    except (RuntimeError, TypeError) as exc:
        pytest.skip(f"no fp16 autocast on this torch's CPU: {exc}")
    scalers = []

    class CountingScaler(amp.GradScaler):
        updates = 0

        def update(self, *args, **kwargs):
            self.updates += 1
            return super().update(*args, **kwargs)

    def cpu_scaler(torch):
        scalers.append(CountingScaler("cpu", init_scale=2.0**10))
        return scalers[-1]

    monkeypatch.setattr(bench, "make_grad_scaler", cpu_scaler)
    row = bench.measure_row(torch, "cpu", "fp16", True, 4, TINY_TIMING, 1, {})
    assert "error" not in row, row["error"]
    assert row["images_per_s"] > 0 and math.isfinite(row["final_loss"])
    # Every step went through the scaler: warm-up 1, calibration 2, two windows of 1.
    assert len(scalers) == 1 and scalers[0].updates == 5


@pytest.mark.torch
def test_demanding_cuda_without_gpu_exits_3():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = run_bench("--device", "cuda", "--parts", "convergence")
    assert proc.returncode == 3
    doc = json.loads(proc.stdout)
    assert doc["status"] == "no_gpu"
    assert doc["env"]["torch"]


def test_missing_data_is_a_named_failure(tmp_path):
    pytest.importorskip("torch")
    proc = run_bench("--parts", "convergence", "--data", str(tmp_path / "absent.csv.gz"))
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["status"] == "failed" and doc["failed_checks"] == ["crash"]
    assert "absent.csv.gz" in doc["error"] or "No such file" in doc["error"]


def test_bad_options_are_usage_errors():
    proc = run_bench("--parts", "speed")
    assert proc.returncode == 2
    assert "unknown part" in proc.stderr


# --- out-of-memory handling ------------------------------------------------------------------

TINY_TIMING = {"warmup": 1, "windows": 2, "window_s": 0.0, "min_steps": 1, "max_steps": 1}


@pytest.mark.torch
def test_out_of_memory_becomes_a_row_and_stops_that_precision(monkeypatch):
    # A real CUDA OOM needs a GPU; this machine has none, and a CPU allocation failure takes the
    # whole process down instead of raising. So the one function that runs a training step is
    # replaced by one that raises exactly what PyTorch raises on a CUDA OOM for batches above 2;
    # everything around it (the sweep, the catch, the clean-up, the report) is the real code.
    torch = pytest.importorskip("torch")
    real_step = bench.train_step

    def step_that_ooms(state, x, y):
        if x.size(0) > 2:
            raise RuntimeError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.11 GiB total "
                "capacity; 77.50 GiB already allocated)"
            )
        return real_step(state, x, y)

    monkeypatch.setattr(bench, "train_step", step_that_ooms)
    plan = [("fp32", False), ("fp32", True)]
    rows = []
    max_batch, macs = bench.run_throughput(torch, "cpu", [2, 4, 8], plan, TINY_TIMING, {}, rows)
    assert [(r["channels_last"], r["batch"], r["oom"]) for r in rows] == [
        (False, 2, False),
        (False, 4, True),  # reported, not raised; batch 8 is not attempted
        (True, 2, False),  # the next configuration still runs
        (True, 4, True),
    ]
    oom = rows[1]
    assert oom["images_per_s"] is None and "out of memory" in oom["error"]
    assert rows[0]["images_per_s"] > 0
    assert max_batch == {"fp32": 2}


@pytest.mark.torch
def test_after_an_out_of_memory_nothing_of_the_row_is_alive_when_the_cache_is_emptied(
    monkeypatch,
):
    # The next row (or precision) must start from an empty allocator: the model, its optimizer
    # (parameters, grads, momentum buffers) and the batch must all be unreachable when
    # release_memory runs. Weak references tell; gc is not needed for plain reference cycles
    # here, so anything alive is held by the row's own frame.
    import weakref

    torch = pytest.importorskip("torch")
    real_step = bench.train_step
    held = {}

    def step_that_ooms_after_a_step(state, x, y):
        real_step(state, x, y)  # grads and momentum buffers now exist
        held["weight"] = weakref.ref(next(state.model.parameters()))
        held["momentum"] = weakref.ref(
            state.optimizer.state[next(state.model.parameters())]["momentum_buffer"]
        )
        held["batch"] = weakref.ref(x)
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    alive_at_release = []

    def release_memory(torch, device):
        alive_at_release.append({k: ref() is not None for k, ref in held.items()})

    monkeypatch.setattr(bench, "train_step", step_that_ooms_after_a_step)
    monkeypatch.setattr(bench, "release_memory", release_memory)
    row = bench.measure_row(torch, "cpu", "fp32", False, 4, TINY_TIMING, 1, {})
    assert row["oom"] is True
    assert alive_at_release == [{"weight": False, "momentum": False, "batch": False}]


def _illegal_access_step(state, x, y):
    raise RuntimeError("CUDA error: an illegal memory access was encountered")


@pytest.mark.torch
def test_other_runtime_errors_are_not_swallowed(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(bench, "train_step", _illegal_access_step)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        bench.measure_row(torch, "cpu", "fp32", False, 2, TINY_TIMING, 1, {})


@pytest.mark.torch
def test_an_error_in_one_precision_keeps_earlier_rows_and_runs_the_next(monkeypatch):
    # e.g. a cuDNN EXECUTION_FAILED in the bf16 sweep must not erase the fp32 numbers.
    torch = pytest.importorskip("torch")
    real_step = bench.train_step

    def step_failing_channels_last(state, x, y):
        if x.is_contiguous(memory_format=torch.channels_last) and x.size(0) > 2:
            raise RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED")
        return real_step(state, x, y)

    monkeypatch.setattr(bench, "train_step", step_failing_channels_last)
    rows = []
    plan = [("fp32", True), ("fp32", False)]
    max_batch, _ = bench.run_throughput(torch, "cpu", [2, 4, 8], plan, TINY_TIMING, {}, rows)
    assert [(r["channels_last"], r["batch"], r["oom"]) for r in rows] == [
        (True, 2, False),
        (True, 4, False),  # the failed row, with its error; batch 8 not attempted
        (False, 2, False),
        (False, 4, False),
        (False, 8, False),
    ]
    assert "EXECUTION_FAILED" in rows[1]["error"] and rows[1]["images_per_s"] is None
    assert set(rows[1]) - {"error"} == set(rows[0]) - {"fused_sgd"}
    assert all(r["images_per_s"] > 0 for r in rows if not r.get("error"))
    assert all(r["seconds"] > 0 for r in rows if not r.get("error"))


@pytest.mark.torch
def test_a_crash_after_some_rows_still_reports_them(monkeypatch, capsys):
    pytest.importorskip("torch")
    calls = []
    real_row = bench.measure_row

    def row_then_crash(*args, **kwargs):
        calls.append(args)
        if len(calls) > 1:
            raise KeyboardInterrupt  # not an Exception: escapes run_throughput's catch
        return real_row(*args, **kwargs)

    monkeypatch.setattr(bench, "measure_row", row_then_crash)
    monkeypatch.setattr(bench, "default_timing", lambda device, quick: TINY_TIMING)
    report = bench.empty_report()
    args = bench.parse_args(["--device", "cpu", "--parts", "throughput", "--batches", "2,4"])
    with pytest.raises(KeyboardInterrupt):
        bench.run(args, report)
    assert [r["batch"] for r in report["throughput"]] == [2]


@pytest.mark.torch
def test_tf32_switches_round_trip_through_one_api():
    torch = pytest.importorskip("torch")
    switches = bench._tf32_switches(torch)
    assert len(switches) == 2
    before = [getattr(obj, attr) for obj, attr, _, _ in switches]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation of the API in use, no mixed-API error
        previous = bench.set_tf32(torch, True)
        assert [getattr(obj, attr) for obj, attr, _, _ in switches] == [s[2] for s in switches]
        bench.set_tf32(torch, False)
        assert [getattr(obj, attr) for obj, attr, _, _ in switches] == [s[3] for s in switches]
        bench.restore_tf32(torch, previous)
    assert [getattr(obj, attr) for obj, attr, _, _ in switches] == before


# --- FLOP counting, peaks, architecture, schedule --------------------------------------------


def _conv(cin, cout, k, out_hw):
    return cin * cout * k * k * out_hw * out_hw


@pytest.mark.torch
def test_resnet18_cifar_forward_macs_match_a_hand_count():
    pytest.importorskip("torch")
    # Summed by hand from the architecture: 3x3 stem at 32x32, then per stage two basic blocks
    # (two 3x3 convs each; the first block of stages 2-4 strides 2 and has a 1x1 projection).
    expected = _conv(3, 64, 3, 32)
    expected += 4 * _conv(64, 64, 3, 32)
    for cin, cout, hw in ((64, 128, 16), (128, 256, 8), (256, 512, 4)):
        expected += _conv(cin, cout, 3, hw) + 3 * _conv(cout, cout, 3, hw) + _conv(cin, cout, 1, hw)
    expected += 512 * 10
    assert expected == 555_422_720
    assert bench.count_macs(bench.build_resnet18(), (3, 32, 32)) == expected
    assert expected / 1e9 == pytest.approx(0.56, abs=0.01)  # the commonly quoted 0.56 GMACs


@pytest.mark.torch
def test_lenet_macs_and_shapes():
    torch = pytest.importorskip("torch")
    model = bench.build_lenet()
    expected = _conv(1, 6, 5, 28) + _conv(6, 16, 5, 10) + 400 * 120 + 120 * 84 + 84 * 10
    assert bench.count_macs(model, (1, 32, 32)) == expected
    assert model(torch.zeros(3, 1, 32, 32)).shape == (3, 10)


def test_peak_table_matches_word_boundaries_and_longest_name():
    assert bench.peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989
    assert bench.peak_tflops("NVIDIA H100 PCIe", "bf16") == 756
    assert bench.peak_tflops("NVIDIA A100-SXM4-80GB", "tf32") == 156
    assert bench.peak_tflops("NVIDIA A10", "fp16") == 125
    assert bench.peak_tflops("NVIDIA A10G", "fp16") is None  # not claimed by "NVIDIA A10"
    assert bench.peak_tflops("Tesla T4", "bf16") is None
    assert bench.peak_tflops("Some Future GPU", "bf16") is None
    assert bench.peak_tflops("NVIDIA H200 NVL", "bf16") is None  # not the SXM part's peak
    assert bench.peak_tflops("NVIDIA H200", "bf16") == 989
    assert bench.peak_tflops(None, "fp32") is None


def test_peak_table_agrees_with_gpus_yaml():
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load((REPO / "envkit" / "data" / "gpus.yaml").read_text())
    for gpu in data["gpus"]:
        for sub in gpu["match"]:
            for precision, peak in gpu["peak_tflops"].items():
                assert bench.peak_tflops(sub, precision) == peak, (gpu["name"], sub, precision)


def test_peak_override_parsing():
    assert bench.parse_peak_override("400") == dict.fromkeys(
        ("fp32", "tf32", "bf16", "fp16"), 400.0
    )
    assert bench.parse_peak_override("bf16=989, fp32=67") == {"bf16": 989.0, "fp32": 67.0}
    assert bench.parse_peak_override(None) == {}
    with pytest.raises(ValueError):
        bench.parse_peak_override("fast")


@pytest.mark.parametrize(
    "capability,arch_list,expected",
    [
        ((9, 0), ["sm_80", "sm_90"], True),
        ((8, 6), ["sm_80"], True),  # same major, newer minor: the sm_80 cubin runs
        ((8, 0), ["sm_86"], False),  # older minor cannot run newer code
        ((12, 0), ["sm_80", "sm_90", "compute_90"], True),  # PTX is JIT-compiled forward
        ((12, 0), ["sm_50", "sm_80", "sm_90"], False),
        ((9, 0), ["sm_90a"], True),
        ((10, 0), ["sm_90a"], False),  # arch-specific code is not forward compatible
        ((3, 7), ["sm_50", "sm_60", "compute_60"], False),
    ],
)
def test_arch_support(capability, arch_list, expected):
    supported, reason = bench.arch_supported(capability, arch_list)
    assert supported is expected
    if not expected:
        assert "sm_{}{}".format(*capability) in reason


def test_arch_support_unknown_without_list():
    assert bench.arch_supported((9, 0), [])[0] is None


def test_kernel_preflight_passes_where_every_library_runs():
    torch = pytest.importorskip("torch")
    assert bench.device_runs_kernels(torch, "cpu") is None


@pytest.mark.parametrize(
    "op, error, what",
    [
        # torch 1.4 on sm_90: its own kernels JIT from PTX, the linked-in cuBLAS has no code.
        ("mm", "CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasSgemm`", "matmul"),
        # torch 1.x's THC wording of the same failure (pytorch/pytorch#16034).
        (
            "mm",
            "cublas runtime error : the GPU program failed to execute at THCBlas.cu:258",
            "matmul",
        ),
        ("conv2d", "cuDNN error: CUDNN_STATUS_EXECUTION_FAILED", "convolution"),
    ],
)
def test_kernel_preflight_names_the_library_without_code_for_the_gpu(monkeypatch, op, error, what):
    torch = pytest.importorskip("torch")

    def fails(*args, **kwargs):
        raise RuntimeError(error)

    monkeypatch.setattr(torch.nn.functional if op == "conv2d" else torch, op, fails)
    reason = bench.device_runs_kernels(torch, "cpu")
    assert what in reason and error.split(":")[0] in reason


def test_kernel_preflight_raises_errors_that_say_nothing_of_the_architecture(monkeypatch):
    torch = pytest.importorskip("torch")

    def fails(*args, **kwargs):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(torch, "mm", fails)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        bench.device_runs_kernels(torch, "cpu")


def test_learning_rate_schedule_warms_up_then_decays_to_zero():
    lrs = [bench.lr_at(s, 100, 10, 0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[9] == pytest.approx(0.1)
    assert all(a < b for a, b in zip(lrs[:9], lrs[1:10]))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] < 0.001
    assert bench.lr_at(100, 100, 10, 0.1) == pytest.approx(0.0)


def test_summarise_windows():
    med, spread = bench.summarise_windows([90.0, 100.0, 110.0])
    assert med == 100.0 and spread == pytest.approx(0.2)


@pytest.mark.torch
def test_random_shift_moves_whole_images_within_the_padding():
    torch = pytest.importorskip("torch")
    images = torch.zeros(16, 1, 32, 32)
    images[:, 0, 14:18, 14:18] = 1.0
    gen = torch.Generator()
    gen.manual_seed(0)
    shifted = bench.random_shift(torch, images, 3, gen)
    assert shifted.shape == images.shape
    assert torch.equal(shifted.sum(dim=(1, 2, 3)), images.sum(dim=(1, 2, 3)))  # nothing cut off
    offsets = set()
    for img in shifted[:, 0]:
        ys, xs = img.nonzero(as_tuple=True)
        offsets.add((int(ys.min()) - 14, int(xs.min()) - 14))
    assert all(abs(dy) <= 3 and abs(dx) <= 3 for dy, dx in offsets)
    assert len(offsets) > 1
    assert torch.equal(bench.random_shift(torch, images, 0, gen), images)


def test_weight_decay_skips_norm_and_bias_parameters():
    pytest.importorskip("torch")
    model = bench.build_lenet()
    decay, no_decay = bench.param_groups(model, 5e-4)
    assert all(p.dim() > 1 for p in decay["params"]) and decay["weight_decay"] == 5e-4
    assert all(p.dim() == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_bundled_data_is_the_full_digits_set():
    data = bench.find_data()
    assert Path(data).name == "digits.csv.gz"
    rows = bench.read_digits(data)
    assert len(rows) == 1797
    assert sorted({label for _, label in rows}) == list(range(10))
    assert all(len(p) == 64 and 0 <= min(p) and max(p) <= 16 for p, _ in rows)


# --- the reference loop ----------------------------------------------------------------------


@pytest.mark.torch
def test_reference_script_runs_and_reports_a_ratio():
    pytest.importorskip("torch")
    proc = subprocess.run(
        [
            sys.executable,
            str(REFERENCE),
            "--device",
            "cpu",
            "--batch",
            "4",
            "--steps",
            "1",
            "--windows",
            "2",
            "--rounds",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if proc.returncode == 1 and '"unsupported"' in proc.stdout:
        pytest.skip("this CPU torch has no mixed precision")
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)
    assert doc["same_workload"] is True
    assert doc["forward_macs_per_image"] == 555_422_720
    assert doc["reference"]["images_per_s"] > 0
    assert doc["bench"]["images_per_s"] > 0
    assert doc["ratio"] == pytest.approx(
        doc["bench"]["images_per_s"] / doc["reference"]["images_per_s"], rel=1e-3
    )


def test_the_bench_peak_table_mirrors_gpus_yaml():
    # bench.py carries its own copy (it runs without PyYAML); the two must not drift apart.
    facts = pytest.importorskip("envkit.facts")
    assert len(bench.PEAK_TFLOPS) == len(facts.gpu_models())
    for matches, peaks in bench.PEAK_TFLOPS:
        for name in matches:
            model = facts.gpu_model_for(name)
            assert model is not None, name
            assert model.peak_tflops == {
                k: (None if v is None else float(v)) for k, v in peaks.items()
            }, name


def test_the_bench_arch_rule_agrees_with_facts():
    # bench.py cannot import envkit.facts, so it carries the same CUDA compatibility rules.
    facts = pytest.importorskip("envkit.facts")
    arches = [
        f"{kind}_{cc}{suffix}"
        for kind in ("sm", "compute")
        for cc in ("37", "50", "80", "86", "90", "100", "103", "120")
        for suffix in ("", "a", "f")
    ]
    capabilities = ["3.7", "5.2", "8.0", "8.6", "8.9", "9.0", "10.0", "10.3", "12.0", "12.1"]
    for arch in arches:
        for cap in capabilities:
            major, minor = cap.split(".")
            got = bench.arch_supported((int(major), int(minor)), [arch])[0]
            assert got is facts.kernel_supports([arch], cap), (arch, cap)


@pytest.mark.torch
def test_a_poisoned_device_stops_the_whole_sweep(monkeypatch):
    # After a sticky CUDA error every later row would fail the same way; the stand-in for the
    # device check is needed because a CPU cannot be put in that state.
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(bench, "train_step", _illegal_access_step)
    monkeypatch.setattr(bench, "device_broken", lambda torch, device: "AcceleratorError: same")
    rows = []
    plan = [("fp32", False), ("fp32", True)]
    bench.run_throughput(torch, "cpu", [2, 4], plan, TINY_TIMING, {}, rows)
    assert len(rows) == 1
    assert "illegal memory access" in rows[0]["error"]
    assert "unusable afterwards: AcceleratorError: same" in rows[0]["error"]


@pytest.mark.torch
def test_a_working_device_is_not_reported_broken():
    torch = pytest.importorskip("torch")
    assert bench.device_broken(torch, "cpu") is None


def _fake_backends(**matmul_attrs):
    import types

    return types.SimpleNamespace(
        backends=types.SimpleNamespace(
            cuda=types.SimpleNamespace(matmul=types.SimpleNamespace(**matmul_attrs)),
            cudnn=types.SimpleNamespace(**({"allow_tf32": True} if matmul_attrs else {})),
        )
    )


def test_tf32_uses_the_old_flags_on_torch_1_7_to_2_8():
    torch = _fake_backends(allow_tf32=False)
    previous = bench.set_tf32(torch, True)
    assert torch.backends.cuda.matmul.allow_tf32 is True and torch.backends.cudnn.allow_tf32
    bench.restore_tf32(torch, previous)
    assert torch.backends.cuda.matmul.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 is True


def test_tf32_is_left_alone_where_torch_has_no_switch():
    torch = _fake_backends()  # torch < 1.7: no TF32 (and no Ampere support) at all
    assert bench.set_tf32(torch, True) == []
    assert not hasattr(torch.backends.cuda.matmul, "allow_tf32")


@pytest.mark.torch
def test_gpu_cpu_step_tolerances_pass_healthy_fp32_and_catch_tf32():
    # The tolerances' claim, re-measured: a correct fp32 step sits far inside them (two correct
    # implementations differ by at most about twice their distance from the fp64 step), and
    # TF32 rounding of the conv/linear operands, what a GPU with TF32 on computes, falls outside.
    pytest.importorskip("torch")
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gpu_cpu_tolerance", REPO / "scripts" / "gpu_cpu_tolerance.py"
    )
    tolerance = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tolerance)
    for seed in range(3):
        loss_diff, param_diff = tolerance.step_differences(seed, "fp64")
        assert 2 * loss_diff < bench.GPU_CPU_LOSS_TOL / 10
        assert 2 * param_diff < bench.GPU_CPU_PARAM_TOL / 10
        _, tf32_param_diff = tolerance.step_differences(seed, "tf32")
        assert tf32_param_diff > bench.GPU_CPU_PARAM_TOL
