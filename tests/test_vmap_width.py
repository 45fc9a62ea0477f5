"""The vmap width rule for models other than the layer_sizes MLP: convolving models (their
convolutions computed as matmuls, jaxhp._conv) are trained one member at a time on the
CPU, others in groups of GROUP_WIDTH."""

import jax
import numpy as np
import pytest

import jaxhp
from jaxhp import _programs, sweep
from jaxhp.models import Model, cnn

SHAPE = (4, 4, 1)  # one example: 4x4 pixels, one channel


def _conv(x, w):
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _model(body) -> Model:
    """A two-class model over SHAPE examples whose hidden map is ``body(params, x)``."""

    def init(key):
        k1, k2 = jax.random.split(key)
        return {"k": jax.random.normal(k1, (3, 3, 1, 2)), "w": jax.random.normal(k2, (32, 2))}

    def apply(params, x, *, key, hparams):
        a = jax.nn.relu(body(params, x))
        if key is not None:
            a = jaxhp.dropout(key, a, hparams.keep_prob)
        return a.reshape(a.shape[0], -1) @ params["w"]

    return Model(init, apply)


def _width(model: Model, example_shape=SHAPE) -> int:
    config = jaxhp.TrainConfig(model=model, steps=4, batch_size=8)
    return sweep._vmap_width(config, 16, example_shape)


def _dense_body(params, x):  # same parameter shapes, a matmul instead of a convolution
    return x.reshape(x.shape[0], 16, 1) * params["k"].reshape(1, 9, 2).sum(1, keepdims=True)


def test_a_convolving_model_is_trained_one_member_at_a_time():
    assert _width(_model(lambda p, x: _conv(x, p["k"]))) == 1


def test_a_model_without_convolutions_keeps_the_group_width():
    assert _width(_model(_dense_body)) == sweep.GROUP_WIDTH


def test_a_convolution_nested_in_jit_or_cond_is_found():
    jitted = _model(lambda p, x: jax.jit(_conv)(x, p["k"]))
    in_cond = _model(
        lambda p, x: jax.lax.cond(
            x.sum() > 0, _conv, lambda a, k: jax.numpy.concatenate([a, a], -1) * k.sum(), x, p["k"]
        )
    )
    assert _width(jitted) == 1
    assert _width(in_cond) == 1


def test_jaxhp_cnn_convolves():
    model = cnn((6, 6, 1), channels=(2,), dense=(3,))
    assert _width(model, (6, 6, 1)) == 1


def test_without_an_example_shape_or_with_unknown_hparams_the_group_width_stays():
    conv = _model(lambda p, x: _conv(x, p["k"]))
    assert _width(conv, None) == sweep.GROUP_WIDTH

    def apply(params, x, *, key, hparams):  # reads a name HParams() does not have
        return conv.apply(params, x, key=key, hparams=hparams) * hparams.temperature

    assert _width(Model(conv.init, apply)) == sweep.GROUP_WIDTH


def test_the_mlp_rule_is_unchanged():
    small = jaxhp.TrainConfig(layer_sizes=(2, 20, 3, 1), steps=10)
    big = jaxhp.TrainConfig(layer_sizes=(784, 256, 256, 10), steps=10, batch_size=256)
    assert sweep._vmap_width(small, 1000, (2,)) == sweep.GROUP_WIDTH
    assert sweep._vmap_width(big, 16384, (784,)) == 1


def test_a_convolving_members_results_do_not_depend_on_the_sweep_around_it():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, *SHAPE)).astype(np.float32)
    y = (x.sum(axis=(1, 2, 3)) > 0).astype(np.int32)
    data = jaxhp.Data((x[:12], y[:12]), (x[12:], y[12:]))
    config = jaxhp.TrainConfig(
        model=_model(lambda p, x: _conv(x, p["k"])), steps=6, batch_size=4, eval_every=3
    )
    members = [
        {"keep_prob": kp, "learning_rate": 0.1, "seed": s}
        for kp, s in ((0.8, 0), (1.0, 1), (0.6, 2))
    ]

    def dev_cost(space_members):
        res = sweep.run_sweep(sweep.Space(space_members), data, config, progress=False)
        return np.asarray(res.history.dev_cost).view(np.uint32)

    together = dev_cost(members)
    alone = np.concatenate([dev_cost([m]) for m in members])
    assert np.isfinite(together.view(np.float32)).all()
    assert np.array_equal(together, alone)


def _ynn_fusions(config: jaxhp.TrainConfig, data: jaxhp.Data, convolves: bool) -> int:
    """How many YNNPACK library fusions XLA compiles into the one-member sweep program."""
    mesh = jax.sharding.Mesh(np.asarray(jax.local_devices()[:1]), ("members",))
    hparams, seeds = sweep.Space([{"keep_prob": 0.8, "learning_rate": 0.1}]).compile(None)
    lowered = _programs.sweep_program(mesh, convolves).lower(
        np.int32(0),
        np.asarray(seeds, np.int32),
        jaxhp.HParams(*hparams),
        data,
        config,
        mesh=mesh,
        width=1,
        dropout=True,
    )
    return lowered.compile().as_text().count('"__ynn_fusion"')


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="YNNPACK is XLA:CPU's")
def test_a_convolving_sweep_compiles_without_ynnpack_fusions():
    # XLA's own kernels run the patch matmuls' small dots faster (bench B4); the MLP's
    # program keeps YNNPACK. Compiled both ways, so the test would see the fusions.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, *SHAPE)).astype(np.float32)
    data = jaxhp.Data((x, (x.sum(axis=(1, 2, 3)) > 0).astype(np.int32)))
    model = cnn(SHAPE, channels=(2,), dense=(2,))
    config = jaxhp.TrainConfig(model=model, steps=2, batch_size=4, eval_every=2)
    assert sweep._convolves_on_cpu(config, SHAPE, None)
    assert not sweep._convolves_on_cpu(config.replace(model=_model(_dense_body)), SHAPE, None)
    assert _ynn_fusions(config, data, convolves=False) > 0
    assert _ynn_fusions(config, data, convolves=True) == 0


# On an accelerator: 64 members a group, halved while a group's step passes 8 GFLOP or a
# quarter of one device's memory. Widths below are worked out by hand from those rules.
B1_MLP = jaxhp.TrainConfig(layer_sizes=(2, 20, 3, 1), steps=10)  # 6*1000*103 FLOPs a step
B2_MLP = jaxhp.TrainConfig(layer_sizes=(784, 256, 256, 10), steps=10, batch_size=256)


def test_on_an_accelerator_course_scale_members_are_batched_wide():
    assert sweep._vmap_width(B1_MLP, 1000, (2,), platform="gpu") == 64
    # 6 * 256 * 268,800 = 0.413 GFLOP a step: 16 members are 6.6 GFLOP, 32 would be 13.2
    assert sweep._vmap_width(B2_MLP, 16384, (784,), platform="gpu") == 16
    huge = jaxhp.TrainConfig(layer_sizes=(4096, 4096, 10), steps=1, batch_size=1024)
    assert sweep._vmap_width(huge, 1024, (4096,), platform="tpu") == 1  # 103 GFLOP a step


def test_on_an_accelerator_one_devices_memory_bounds_the_width():
    gib = 2**30
    # a quarter of 16 GiB is 4 GiB: 4 members of 1 GiB, 64 members of 64 MiB
    assert (
        sweep._vmap_width(B1_MLP, 1000, platform="gpu", per_member=gib, device_bytes=16 * gib) == 4
    )
    small = 64 * 2**20
    assert (
        sweep._vmap_width(B1_MLP, 1000, platform="gpu", per_member=small, device_bytes=16 * gib)
        == 64
    )
    model = jaxhp.TrainConfig(model=_model(_dense_body), steps=4, batch_size=8)
    assert sweep._vmap_width(model, 16, SHAPE, platform="gpu") == 64  # cost unknown: memory
    assert (
        sweep._vmap_width(model, 16, SHAPE, platform="gpu", per_member=gib, device_bytes=8 * gib)
        == 2
    )


class _Card:
    """A stand-in device that reports XLA's memory statistics, as a GPU does."""

    def __init__(self, bytes_limit):
        self.bytes_limit = bytes_limit

    def memory_stats(self):
        return None if self.bytes_limit is None else {"bytes_limit": self.bytes_limit}


def test_the_auto_memory_budget_is_half_of_the_cards():
    assert sweep._memory_budget("auto", [_Card(80 * 2**30)]) == 40 * 2**30
    # two cards: half of the smaller one on each
    assert sweep._memory_budget("auto", [_Card(80 * 2**30), _Card(40 * 2**30)]) == 40 * 2**30
    assert sweep._memory_budget("auto", [_Card(None)]) == sweep.DEFAULT_MEMORY_BUDGET
    assert sweep._memory_budget("auto", jax.devices("cpu")) == sweep.DEFAULT_MEMORY_BUDGET
    assert sweep._memory_budget(12345, [_Card(80 * 2**30)]) == 12345


# ---- a width the user chooses (run_sweep's vmap_width, the CLI's --vmap-width) -------------
CHOSEN = jaxhp.TrainConfig(layer_sizes=(2, 5, 1), steps=20, eval_every=5)
MEMBERS = [
    {"lambd": lam, "keep_prob": kp, "learning_rate": 0.3, "seed": s}
    for s, (lam, kp) in enumerate([(0.0, 1.0), (0.1, 0.8), (1.0, 0.9), (0.01, 0.7), (0.3, 1.0)])
]


@pytest.fixture(scope="module")
def moons():
    return jaxhp.datasets.load("moons", n_train=48, n_dev=24, n_test=0, noise=0.3)


def _raw(results, i):  # member i's history as bits
    return {k: np.asarray(v[i]).view(np.uint32) for k, v in results.history._asdict().items()}


def test_a_chosen_width_is_used_and_its_members_equal_fit(moons):
    results = sweep.run_sweep(
        sweep.Space(MEMBERS), moons, CHOSEN, progress=False, vmap_width=3, devices=1
    )
    assert results.meta["vmap_width"] == 3 and results.meta["chunk_size"] == 6  # 5 -> 2 x 3
    for i, member in enumerate(MEMBERS):  # the reference: fit, one member alone
        hp = jaxhp.HParams(**{k: v for k, v in member.items() if k != "seed"})
        alone = jaxhp.fit(sweep.member_key(0, member["seed"]), hp, moons, CHOSEN)
        np.testing.assert_allclose(results.history.dev_cost[i], alone.history.dev_cost, rtol=1e-5)


def test_at_one_chosen_width_members_are_bit_identical_in_any_sweep(moons):
    small = sweep.run_sweep(sweep.Space(MEMBERS[:3]), moons, CHOSEN, progress=False, vmap_width=2)
    shuffled = [MEMBERS[4], MEMBERS[2], MEMBERS[0], MEMBERS[3], MEMBERS[1]]
    large = sweep.run_sweep(
        sweep.Space(shuffled), moons, CHOSEN, progress=False, vmap_width=2, chunk_size=2
    )
    for i, j in ((0, 2), (1, 4), (2, 1)):  # small's member i is large's member j
        assert all(
            np.array_equal(a, b) for a, b in zip(_raw(small, i).values(), _raw(large, j).values())
        )


def test_halving_trains_whole_groups_of_the_chosen_width(moons):
    space = sweep.Space(MEMBERS)
    halved = sweep.run_sweep(
        space, moons, CHOSEN, progress=False, vmap_width=2, devices=1,
        schedule=sweep.halving(eta=2, min_steps=5),
    )  # fmt: skip
    # rungs at 5, 10, 20 steps with 5, 2, 1 members: groups of 2 lanes, 5/5/10 new steps
    assert [r["members"] for r in halved.meta["rungs"]] == [5, 2, 1]
    assert halved.meta["lane_steps"] == 3 * 2 * 5 + 1 * 2 * 5 + 1 * 2 * 10


@pytest.mark.parametrize(
    ("width", "error"),
    [(0, ValueError), (-2, ValueError), (2.0, TypeError), (True, TypeError), ("8", TypeError)],
)
def test_a_bad_width_is_refused_before_training(moons, width, error, monkeypatch):
    monkeypatch.setattr(sweep, "_run", None)  # training would fail another way
    with pytest.raises(
        error, match=rf"vmap_width must be None \(jaxhp's rule\) or a positive int, got {width!r}"
    ):
        sweep.run_sweep(sweep.Space(MEMBERS), moons, CHOSEN, progress=False, vmap_width=width)


def test_a_checkpoint_is_resumed_at_its_width_only(moons, tmp_path):
    space, folder = sweep.Space(MEMBERS[:2]), tmp_path / "ck"
    sweep.run_sweep(
        space, moons, CHOSEN, progress=False, devices=1, vmap_width=2, checkpoint=folder
    )
    again = sweep.run_sweep(
        space, moons, CHOSEN, progress=False, devices=1, vmap_width=2, checkpoint=folder
    )
    assert again.meta["members_from_checkpoint"] == 2
    with pytest.raises(ValueError, match=r"vmap width \[1\] here, \[2\] in the checkpoint"):
        sweep.run_sweep(
            space, moons, CHOSEN, progress=False, devices=1, vmap_width=1, checkpoint=folder
        )
    # jaxhp's rule (8 on the CPU, 64 on a GPU) is another width: refused; given explicitly,
    # the rule's own width is the same arithmetic: resumed
    by_rule = sweep.Space(MEMBERS)
    rule = sweep.run_sweep(
        by_rule, moons, CHOSEN, progress=False, devices=1, checkpoint=tmp_path / "r"
    )
    width = rule.meta["vmap_width"]
    with pytest.raises(ValueError, match=rf"vmap width \[{width}\] here, \[2\] in the checkpoint"):
        sweep.run_sweep(space, moons, CHOSEN, progress=False, devices=1, checkpoint=folder)
    with pytest.warns(UserWarning, match=f"{width - 5} of its lanes are padding"):  # 5 members
        given = sweep.run_sweep(
            by_rule,
            moons,
            CHOSEN,
            progress=False,
            devices=1,
            vmap_width=width,
            checkpoint=tmp_path / "r",
        )
    assert given.meta["members_from_checkpoint"] == 5


def test_a_width_too_big_for_memory_is_refused_before_training(moons, monkeypatch):
    monkeypatch.setattr(sweep, "_run", None)  # training would fail another way
    with pytest.raises(
        ValueError, match=r"vmap_width=1000000000: one vmap group of 1000000000 members needs about"
    ):
        sweep.run_sweep(sweep.Space(MEMBERS), moons, CHOSEN, progress=False, vmap_width=10**9)


def test_the_cli_passes_its_width_and_refuses_a_bad_one(tmp_path, capsys):
    import json

    from jaxhp.cli import main

    argv = ["sweep", "--n-train", "60", "--n-dev", "30", "--layers", "4", "--steps", "10"]
    argv += ["--lambd", "0,0.1,1", "--keep-prob", "1", "--seeds", "1", "--quiet"]
    with pytest.raises(SystemExit) as refused:
        main([*argv, "--vmap-width", "0", "--out", str(tmp_path / "bad")])
    assert refused.value.code == 2
    assert "argument --vmap-width: expected an int >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert main([*argv, "--vmap-width", "2", "--out", str(tmp_path / "o")]) == 0
    written = json.loads((tmp_path / "o" / "results.json").read_text())
    assert written["meta"]["vmap_width"] == 2
