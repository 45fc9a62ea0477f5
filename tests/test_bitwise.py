"""Member results are bit-identical however a sweep is run: devices, order, chunk size.

Each variant runs in one fresh process with three CPU devices, so the comparison is exact
(np.array_equal), not a tolerance. The processes variant is in test_distributed.py.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
from conftest import cpu_command_env

VARIANTS = textwrap.dedent(
    """
    import json
    import numpy as np
    import jaxhp
    from jaxhp import sweep

    x, y = jaxhp.datasets.moons(96, noise=0.25, seed=0)
    xd, yd = jaxhp.datasets.moons(48, noise=0.25, seed=1)
    data = jaxhp.Data((x, y), (xd, yd))
    config = jaxhp.TrainConfig(layer_sizes=(2, 6, 3, 1), steps=40, eval_every=10)
    members = [
        {"lambd": lam, "keep_prob": kp, "learning_rate": lr, "seed": s}
        for lam in (0.0, 0.3) for kp in (0.7, 1.0) for lr in (0.3, 1e5) for s in (0, 1)
    ]  # 16 members; learning rate 1e5 diverges
    shuffled = list(np.random.default_rng(0).permutation(len(members)))

    def run(order, **options):
        res = sweep.run_sweep(sweep.Space([members[i] for i in order]), data, config,
                              progress=False, **options)
        back = np.argsort(order)  # rows in the original member order
        arrays = {f: np.asarray(getattr(res.history, f))[back] for f in res.history._fields}
        for f in ("stop_step", "best_step", "diverged"):
            arrays[f] = np.asarray(getattr(res, f))[back]
        # float32 bit patterns: exact, NaN included
        bits = {k: v.view(np.uint32) if v.dtype == np.float32 else v for k, v in arrays.items()}
        return {k: v.tolist() for k, v in bits.items()}, res.meta

    base, meta = run(range(16), devices=1)
    variants = {
        "3 devices": run(range(16), devices=3),
        "shuffled order": run(shuffled, devices=1),
        "chunks of 8": run(range(16), devices=1, chunk_size=8),
    }
    print(json.dumps({"base": base, "diverged": int(sum(base["diverged"])),
                      "variants": {k: v[0] for k, v in variants.items()},
                      "chunks": {k: v[1]["chunk_size"] for k, v in variants.items()}}))
    """
)


def test_members_are_bit_identical_across_devices_order_and_chunks():
    env = cpu_command_env(devices=3)
    env.pop("XLA_FLAGS", None)
    done = subprocess.run(
        [sys.executable, "-c", VARIANTS], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["diverged"] == 4  # the comparison covers diverged members too
    assert out["chunks"]["chunks of 8"] != out["chunks"]["3 devices"]
    for name, arrays in out["variants"].items():
        for field, expected in out["base"].items():
            assert np.array_equal(np.asarray(arrays[field]), np.asarray(expected)), (name, field)
