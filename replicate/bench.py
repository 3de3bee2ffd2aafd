"""Benchmark of the hot paths: exact nearest-code search, one atomic-setting training step of each quantizer,
and a whole-set (E, U, C) evaluation, each against the naive full-matrix reference timed in the same run.

  python -m replicate bench                 # a table
  python -m replicate bench --json          # one JSON object per line: name, method, K, N, d, seconds_per_step, peak_mb
  python -m replicate bench --train         # tokenizer training throughput instead
  python -m replicate bench --sample        # sampling time of the cpu-scale generators instead
  python -m replicate bench --paper-timing  # the Wasserstein VQ revision's timing table, beside its seconds

--paper-timing times what the later revision of Wasserstein VQ (arXiv 2506.15078) times in its table "The
computational overhead of various VQ approaches": the total seconds of 100 forward and backward passes of each
method's VQ module, N = 8,192 features, d = 8, K = 16,384 / 50,000 / 100,000; the published seconds are read from
data/published/wvq_timing.csv. They were measured on the authors' GPU (not named), ours on this machine: only the
ratios between methods compare.

Peak memory is the rise of the process's peak resident set (CPU; reset through /proc/self/clear_refs) or of
torch's peak allocation (CUDA) above the level before the call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch

from replicate.errors import ConfigError
from replicate.metrics.codebook import evaluate_codebook
from replicate.quantize import PAPER_METHODS, QUANTIZERS, nearest_code

DEFAULT_K, DEFAULT_N = "1024,16384,100000", 50_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--K", help=f"codebook sizes, comma-separated (default {DEFAULT_K}; with --paper-timing the published ones)"
    )
    parser.add_argument(
        "--N", type=int, help=f"feature vectors per step (default {DEFAULT_N:,}; with --paper-timing the paper's 8,192)"
    )
    parser.add_argument("--d", type=int, default=8, help="dimension")
    parser.add_argument(  # MMD's K x K kernel does not fit the default K: time it with --methods mmd at a lower K
        "--methods", help="quantizers to time, comma-separated (default: the paper's five; --paper-timing: its table's)"
    )
    parser.add_argument("--eval-N", type=int, default=200_000, help="vectors in the (E, U, C) evaluation case")
    parser.add_argument("--repeats", type=int, default=5, help="timed repetitions (median reported)")
    parser.add_argument(
        "--naive-limit-gb",
        type=float,
        default=8.0,
        help="skip a naive reference whose N x K distance matrix would exceed this",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--train",
        action="store_true",
        help="instead: training throughput of the 32 px and 256 px VQ-VAEs (images/s, peak memory)",
    )
    parser.add_argument("--batch", default="128,32", help="with --train: batch sizes for 32 px and 256 px")
    parser.add_argument(
        "--sample",
        type=int,
        default=0,
        metavar="IMAGES",
        help="instead: seconds to sample this many images with the cpu-scale MaskGIT and VAR (untrained, K = 8192)",
    )
    parser.add_argument(
        "--paper-timing",
        action="store_true",
        help="instead: seconds of --iterations forward+backward passes of each VQ module, beside the published ones",
    )
    parser.add_argument("--iterations", type=int, default=100, help="with --paper-timing: passes timed (paper: 100)")
    parser.add_argument(
        "--variants",
        action="store_true",
        help="with --train: also the cpu-scale model under bf16 autocast, channels-last and torch.compile",
    )


def main(args: argparse.Namespace) -> int:
    if args.paper_timing:
        return paper_timing(args)
    sizes = _integers(args.K or DEFAULT_K)
    methods = _methods(args.methods or ",".join(PAPER_METHODS))
    N = DEFAULT_N if args.N is None else args.N
    if min([*sizes, N, args.d, args.eval_N, args.repeats]) < 1:
        raise ConfigError("K, N, d, eval-N and repeats must all be >= 1")
    device = torch.device(args.device)
    emit = _json_line if args.json else _table_line

    def report(name: str, method: str, K: int, N: int, call: Callable[[], object], skip: str = "") -> None:
        emit(
            {"name": name, "method": method, "K": K, "N": N, "d": args.d, **_measure(call, args.repeats, device, skip)}
        )

    if args.sample:
        if not args.json:
            print(f"device: {device} ({torch.get_num_threads()} CPU threads); N = images sampled, a step = all N")
            print(f"{'name':<22}{'method':<13}{'K':>8}{'s/step':>11}{'vectors/s':>13}{'peak MB':>10}  note")
        for generator in ("maskgit", "var"):
            report(f"sample/{generator}", "-", 8192, args.sample, _sampling_runner(generator, args.sample, device))
        return 0
    if args.train:
        batches = [int(b) for b in args.batch.split(",")]
        if not args.json:
            print(
                f"device: {device} ({torch.get_num_threads()} CPU threads); N = images per step, vectors/s = images/s"
            )
            print(f"{'name':<22}{'method':<13}{'K':>8}{'s/step':>11}{'vectors/s':>13}{'peak MB':>10}  note")
        for (resolution, K), batch in zip(((32, 8192), (256, 16384)), batches, strict=True):
            report(f"train/{resolution}px", "wasserstein", K, batch, _training_runner(resolution, K, batch, device))
        if args.variants:
            for name, options in CPU_SCALE_VARIANTS.items():
                runner = _training_runner(32, 8192, batches[0], device, channels=32, **options)
                report(f"train/32px ch32 {name}", "wasserstein", 8192, batches[0], runner)
        return 0
    if not args.json:
        print(f"device: {device} ({torch.get_num_threads()} CPU threads), N={N}, d={args.d}")
        print(f"{'name':<22}{'method':<13}{'K':>8}{'s/step':>11}{'vectors/s':>13}{'peak MB':>10}  note")
    for K in sizes:
        naive_gb = N * K * 4 / 2**30
        too_big = naive_gb > args.naive_limit_gb
        skip = {"auto": "", "naive": f"skipped: N x K matrix {naive_gb:.1f} GB > {args.naive_limit_gb:g} GB" * too_big}
        features, codes = torch.randn(N, args.d, device=device), torch.randn(K, args.d, device=device)
        for backend, label in (("auto", "fast"), ("naive", "naive")):
            report(f"search/{label}", "-", K, N, _search_runner(features, codes, backend), skip[backend])
        for method in methods:
            for backend, label in (("auto", "fast"), ("naive", "naive")):
                step = _step_runner(method, K, N, args.d, backend, device)
                report(f"step/{label}", method, K, N, step, skip[backend])
    eval_K = 16384
    features, codes = torch.randn(args.eval_N, args.d, device=device), torch.randn(eval_K, args.d, device=device)
    report("evaluate_EUC", "-", eval_K, args.eval_N, lambda: evaluate_codebook(features, codes))
    return 0


def _integers(text: str) -> list[int]:
    return [int(k) for k in str(text).split(",") if k]


def _methods(text: str) -> list[str]:
    methods = [m for m in text.split(",") if m]
    for method in methods:
        if method not in QUANTIZERS:
            raise ConfigError(f"unknown method {method!r}; valid: {', '.join(QUANTIZERS)}")
    return methods


PAPER_TIMING = "wvq_timing.csv"  # data/published: the revision's timing table, one row per (method, K)
TIMING_KEYS = ("method", "K", "d", "N")


def published_timing() -> pd.DataFrame:
    """The revision's published seconds (data/published/wvq_timing.csv), checked as every published file is."""
    from replicate.report.compare import PUBLISHED_COLUMNS
    from replicate.results import PUBLISHED, ResultFileError, read_table, recovery

    path = PUBLISHED / PAPER_TIMING
    required = (*PUBLISHED_COLUMNS, *TIMING_KEYS)
    table = read_table(path, "published data file", required, numeric=("value", "K", "d", "N"), recomputed=False)
    if table is None:
        raise ResultFileError(f"published data file {path} is missing; {recovery(path, recomputed=False)}")
    return table


def paper_timing(args: argparse.Namespace) -> int:
    """The revision's timing table: per K and method, the seconds of `iterations` forward+backward passes of the
    VQ module, beside the published seconds (where the paper has the same method, K, d and N) and, both, as a
    ratio to Vanilla VQ's at the same K: the one comparison across machines."""
    published = published_timing()
    methods = _methods(args.methods or ",".join(dict.fromkeys(published["method"])))
    sizes = _integers(args.K) if args.K else sorted({int(k) for k in published["K"]})
    N = int(published["N"].iloc[0]) if args.N is None else args.N
    if min([*sizes, N, args.d, args.iterations]) < 1:
        raise ConfigError("K, N, d and iterations must all be >= 1")
    device = torch.device(args.device)
    threads = f"{torch.get_num_threads()} threads"
    ours = torch.cuda.get_device_name(device) if device.type == "cuda" else f"this machine's cpu ({threads})"
    if not args.json:
        print(f"seconds for {args.iterations} forward+backward passes of the VQ module, N = {N}, d = {args.d}")
        print(f"published: the authors' GPU (not named); ours: {ours}. Seconds do not compare across machines;")
        print("ratios between methods do (x vanilla: the method's seconds over Vanilla VQ's at the same K)")
        print(
            f"{'method':<13}{'K':>8}{'ours s':>10}{'published s':>13}{'ours x vanilla':>16}{'published x vanilla':>21}"
        )
    for K in sizes:
        rows = []
        for method in methods:
            seconds = _total_seconds(_vq_module_runner(method, K, N, args.d, device), args.iterations, device)
            match = published
            for key, value in zip(TIMING_KEYS, (method, K, args.d, N), strict=True):
                match = match[match[key] == value]
            value = float(match["value"].iloc[0]) if len(match) else None
            rows.append({"method": method, "K": K, "N": N, "d": args.d, "seconds": seconds, "published_seconds": value})
        vanilla = next((row for row in rows if row["method"] == "vanilla"), None)
        for row in rows:
            _timing_line(row | {"iterations": args.iterations, "device": ours}, vanilla, args.json)
    return 0


def _vq_module_runner(method: str, K: int, N: int, d: int, device: torch.device) -> Callable[[], object]:
    """One forward and backward pass of the method's VQ-VAE quantizer (official settings: the Wasserstein queue of
    65,536 features among them) on features that take a gradient, as an encoder's, with its codebook update (EMA
    averages, Online re-seeding), which the official modules run inside forward; no optimizer step."""
    from replicate.quantize import build_quantizer, quantizer_config

    torch.manual_seed(0)
    quantizer = build_quantizer(quantizer_config(method, K, d)).to(device).train()
    features = torch.randn(N, d, device=device, requires_grad=True)

    def step() -> None:
        out = quantizer(features)
        out.loss.backward()
        quantizer.update(features.detach(), out)
        features.grad = None
        quantizer.zero_grad(set_to_none=True)

    return step


def _total_seconds(call: Callable[[], object], iterations: int, device: torch.device) -> float:
    """Wall seconds of `iterations` calls in a row, after one untimed warm-up call: one total, as the paper's."""
    call()
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(iterations):
        call()
    _synchronize(device)
    return time.perf_counter() - started


def _timing_line(row: dict, vanilla: dict | None, as_json: bool) -> None:
    def ratio(key: str) -> float | None:
        return row[key] / vanilla[key] if vanilla and row[key] is not None and vanilla[key] else None

    row |= {"seconds_x_vanilla": ratio("seconds"), "published_x_vanilla": ratio("published_seconds")}
    if as_json:
        print(json.dumps({"name": "paper_timing", **row}), flush=True)
        return

    def cell(value: float | None, width: int, digits: int) -> str:
        return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"

    print(
        f"{row['method']:<13}{row['K']:>8}{cell(row['seconds'], 10, 3)}{cell(row['published_seconds'], 13, 3)}"
        f"{cell(row['seconds_x_vanilla'], 16, 2)}{cell(row['published_x_vanilla'], 21, 2)}",
        flush=True,
    )


def _search_runner(features: torch.Tensor, codes: torch.Tensor, backend: str) -> Callable[[], object]:
    return lambda: nearest_code(features, codes, backend=backend)


def _training_runner(
    resolution: int,
    K: int,
    batch: int,
    device: torch.device,
    *,
    channels: int = 64,
    precision: str = "fp32",
    channels_last: bool = False,
    compiled: bool = False,
) -> Callable[[], object]:
    """One optimisation step of the paper's VQ-VAE (Table 5) with Wasserstein VQ on random images; optionally
    bf16 autocast (encoder and decoder), channels-last tensors, or torch.compile of encoder and decoder."""
    from replicate.configs import TokenizerTraining, VQVAEConfig
    from replicate.train.gan import Objective
    from replicate.train.tokenizer import build_model, build_optimizer, train_step

    torch.manual_seed(0)
    model_config = VQVAEConfig(resolution, channels=channels)
    training = TokenizerTraining("folder", "wasserstein", K, model_config, batch_size=batch, precision=precision)
    model = build_model(training).to(device).train()
    images = torch.rand(batch, 3, resolution, resolution, device=device) * 2 - 1
    if channels_last:
        model, images = (
            model.to(memory_format=torch.channels_last),
            images.contiguous(memory_format=torch.channels_last),
        )
    if compiled:
        model.encoder, model.decoder = torch.compile(model.encoder), torch.compile(model.decoder)
    optimizer = build_optimizer(model, training)
    objective = Objective(training.gan)
    return lambda: train_step(model, model, optimizer, images, training, 0, True, objective, epoch=1)


def _sampling_runner(generator: str, images: int, device: torch.device) -> Callable[[], object]:
    """Sampling `images` with the cpu-scale generator of dq_generation (experiments/generation.py: size, scales and
    the sampling defaults of the model's module), untrained: the cost does not depend on the weights."""
    from replicate.experiments.generation import cpu_arm
    from replicate.models import maskgit, var
    from replicate.train.generator import build_generator
    from replicate.train.tokenizer import build_model

    torch.manual_seed(0)
    config = cpu_arm("cifar10-lossless", generator, "early")  # the model sizes of the run, one definition
    model = build_generator(config, 10).to(device)
    labels = torch.arange(images, device=device) % 10
    seed = torch.Generator(device=device).manual_seed(0)
    if generator == "maskgit":
        return lambda: maskgit.sample(model, labels, config.sampling_config(), seed)
    quantizer = build_model(config.tokenizer).quantizer.to(device).eval()  # untrained, as the generator
    return lambda: var.sample(model, quantizer, labels, config.sampling_config(), seed)


CPU_SCALE_VARIANTS = {  # the cpu-scale Table 6 model (32 px, ch 32, K = 8192, batch 128) under each speed option
    "fp32": {},
    "bf16": {"precision": "bf16"},
    "fp32+channels_last": {"channels_last": True},
    "bf16+channels_last": {"precision": "bf16", "channels_last": True},
    "fp32+compile": {"compiled": True},
}


def _step_runner(method: str, K: int, N: int, d: int, backend: str, device: torch.device) -> Callable[[], object]:
    from replicate.train.atomic import atomic_quantizer, atomic_step  # training code: only when `bench` runs

    torch.manual_seed(0)
    quantizer, optimizer = atomic_quantizer(method, K, d, init="normal", init_scale=1.0, device=device)
    quantizer.search_backend = backend
    return lambda: atomic_step(quantizer, optimizer, torch.randn(N, d, device=device) + 1.0)


def _measure(call: Callable[[], object], repeats: int, device: torch.device, skip: str) -> dict:
    if skip:
        return {"seconds_per_step": None, "peak_mb": None, "note": skip}
    call()  # warm-up: allocator, faiss and BLAS initialisation
    _reset_peak(device)
    baseline = _current_mb(device)
    times = []
    for _ in range(repeats):
        _synchronize(device)
        started = time.perf_counter()
        call()
        _synchronize(device)
        times.append(time.perf_counter() - started)
    peak = _peak_mb(device)
    seconds = statistics.median(times)
    return {
        "seconds_per_step": seconds,
        "peak_mb": None if peak is None else max(0.0, peak - baseline),
        "note": "",
    }


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise OSError(field)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak RSS to the current RSS
    except OSError:
        pass


def _current_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    try:
        return _status_mb("VmRSS")
    except OSError:
        return 0.0


def _peak_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        return _status_mb("VmHWM")
    except OSError:
        return None


def _json_line(record: dict) -> None:
    print(
        json.dumps(
            {k: record[k] for k in ("name", "method", "K", "N", "d", "seconds_per_step", "peak_mb")}
            | ({"note": record["note"]} if record["note"] else {})
        ),
        flush=True,
    )


def _table_line(record: dict) -> None:
    seconds = record["seconds_per_step"]
    rate = f"{record['N'] / seconds:>13.3g}" if seconds else f"{'-':>13}"
    peak = f"{record['peak_mb']:>10.0f}" if record["peak_mb"] is not None else f"{'-':>10}"
    timing = f"{seconds:>11.4f}" if seconds else f"{'-':>11}"
    print(
        f"{record['name']:<22}{record['method']:<13}{record['K']:>8}{timing}{rate}{peak}  {record['note']}",
        flush=True,
    )
