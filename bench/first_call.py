"""B1's first call as a user meets it: a fresh process, a plain ``import jaxhp``, one sweep.

Issue #15's targets for this row: the first call, compilation included, is at least 10x
the plain JAX sequential loop's first pass (cold cache), and at least 15x with the
persistent compilation cache warm (a second process that finds the program on disk).

Each measurement is its own Python process, so nothing is shared but the disk cache:
- "cold": ``jaxhp.enable_compilation_cache(DIR)`` on an empty DIR, then ``run_sweep``;
- "warm": a second process on the same DIR;
- "plain": the peer of bench/sweep.py (one ``jit(lax.scan)`` per config, compiled once,
  looped in Python), its first pass over the 64 configs.
The three alternate, ``--repeats`` times. jaxhp's rows split the first call into tracing,
lowering and XLA (on a warm cache XLA's share is loading the executable), from
``jaxhp.cache.compile_stats``. Nothing calls ``use_cpu_cores``: the import's default does.

Run: python bench/first_call.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import table, write

HERE = Path(__file__).resolve().parent


def child_jaxhp(quick: bool, cache: str) -> dict:
    started = time.perf_counter()
    import jaxhp
    from jaxhp.cache import compile_stats

    imported = time.perf_counter() - started
    import sweep as bench_sweep  # bench/sweep.py: B1's workload

    jaxhp.enable_compilation_cache(cache)
    w = bench_sweep.b1_workload(quick)
    config = jaxhp.TrainConfig(
        layer_sizes=w["sizes"], steps=w["steps"], batch_size=w["batch"], eval_every=w["steps"]
    )
    members = [
        {"lambd": lam, "keep_prob": kp, "learning_rate": lr, "seed": i}
        for i, (lam, kp, lr) in enumerate(w["configs"])
    ]
    with compile_stats() as compiled:
        start = time.perf_counter()
        results = jaxhp.run_sweep(jaxhp.sweep.Space(members), w["data"], config, progress=False)
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "import_s": imported,
        "trace_s": compiled.trace_s,
        "lower_s": compiled.lower_s,
        "xla_s": compiled.compile_s,
        "cache_hits": compiled.cache_hits,
        "cache_misses": compiled.cache_misses,
        "devices": len(__import__("jax").devices()),
        "mean_dev_accuracy": float(results.history.dev_accuracy[:, -1].mean()),
    }


def child_plain(quick: bool) -> dict:
    import jax
    from sweep import _plain_jax_trainer, b1_workload

    w = b1_workload(quick)
    train, *_ = _plain_jax_trainer(w)
    start = time.perf_counter()
    for i, (lam, kp, lr) in enumerate(w["configs"]):
        float(train(jax.random.key(i), lam, kp, lr))
    return {"seconds": time.perf_counter() - start}


def measure(role: str, quick: bool, cache: str | None = None) -> dict:
    """One fresh process; its JSON line."""
    argv = [sys.executable, __file__, "--child", role] + ["--quick"] * quick
    argv += ["--cache", cache] if cache else []
    done = subprocess.run(argv, cwd=HERE, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"{role} process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median_row(name: str, runs: list[dict], plain_s: float) -> dict:
    row = {"row": name, "runs": runs}
    for key in runs[0]:
        if isinstance(runs[0][key], float):
            row[key] = statistics.median(r[key] for r in runs)
    row["cache_hits"], row["cache_misses"] = runs[-1]["cache_hits"], runs[-1]["cache_misses"]
    row["x_plain"] = plain_s / row["seconds"]
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny sizes (for tests)")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default 3; 1 quick)")
    parser.add_argument("--child", choices=["jaxhp", "plain"], help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "jaxhp":
        print(json.dumps(child_jaxhp(args.quick, args.cache)))
        return
    if args.child == "plain":
        print(json.dumps(child_plain(args.quick)))
        return
    import jaxhp  # noqa: F401  (so that the results' machine record lists the jaxhp devices)

    repeats = args.repeats or (1 if args.quick else 3)
    if repeats < 1:
        parser.error(f"--repeats must be at least 1, got {repeats}")
    cold, warm, plain = [], [], []
    for _ in range(repeats):  # alternating, so that drifts in the machine's speed spread
        with tempfile.TemporaryDirectory(prefix="jaxhp-first-call-") as cache:
            cold.append(measure("jaxhp", args.quick, cache))
            warm.append(measure("jaxhp", args.quick, cache))
        plain.append(measure("plain", args.quick))
    plain_s = statistics.median(r["seconds"] for r in plain)
    rows = [
        _median_row("jaxhp, cold cache", cold, plain_s),
        _median_row("jaxhp, warm cache (second process)", warm, plain_s),
        {"row": "plain JAX sequential jit(scan), first pass", "seconds": plain_s, "runs": plain},
    ]
    columns = [
        ("row", "row"),
        ("seconds", "first call (s)"),
        ("trace_s", "tracing (s)"),
        ("lower_s", "lowering (s)"),
        ("xla_s", "XLA or cache load (s)"),
        ("cache_hits", "cache hits"),
        ("x_plain", "plain loop / jaxhp"),
    ]
    print(f"## B1 first call in a fresh process (median of {repeats})\n")
    print(table(rows, columns))
    path = write(
        "first_call",
        {"repeats": repeats, "rows": rows, "targets": {"cold_x_plain": 10, "warm_x_plain": 15}},
        quick=args.quick,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
