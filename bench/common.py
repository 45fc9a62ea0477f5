"""Shared helpers for the benchmarks: machine description, timing, tables and JSON.

Every benchmark prints a markdown table and writes ``bench/results/<name>.json`` with the
machine, the versions, the median of at least 3 timed runs after a warm-up, and the first
(compile-including) run reported separately.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    import jax

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
    }
    for name in ("optax", "numpy", "torch"):
        try:
            info[name] = __import__(name).__version__
        except ImportError:
            info[name] = None
    torch = import_torch()
    if torch is not None:
        info["torch_device"] = torch_device(torch)
        if info["torch_device"] == "cuda":
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def timed(fn, *, repeats: int = 3) -> dict:
    """First call (compile included) timed alone, then the median of ``repeats`` calls."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    median = statistics.median(runs)
    return {
        "first_s": first,
        "median_s": median,
        "runs_s": runs,
        "compile_s": max(0.0, first - median),
    }


def scaled(timing: dict, factor: float) -> dict:
    """A timing measured on a 1/factor share of the work, scaled to the whole."""
    out = dict(timing)
    out["median_s"] = timing["median_s"] * factor
    out["first_s"] = timing["compile_s"] + out["median_s"]  # compiling happens once
    out["runs_s"] = [r * factor for r in timing["runs_s"]]
    out["scaled_by"] = factor
    return out


def skipped(reason: str) -> dict:
    return {"skipped": reason}


def table(rows: list[dict], columns: list[tuple[str, str]]) -> str:
    """A markdown table; ``columns`` is (key, header)."""
    head = "| " + " | ".join(h for _, h in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    lines = [head, rule]
    for row in rows:
        cells = []
        for key, _ in columns:
            value = row.get(key, "")
            cells.append(f"{value:.3g}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def start_backend() -> None:
    """Start JAX's backend before any row is timed. On a GPU this takes a second or two
    (CUDA's context) that the first row would otherwise pay alone; a user's process pays
    it once, before or during its first call (bench/first_call.py measures that call)."""
    import jax
    import jax.numpy as jnp

    jax.block_until_ready(jnp.zeros(()) + 1)


def results_path(name: str, *, quick: bool) -> Path:
    import jax

    if jax.default_backend() != "cpu":  # e.g. sweep-gpu.json beside the CPU's sweep.json
        name = f"{name}-{jax.default_backend()}"
    return RESULTS / (f"{name}-quick.json" if quick else f"{name}.json")


def write(name: str, payload: dict, *, quick: bool) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = results_path(name, quick=quick)
    payload = {
        "benchmark": name,
        "quick": quick,
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=1))
    return path


def timed_sweep(space, data, config) -> tuple[dict, np.ndarray]:
    """:func:`timed` for one jaxhp sweep; also returns each member's final dev accuracy."""
    import jaxhp

    out = {}

    def run():
        out["results"] = jaxhp.run_sweep(space, data, config, progress=False)

    timing = timed(run)
    return timing, np.asarray(out["results"].history.dev_accuracy[:, -1])


def import_torch():
    """torch, or None where it is not installed (the torch rows are then skipped)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_device(torch) -> str:
    """Where the PyTorch peers run: on the GPU where JAX runs on one and torch sees it.
    Each tensor is placed explicitly: torch.set_default_device would add a Python-level
    dispatch to every torch call of the launch-bound sequential rows."""
    import jax

    return "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"


def accuracy_agreement(a: np.ndarray, b: np.ndarray, n_dev: int) -> dict:
    """Do two rows train the same models? Members differ only through their random draws,
    so per-member dev accuracies should agree within binomial noise: the mean over members
    within 3 standard errors of the mean difference."""
    diff = a - b
    p = np.clip((a + b) / 2, 1e-3, 1 - 1e-3)
    per_member_se = np.sqrt(2 * p * (1 - p) / n_dev)
    mean_se = np.sqrt(np.sum(per_member_se**2)) / len(a)
    return {
        "mean_jaxhp": float(a.mean()),
        "mean_peer": float(b.mean()),
        "mean_abs_diff": float(np.abs(diff).mean()),
        "max_abs_diff": float(np.abs(diff).max()),
        "agree": bool(abs(diff.mean()) <= 3 * mean_se + 0.005),
    }
