"""Peak memory against member count, and compile time against members and steps (B1).

Each measurement runs in a fresh subprocess so that its peak RSS is its own. Growth per
member is compared with the per-member state jaxhp estimates (params, optimiser state and
the activations of one batch); the dataset must not be replicated per member.

Run: python bench/memory.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

from common import table, write

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import jax, numpy as np, jaxhp
    from jaxhp import _programs, sweep
    n, steps, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    x, y = jaxhp.datasets.moons(1000, noise=0.25, seed=0)
    xd, yd = jaxhp.datasets.moons(1000, noise=0.25, seed=1)
    data = jaxhp.Data((x, y), (xd, yd))
    config = jaxhp.TrainConfig(layer_sizes=(2, 20, 3, 1), steps=steps, eval_every=steps)
    space = sweep.random(0, n, lambd=sweep.loguniform(1e-3, 10.0),
                         keep_prob=sweep.uniform(0.5, 1.0), learning_rate=0.3)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if mode == "compile":
        hp, seeds = space.compile(config.n_hidden)
        mesh = jax.sharding.Mesh(np.asarray(jax.local_devices()[:1]), ("members",))
        start = time.perf_counter()
        program = _programs.sweep_program(mesh)
        program.lower(np.int32(0), np.asarray(seeds, np.int32), jaxhp.HParams(*hp), data,
                      config, mesh=mesh, width=n, dropout=True).compile()
        print(json.dumps({"compile_s": time.perf_counter() - start}))
    else:
        results = jaxhp.run_sweep(space, data, config, progress=False)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({"rss_before": before, "rss_peak": peak,
                          "estimate": results.meta["memory_per_member_bytes"]}))
""")


def child(n: int, steps: int, mode: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(steps), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    counts = (1, 16) if args.quick else (1, 16, 64, 256)
    steps = 50 if args.quick else 2000
    memory = [{"members": n, **child(n, steps, "memory")} for n in counts]
    for row in memory:
        row["peak_mib"] = row["rss_peak"] / 2**20
    growth = (memory[-1]["rss_peak"] - memory[0]["rss_peak"]) / (counts[-1] - counts[0])
    # The per-member state: params + optimiser state + one batch's activations (z, a, mask,
    # gradient) of the [2, 20, 3, 1] net on 1,000 rows, float32.
    state = 4 * ((2 * 20 + 20 + 20 * 3 + 3 + 3 + 1) * 2 + 1000 * (20 + 3 + 1) * 4)
    data_bytes = 4 * 1000 * 3 * 2
    # quick runs leave out the steps row: every row is a fresh process and a compile
    cases = (
        ((1, 100), (counts[-1], 100)) if args.quick else ((1, 100), (counts[-1], 100), (1, 30000))
    )
    compile_rows = [{"members": n, "steps": s, **child(n, s, "compile")} for n, s in cases]
    print("## Peak RSS against members (B1)\n")
    print(table(memory, [("members", "members"), ("peak_mib", "peak RSS (MiB)")]))
    print(
        f"\ngrowth per member: {growth / 1024:.1f} KiB; per-member state "
        f"{state / 1024:.1f} KiB (ratio {growth / state:.2f}); the dataset is "
        f"{data_bytes / 1024:.1f} KiB"
    )
    print("\n## Compile time\n")
    print(
        table(
            compile_rows, [("members", "members"), ("steps", "steps"), ("compile_s", "compile (s)")]
        )
    )
    base = compile_rows[0]["compile_s"]
    ratios = {"members": compile_rows[1]["compile_s"] / base}
    summary = f"\ncompile ratio N={counts[-1]} vs N=1: {ratios['members']:.2f}"
    if len(compile_rows) > 2:
        ratios["steps"] = compile_rows[2]["compile_s"] / base
        summary += f"; {compile_rows[2]['steps']} vs 100 steps: {ratios['steps']:.2f}"
    print(summary)
    path = write(
        "memory",
        {
            "memory": memory,
            "growth_per_member_bytes": growth,
            "per_member_state_bytes": state,
            "growth_over_state": growth / state,
            "compile": compile_rows,
            "compile_ratios": ratios,
        },
        quick=args.quick,
    )
    print(f"\nwrote {path}")
    return {"growth_over_state": growth / state, "compile_ratios": ratios}


if __name__ == "__main__":
    main()
