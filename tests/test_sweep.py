import dataclasses
import json
import re
import subprocess
import sys
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import assert_close, cpu_command_env

import jaxhp
from jaxhp import _programs, sweep

CONFIG = jaxhp.TrainConfig(layer_sizes=(2, 8, 4, 1), steps=40, eval_every=10)


@pytest.fixture(scope="module")
def data():
    return jaxhp.datasets.load("moons", n_train=120, n_dev=60, n_test=0, noise=0.2)


def _member(results, i):
    return jax.tree.map(lambda a: a[i], results.hparams)


def _standalone(results, i, data, config=CONFIG):
    return jaxhp.fit(
        sweep.member_key(results.meta["seed"], int(results.seeds[i])),
        _member(results, i),
        data,
        config,
    )


def _assert_member_matches_fit(results, i, data, config=CONFIG):
    single = _standalone(results, i, data, config)
    assert_close(
        jax.tree.map(lambda a: a[i], results.history), single.history, rtol=1e-6, atol=1e-7
    )
    assert results.stop_step[i] == int(single.stop_step)
    assert results.diverged[i] == bool(single.diverged)


def _space(n, key=0):
    return sweep.random(
        key,
        n,
        lambd=sweep.loguniform(1e-3, 3.0),
        keep_prob=sweep.uniform(0.5, 1.0),
        learning_rate=sweep.loguniform(0.05, 1.0),
    )


@pytest.mark.parametrize("width", [1, 7, 64])
def test_members_equal_standalone_fit(data, width):
    results = jaxhp.run_sweep(_space(width), data, CONFIG, progress=False)
    assert len(results) == width
    for i in sorted({0, width // 2, width - 1}):
        _assert_member_matches_fit(results, i, data)


@pytest.mark.parametrize("chunk_size", [1, 5, "auto"])
def test_chunking_and_order_do_not_change_members(data, chunk_size):
    space = _space(7, key=3)
    reference = jaxhp.run_sweep(space, data, CONFIG, progress=False)
    order = np.random.default_rng(0).permutation(7)
    shuffled = sweep.Space([space.members[i] for i in order])
    results = jaxhp.run_sweep(shuffled, data, CONFIG, chunk_size=chunk_size, progress=False)
    for new_position, old_position in enumerate(order):
        assert_close(
            jax.tree.map(lambda a: a[new_position], results.history),
            jax.tree.map(lambda a: a[old_position], reference.history),
            rtol=1e-6,
            atol=1e-7,
        )
    _assert_member_matches_fit(results, 6, data)


def test_grid_seeds_and_per_layer_keep_prob(data):
    space = sweep.grid(lambd=[0.0, 0.5], keep_prob=[(0.6, 0.9), 1.0], seeds=2)
    assert len(space) == 8
    results = jaxhp.run_sweep(space, data, CONFIG, progress=False)
    np.testing.assert_array_equal(results.seeds, [0, 1] * 4)
    assert results.hparams.keep_prob.shape == (8, 2)
    np.testing.assert_allclose(results.hparams.keep_prob[0], [0.6, 0.9])
    np.testing.assert_allclose(results.hparams.keep_prob[2], [1.0, 1.0])
    _assert_member_matches_fit(results, 1, data)
    assert "keep_prob_1" in results.table()[0]


def test_diverging_member_is_flagged_and_isolated(data):
    config = CONFIG.replace(activation="tanh")
    good = [{"lambd": 0.1, "keep_prob": 0.8, "learning_rate": 0.3, "seed": s} for s in range(3)]
    bad = {"lambd": 0.0, "keep_prob": 1.0, "learning_rate": 1e38}
    with_bad = jaxhp.run_sweep(
        sweep.Space(good + [bad]), data, config, chunk_size=4, progress=False
    )
    without = jaxhp.run_sweep(sweep.Space(good), data, config, chunk_size=4, progress=False)
    assert with_bad.diverged_members == [3]
    assert with_bad.best()["member"] != 3
    for field in with_bad.history._fields:
        np.testing.assert_array_equal(
            getattr(with_bad.history, field)[:3], getattr(without.history, field)
        )
    # It blew up in its first chunk: rolled back to its initial params, it shows the
    # non-finite cost where it diverged.
    assert int(with_bad.stop_step[3]) == 0
    assert not np.isfinite(with_bad.history.train_cost[3][0])


def test_changing_values_does_not_recompile(data):
    compiles = []

    def listener(name, _duration, **_):
        if name == "/jax/core/compile/backend_compile_duration":
            compiles.append(name)

    space_a = sweep.grid(lambd=[0.0, 0.1, 1.0], keep_prob=[0.7, 1.0])
    space_b = sweep.grid(lambd=[0.3, 2.0, 5.0], keep_prob=[0.5, 0.9])
    jaxhp.run_sweep(space_a, data, CONFIG, progress=False)  # compiles (maybe)
    # Only this test's listener comes and goes; other listeners (JAX's own) stay.
    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        jaxhp.run_sweep(space_b, data, CONFIG, progress=False)
        new_values = len(compiles)
        # Positive control: a new static config (steps) is a new program, and is seen.
        jaxhp.run_sweep(space_b, data, CONFIG.replace(steps=30), progress=False)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert new_values == 0
    assert len(compiles) >= 1


def test_results_table_best_top_and_exports(data, tmp_path):
    results = jaxhp.run_sweep(
        sweep.grid(lambd=[0.0, 1.0], keep_prob=[0.7, 1.0]), data, CONFIG, progress=False
    )
    rows = results.table()
    accuracies = [r["dev_accuracy"] for r in rows]
    assert results.best()["dev_accuracy"] == max(accuracies)
    assert results.best("dev_cost")["dev_cost"] == min(r["dev_cost"] for r in rows)
    top = results.top(3)
    assert [r["dev_accuracy"] for r in top] == sorted(accuracies, reverse=True)[:3]
    diagnosed = results.diagnose(bayes_error=0.01)
    np.testing.assert_allclose(
        diagnosed[0]["avoidable_bias"], 1 - rows[0]["train_accuracy"] - 0.01, rtol=1e-6
    )
    np.testing.assert_allclose(
        diagnosed[0]["variance"], rows[0]["train_accuracy"] - rows[0]["dev_accuracy"], atol=1e-6
    )
    csv_text = results.to_csv(tmp_path / "r.csv").read_text().splitlines()
    assert csv_text[0].startswith("member,seed,lambd,keep_prob,learning_rate")
    assert len(csv_text) == 5
    payload = json.loads(results.to_json(tmp_path / "r.json").read_text())
    assert len(payload["members"]) == 4 and "dev_cost" in payload["history"]
    assert results.plot_heatmap(tmp_path / "h.png").stat().st_size > 1000
    assert results.plot_curves(tmp_path / "c.png", top=2).stat().st_size > 1000


def test_refine_builds_a_smaller_box_around_the_best(data):
    coarse = jaxhp.run_sweep(
        sweep.grid(lambd=[1e-3, 1e-2, 1e-1, 1.0, 10.0], learning_rate=[0.03, 0.3]),
        data,
        CONFIG,
        progress=False,
    )
    fine = sweep.refine(coarse, top=2, shrink=0.25, n=40, key=1)
    assert len(fine) == 40
    best = coarse.top(2)
    lambdas = np.log10([m["lambd"] for m in fine])
    centres = np.log10([r["lambd"] for r in best])
    half_width = 0.25 * 4 / 2  # a quarter of the 4 decades swept
    assert all(min(abs(v - c) for c in centres) <= half_width + 1e-9 for v in lambdas)
    with pytest.warns(UserWarning, match="top=50, but the sweep has 10 members"):
        sweep.refine(coarse, top=50, n=4, key=1)


def test_checkpoint_resume_and_refusal(data, tmp_path):
    space = _space(9)
    full = jaxhp.run_sweep(
        space, data, CONFIG, chunk_size=4, checkpoint=tmp_path / "ck", progress=False
    )
    chunk_files = sorted((tmp_path / "ck").glob("chunk-*.npz"))
    assert len(chunk_files) == 3
    chunk_files[-1].unlink()  # as if killed before the last chunk finished
    resumed = jaxhp.run_sweep(
        space, data, CONFIG, chunk_size=4, checkpoint=tmp_path / "ck", progress=False
    )
    assert resumed.meta["members_from_checkpoint"] == 8
    assert resumed.table() == full.table()
    with pytest.raises(ValueError, match="written by a different sweep"):
        jaxhp.run_sweep(_space(9, key=1), data, CONFIG, checkpoint=tmp_path / "ck", progress=False)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: sweep.grid(lambd=[]), "empty"),
        (lambda: sweep.Space([]), "empty"),
        (
            lambda: sweep.grid(keep_prob=[0.5, 1.5]),
            r"keep_prob must be in \(0, 1\], got 1.5 "
            r"\(member 1 of the sweep\)",
        ),
        (lambda: sweep.grid(keep_prob=[0.0]), r"keep_prob must be in \(0, 1\], got 0.0"),
        (lambda: sweep.grid(lambd=[0.1, -1.0]), r"lambd must be .* got -1.0 \(member 1"),
        (lambda: sweep.random(0, 5, lambd=sweep.loguniform(0.0, 1.0)), "loguniform needs a > 0"),
        (lambda: sweep.random(0, 0, lambd=sweep.uniform(0.0, 1.0)), "n must be a positive int"),
        (lambda: sweep.grid(lamda=[0.1]), "unknown axis 'lamda'.*'lambd'"),
    ],
)
def test_bad_spaces(data, make, match):
    with pytest.raises(ValueError, match=match):
        jaxhp.run_sweep(make(), data, CONFIG, progress=False)


SHARDED = textwrap.dedent("""
    import json, jax, numpy as np, jaxhp
    from jaxhp import sweep
    data = jaxhp.datasets.load("moons", n_train=120, n_dev=60, n_test=0, noise=0.2)
    config = jaxhp.TrainConfig(layer_sizes=(2, 8, 4, 1), steps=40, eval_every=10)
    out = {"devices": jax.device_count()}
    for n in (8, 6):
        space = sweep.random(0, n, lambd=sweep.loguniform(1e-3, 3.0),
                             keep_prob=sweep.uniform(0.5, 1.0))
        four = jaxhp.run_sweep(space, data, config, progress=False)
        one = jaxhp.run_sweep(space, data, config, devices=1, progress=False)
        out[n] = {"per_device": four.meta["members_per_device"],
                  "one_device": one.meta["members_per_device"],
                  "chunk": four.meta["chunk_size"],
                  "max_diff": float(max(np.max(np.abs(getattr(four.history, f)
                                                      - getattr(one.history, f)))
                                        for f in four.history._fields)),
                  "same_flags": bool((four.stop_step == one.stop_step).all()
                                     and (four.diverged == one.diverged).all())}
    print(json.dumps(out))
""")


def test_sharded_sweep_over_four_devices():
    env = cpu_command_env(devices=4, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    done = subprocess.run(
        [sys.executable, "-c", SHARDED], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["devices"] == 4
    assert out["8"]["per_device"] == [2, 2, 2, 2]  # 8 members split 4 ways
    assert out["8"]["one_device"] == [8]
    # auto chunks hold whole vmap groups on every device: 4 x GROUP_WIDTH lanes
    assert out["6"]["chunk"] == 4 * sweep.GROUP_WIDTH
    assert out["6"]["per_device"] == [2, 2, 1, 1]
    for n in ("8", "6"):
        assert out[n]["same_flags"]
        assert out[n]["max_diff"] == 0.0  # bit-identical on 1 and 4 devices


def test_vmap_width_batches_small_nets_and_serialises_big_ones():
    small = jaxhp.TrainConfig(layer_sizes=(2, 20, 3, 1), steps=10)
    big = jaxhp.TrainConfig(layer_sizes=(784, 256, 256, 10), steps=10, batch_size=256)
    assert sweep._vmap_width(small, 1000) == sweep.GROUP_WIDTH  # 6 * 1000 * 103 flops/step
    assert sweep._vmap_width(big, 16384) == 1  # 6 * 256 * 268,800 flops per step


def test_use_cpu_cores_refuses_once_jax_has_started():
    jax.numpy.ones(1).block_until_ready()
    with pytest.raises(RuntimeError, match="before any JAX computation"):
        sweep.use_cpu_cores(3)


@pytest.mark.parametrize("seed", [-1, 2**31, 1.5])
def test_seed_out_of_int32_range_is_refused(data, seed):
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*31\), got"):
        jaxhp.run_sweep(sweep.grid(lambd=[0.1]), data, CONFIG, seed=seed, progress=False)


def test_the_sweep_programs_llvm_level_yields_to_xla_flags(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_use_fusion_emitters=false")
    assert _programs._cpu_options() == {"xla_backend_optimization_level": 1}
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    assert _programs._cpu_options() == {}  # the suite's -O0 reaches the sweep programs too


# ---- refit: a member's params after the sweep --------------------------------------------
def _numpy_dev_accuracy(params, data):
    """Dev accuracy of MLP params by a NumPy forward pass in float64 (dropout off)."""
    x, y = (np.asarray(a, np.float64) for a in data.dev)
    ws = [np.asarray(layer.W, np.float64) for layer in params]
    bs = [np.asarray(layer.b, np.float64) for layer in params]
    logits = x
    for k, (w, b) in enumerate(zip(ws, bs)):
        logits = logits @ w + b
        logits = np.maximum(logits, 0) if k < len(ws) - 1 else logits
    return float(np.mean((logits[:, 0] > 0) == y))


def _assert_same_bits(results, i, refitted, n=None):
    """The refit's history is member i's row of the sweep, bit for bit (first n rows)."""
    for field in results.history._fields:
        np.testing.assert_array_equal(
            getattr(results.history, field)[i, :n], getattr(refitted.history, field)[:n]
        )


def test_refit_returns_the_members_params(data, tmp_path):
    space = sweep.grid(layer_sizes=[(2, 8, 4, 1), (2, 6, 1)], lambd=[0.0, 0.2], keep_prob=[0.8])
    results = jaxhp.run_sweep(space, data, CONFIG, seed=3, progress=False)
    # read back from its results.json, the sweep refits its members just the same
    read = jaxhp.SweepResults.from_json(results.to_json(tmp_path / "results.json"))
    _assert_same_bits(results, 3, sweep.refit(read, 3, data, CONFIG))
    for i in (1, 3):  # one member of each static group
        refitted = sweep.refit(results, i, data, CONFIG)
        sizes = results.static["layer_sizes"][i]
        assert [layer.W.shape for layer in refitted.params] == list(zip(sizes, sizes[1:]))
        _assert_same_bits(results, i, refitted)  # the sweep's own program, same width
        alone = _standalone(results, i, data, CONFIG.replace(layer_sizes=sizes))
        assert_close(alone.history, refitted.history, rtol=1e-6, atol=1e-7)  # = fit, rounded
        # the params give the sweep's final dev accuracy (last params: no early stopping)
        assert _numpy_dev_accuracy(refitted.params, data) == pytest.approx(
            float(results.history.dev_accuracy[i, -1]), abs=1.5 / len(data.dev[0])
        )


def test_refit_together_trains_each_member_as_the_sweep_did(data):
    space = sweep.grid(lambd=[0.0, 0.3], keep_prob=[1.0, 0.7], seeds=2)
    config = CONFIG.replace(steps=80, patience=2)
    results = jaxhp.run_sweep(space, data, config, progress=False)
    members = [5, 0, 7, 5, 2]  # any order, one repeated, dropout on and off
    fitted = sweep.refit_together(results, members, data, config)
    assert len(fitted) == len(members)
    for i, refitted in zip(members, fitted):
        _assert_same_bits(results, i, refitted)
        assert int(refitted.stop_step) == int(results.stop_step[i])
    halved = jaxhp.run_sweep(space, data, config, schedule=sweep.halving(2, 20), progress=False)
    last = [int(i) for i in np.flatnonzero(halved.rung == 2)]  # reached 80 steps
    assert len(last) == 2
    for i, refitted in zip(last, sweep.refit_together(halved, last, data, config)):
        _assert_same_bits(halved, i, refitted)
    with pytest.raises(ValueError, match=r"member must be a row .*\[0, 8\), got 8$"):
        sweep.refit_together(results, [0, 8], data, config)
    with pytest.raises(TypeError, match=r"members must be a list of rows .*got 3$"):
        sweep.refit_together(results, 3, data, config)
    with pytest.raises(TypeError, match=r"members must be a list of rows .*got array\(1\)$"):
        sweep.refit_together(results, np.array(1), data, config)  # 0-d: not a sequence


def test_refit_together_trains_a_repeated_member_once(data, monkeypatch):
    results = jaxhp.run_sweep(sweep.grid(lambd=[0.0, 0.1]), data, CONFIG, progress=False)
    trained, real = [], sweep._train_as_in_the_sweep
    monkeypatch.setattr(
        sweep,
        "_train_as_in_the_sweep",
        lambda r, rows, *a: trained.append(rows) or real(r, rows, *a),
    )
    fitted = sweep.refit_together(results, [1, 1, 0, 1], data, CONFIG)
    assert trained == [[1, 0]] and len(fitted) == 4
    assert fitted[0] is fitted[1] is fitted[3]
    _assert_same_bits(results, 0, fitted[2])
    for rows in (range(2), np.arange(2)):  # any sequence of rows, in its order
        again = sweep.refit_together(results, rows, data, CONFIG)
        _assert_same_bits(results, 0, again[0])
        _assert_same_bits(results, 1, again[1])


def test_a_numpy_vmap_width_is_recorded_as_a_plain_int(data, tmp_path):
    results = jaxhp.run_sweep(
        sweep.grid(lambd=[0.0, 0.1]), data, CONFIG, progress=False, vmap_width=np.int64(2),
        devices=1,
    )  # fmt: skip
    results.to_json(tmp_path / "r.json")  # NumPy ints are not JSON
    assert json.loads((tmp_path / "r.json").read_text())["meta"]["vmap_width_given"] == 2


def test_a_member_that_cannot_see_its_inputs_is_diagnosed_not_learning():
    """All-zero features: the net can only learn the majority class, so its train error
    sits at chance level. run_sweep records the chance error (guessing the dev set's
    majority class), so the diagnosis says "not learning", not "high bias" with advice to
    grow the network."""
    rng = np.random.default_rng(0)
    y, y_dev = (rng.random(100) < 0.7).astype(np.int32), (rng.random(50) < 0.7).astype(np.int32)
    blind = jaxhp.Data((np.zeros((100, 2), np.float32), y), (np.zeros((50, 2), np.float32), y_dev))
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=100)
    results = jaxhp.run_sweep(sweep.grid(learning_rate=[0.5]), blind, config, progress=False)
    assert results.meta["chance_error"] == pytest.approx(1 - np.bincount(y_dev).max() / 50)
    assert results.diagnose()[0]["verdict"] == "not learning (train error at chance level)"


def test_refit_refuses_a_member_outside_the_results_and_a_halved_one(data):
    results = jaxhp.run_sweep(sweep.grid(lambd=[0.0, 0.1]), data, CONFIG, progress=False)
    for bad in (2, -1, True, 0.0):
        with pytest.raises(ValueError, match=rf"member must be a row .*\[0, 2\), got {bad!r}$"):
            sweep.refit(results, bad, data, CONFIG)
    with pytest.raises(ValueError, match=r"got \[0, 1\] \(pick one of a configuration's"):
        sweep.refit(results, [0, 1], data, CONFIG)
    for change in ({"eval_every": 5}, {"steps": 20}, {"batch_size": 30}, {"optimizer": "adam"}):
        (name, value), *_ = change.items()
        with pytest.raises(ValueError, match=rf"not the one the sweep was given: {name}={value!r}"):
            sweep.refit(results, 1, data, CONFIG.replace(**change))
    one = sweep.refit(results, jax.numpy.int32(1), data, CONFIG)  # any integer scalar
    _assert_same_bits(results, 1, one)
    with pytest.raises(TypeError, match="results must be what run_sweep returned, got dict"):
        sweep.refit({}, 0, data, CONFIG)
    config = CONFIG.replace(steps=90)
    halved = jaxhp.run_sweep(
        sweep.grid(lambd=[0.0, 0.01, 0.1, 1.0, 3.0, 10.0]),
        data,
        config,
        schedule=sweep.halving(3, min_steps=30),
        progress=False,
    )
    stopped = int(np.flatnonzero(halved.stop_step < 90)[0])
    with pytest.raises(ValueError, match=rf"member {stopped} stopped at rung 0 .*after 30 steps"):
        sweep.refit(halved, stopped, data, config)
    # as far as it went, as the message says: its history up to its rung (3 evaluations)
    short = sweep.refit(halved, stopped, data, config.replace(steps=30, eval_every=10))
    _assert_same_bits(halved, stopped, short, n=3)


def test_a_short_refit_of_a_halving_member_keeps_the_sweeps_vmap_width(data, monkeypatch):
    """A refit "as far as it went" passes fewer steps; jaxhp's width rule may depend on the
    run's length (its memory, on an accelerator): the width is the one the sweep's config
    got, or the member rounds differently."""
    rule = sweep._vmap_width

    def by_length(config, *args, **kwargs):  # a rule that gives shorter runs width 1
        return rule(config, *args, **kwargs) if config.steps >= 90 else 1

    monkeypatch.setattr(sweep, "_vmap_width", by_length)
    config = CONFIG.replace(steps=90, optimizer="adam")
    space = sweep.grid(lambd=[0.0, 0.01, 0.1, 1.0, 3.0, 10.0])
    halved = jaxhp.run_sweep(space, data, config, schedule=sweep.halving(3, 30), progress=False)
    assert halved.meta["vmap_width"] > 1
    stopped = int(np.flatnonzero(halved.stop_step < 90)[0])
    short = sweep.refit(halved, stopped, data, config.replace(steps=30, eval_every=10))
    _assert_same_bits(halved, stopped, short, n=3)


def test_refit_a_halving_member_that_stopped_early_by_patience(data):
    """Early stopping, not the schedule, ended it: the refit stops there too."""
    config = CONFIG.replace(steps=90, patience=1)
    space = sweep.grid(lambd=[0.0, 0.01, 0.1], learning_rate=[0.5, 2.0])
    schedule = sweep.halving(3, min_steps=30)
    halved = jaxhp.run_sweep(space, data, config, schedule=schedule, progress=False)
    rung_steps = [r["step"] for r in halved.meta["rungs"]]
    early = [
        i
        for i in range(len(halved))
        if not halved.diverged[i] and halved.stop_step[i] not in rung_steps
    ]
    assert early, halved.stop_step  # the case exists in this sweep
    i = early[0]
    again = sweep.refit(halved, i, data, config)
    assert int(again.stop_step) == int(halved.stop_step[i])
    # bit for bit even at a learning rate of 2, where a plain fit drifts (2-4e-6 relative
    # by step 40 on the CPU, more on an H200)
    _assert_same_bits(
        halved, i, again, n=int(np.sum(halved.history.step[i] <= halved.stop_step[i]))
    )


def test_a_sweep_whose_every_member_diverged_warns_with_advice(data):
    x, y = data.train
    loud = jaxhp.Data(train=(x * 1000.0, y), dev=data.dev)  # unnormalised features
    space = sweep.grid(lambd=[1e4], learning_rate=[1.0, 5.0])  # weights blow up
    with pytest.warns(UserWarning, match=r"every member .* diverged .* reach [\d.e+]+: normalise"):
        results = jaxhp.run_sweep(space, loud, CONFIG, progress=False)
    assert results.diverged.all()
    with warnings.catch_warnings():  # one sane member: no warning
        warnings.simplefilter("error")
        space = sweep.grid(lambd=[1e4], learning_rate=[1e-4, 5.0])
        assert jaxhp.run_sweep(space, loud, CONFIG, progress=False).diverged.tolist() == [0, 1]


def test_a_sweep_that_cannot_start_finite_blames_the_model_not_the_learning_rate(data):
    """A model whose cost is NaN at its initial params diverges before any evaluation at
    every learning rate: the warning says so, and finite_at_start tells the two apart."""

    def init(key):  # a NaN bias, as a broken init would leave it; 3 outputs for 2 classes
        return {"w": jax.random.normal(key, (2, 3)), "b": np.full((3,), np.nan, np.float32)}

    def apply(params, x, *, key, hparams):
        return x @ params["w"] + params["b"][None, :]

    config = jaxhp.TrainConfig(model=jaxhp.Model(init, apply), steps=20, eval_every=10)
    space = sweep.grid(learning_rate=[1e-3, 0.1])
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        results = jaxhp.run_sweep(space, data, config, progress=False)
    said = [str(w.message) for w in said]
    assert any("The train and dev costs are not finite at the initial params" in w for w in said)
    assert results.diverged.all() and not results.stop_step.any()
    # the check of the start does not repeat the sweep's input checks and their warnings
    assert sum("3 outputs per example" in w for w in said) == 1, said
    hp = jaxhp.HParams(learning_rate=0.1)
    with pytest.warns(UserWarning, match="3 outputs per example"):  # fit's checks, once
        assert not jaxhp.train.finite_at_start(jax.random.key(0), hp, data, config)
    sane = jaxhp.models.mlp((2, 4, 1))
    assert jaxhp.train.finite_at_start(jax.random.key(0), hp, data, config.replace(model=sane))
    # an id past the embedding's rows in the dev set alone (a NaN there, as flax.linen.Embed
    # returns): the warning names the dev set, whose cost alone is not finite
    rows = 6

    def embed(params, ids, *, key, hparams):
        table = jnp.concatenate([params["E"], jnp.full((1, 1), jnp.nan)])  # row 6: NaN
        return table[jnp.minimum(ids[:, :1], rows)][:, 0]

    ids = np.arange(20, dtype=np.int32)[:, None] % rows
    bad_dev = ids.copy()
    bad_dev[:2] = 99
    labels = ids[:, 0] % 2
    lookup = jaxhp.TrainConfig(model=jaxhp.Model(lambda key: {"E": jnp.ones((rows, 1))}, embed),
                               steps=5, l2="E", input_dtype="int32")  # fmt: skip
    with pytest.warns(UserWarning, match="The dev cost is not finite .* and the dev data"):
        jaxhp.run_sweep(space, jaxhp.Data((ids, labels), (bad_dev, labels)), lookup, progress=False)
    # without a dev set (its metrics repeat the training set's) only the train data is named
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        jaxhp.run_sweep(space, jaxhp.Data(data.train), config, progress=False)
    assert any(re.search("The train cost is not finite .* and the train data\\.$", str(w.message))
               for w in said), [str(w.message) for w in said]  # fmt: skip


def test_a_model_that_returns_probabilities_is_told_to_return_logits(data):
    """An apply ending in a sigmoid: its "logits" lie in (0, 1), every prediction is class
    1, and every member sits at chance. The warning says what apply must return."""

    def init(key):
        return {"w": jax.random.normal(key, (2, 1))}

    def probabilities(params, x, *, key, hparams):
        return jax.nn.sigmoid(x @ params["w"])

    config = jaxhp.TrainConfig(model=jaxhp.Model(init, probabilities), steps=20, eval_every=10)
    space = sweep.grid(learning_rate=[0.01, 0.1])
    with pytest.warns(UserWarning, match=r"all lie in \[0, 1\]: apply must return logits"):
        results = jaxhp.run_sweep(space, data, config, progress=False)
    labels = np.asarray(data.train[1]).ravel()
    np.testing.assert_allclose(results.history.train_accuracy[:, -1], np.mean(labels == 1))


def test_refit_compares_configs_by_value_and_a_model_sweep_writes_its_json(data, tmp_path):
    """A config built again equals the sweep's (NumPy ints, eval_every resolved, a model
    made again by the same factory); a function swapped for another kind is refused; and
    the record of a model= config is JSON-safe."""
    config = jaxhp.TrainConfig(model=jaxhp.models.mlp((2, 6, 1)), steps=40)  # eval_every None
    results = jaxhp.run_sweep(sweep.grid(lambd=[0.0, 0.1]), data, config, progress=False)
    results.to_json(tmp_path / "r.json")
    recorded = json.loads((tmp_path / "r.json").read_text())["meta"]["train_config"]
    assert recorded["model"] == "<Model>" and recorded["eval_every"] == 1
    again = jaxhp.TrainConfig(model=jaxhp.models.mlp((2, 6, 1)), steps=np.int64(40), eval_every=1)
    single = sweep.refit(results, 1, data, again)
    _assert_same_bits(results, 1, single)
    with pytest.raises(ValueError, match=r"augment='<function>', the sweep's augment=None"):
        sweep.refit(results, 1, data, again.replace(augment=lambda key, x: x))
    # Functions are compared by kind: another model of the same kind is caught by its
    # first evaluation, with a warning.
    with pytest.warns(UserWarning, match=r"refit of member 1 does not reproduce its first"):
        sweep.refit(results, 1, data, config.replace(model=jaxhp.models.mlp((2, 3, 3, 1))))
    with warnings.catch_warnings():  # the sweep's own model: no warning
        warnings.simplefilter("error")
        sweep.refit(results, 0, data, again)
    x, y = data.dev
    for other in (jaxhp.Data(data.train, (x[:-1], y[:-1])), jaxhp.Data(data.train, (x + 1e-3, y))):
        with pytest.raises(ValueError, match="data is not what the sweep trained on"):
            sweep.refit(results, 1, other, config)


def test_a_refit_runs_on_the_platform_the_sweep_ran_on(data):
    results = jaxhp.run_sweep(sweep.grid(lambd=[0.0]), data, CONFIG, progress=False)
    assert results.meta["devices"][0].startswith("cpu:")
    assert [d.platform for d in sweep._devices_like_the_sweeps(results)] == ["cpu", "cpu"]
    elsewhere = dataclasses.replace(results, meta={**results.meta, "devices": ["tpu:0"]})
    assert sweep._devices_like_the_sweeps(elsewhere) == jax.local_devices()[:1]


def test_an_adam_member_refits_bit_for_bit_from_a_sweep_split_over_devices(data):
    """XLA simplifies Adam's bias correction differently in a program split over devices
    than in a one-device program: a refit of a split sweep runs split too."""
    config = CONFIG.replace(optimizer="adam", steps=60)
    space = sweep.grid(learning_rate=[0.01, 0.1, 0.3])
    results = jaxhp.run_sweep(space, data, config, progress=False, devices=2)
    for i, refitted in enumerate(sweep.refit_together(results, [0, 1, 2], data, config)):
        _assert_same_bits(results, i, refitted)
    halved = jaxhp.run_sweep(space, data, config, progress=False, schedule=sweep.halving(3, 20))
    best = int(np.flatnonzero(halved.rung == 1)[0])
    _assert_same_bits(halved, best, sweep.refit(halved, best, data, config))


def test_a_refit_with_fewer_devices_than_its_sweep_was_split_over_warns(data, monkeypatch):
    results = jaxhp.run_sweep(sweep.grid(lambd=[0.0]), data, CONFIG, progress=False, devices=2)
    real = jax.local_devices
    monkeypatch.setattr(jax, "local_devices", lambda *a, **k: real(*a, **k)[:1])
    with pytest.warns(UserWarning, match=r"split over 2 devices and this process has one"):
        sweep.refit(results, 0, data, CONFIG)
    one = dataclasses.replace(results, meta={**results.meta, "devices": ["cpu:0"]})
    with warnings.catch_warnings():  # a one-device sweep needs one
        warnings.simplefilter("error")
        sweep.refit(one, 0, data, CONFIG)
