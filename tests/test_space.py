"""Search spaces over any hyperparameter name, static axes, and the β-near-1 distribution."""

import re

import jax
import numpy as np
import pytest
from scipy import stats

import jaxhp
from jaxhp import sweep


def test_one_minus_loguniform_samples_one_minus_beta_log_uniformly():
    beta = np.array(
        [
            m["momentum"]
            for m in sweep.random(0, 4000, momentum=sweep.one_minus_loguniform(0.9, 0.999))
        ]
    )
    assert beta.min() >= 0.9 and beta.max() <= 0.999
    # log10(1 - beta) is uniform on [-3, -1]: one decade each for 0.9-0.99 and 0.99-0.999.
    assert stats.kstest(np.log10(1 - beta), stats.uniform(loc=-3, scale=2).cdf).pvalue > 1e-3
    assert abs(np.mean(beta > 0.99) - 0.5) < 5 * np.sqrt(0.25 / 4000)


def test_any_name_compiles_with_base_defaults():
    space = sweep.grid(momentum=[0.0, 0.9], b2=[0.99, 0.999])
    hp, seeds = space.compile(1, jaxhp.HParams(learning_rate=0.3))
    assert hp._fields == ("lambd", "keep_prob", "learning_rate", "momentum", "b2")
    np.testing.assert_allclose(hp.momentum, [0.0, 0.0, 0.9, 0.9])
    np.testing.assert_allclose(hp.b2, [0.99, 0.999, 0.99, 0.999], rtol=1e-7)
    np.testing.assert_allclose(hp.learning_rate, 0.3)
    np.testing.assert_array_equal(seeds, 0)


def test_static_axes_are_kept_as_given_and_left_out_of_hparams():
    space = sweep.grid(layer_sizes=[[2, 4, 1], (2, 8, 1)], batch_size=[16], lambd=[0.1])
    assert space.static_axes() == ("layer_sizes", "batch_size")
    assert space.members[0]["layer_sizes"] == (2, 4, 1)
    hp, _ = space.compile(1)
    assert hp._fields == ("lambd", "keep_prob", "learning_rate")


def test_refine_samples_new_names_in_range_and_keeps_static_values():
    n = 6
    history = jaxhp.History(*(np.tile(np.linspace(0.1, 0.9, n)[:, None], (1, 2)) for _ in range(5)))
    results = jaxhp.SweepResults(
        hparams=jaxhp.HParams(
            lambd=np.zeros(n),
            keep_prob=np.ones(n),
            learning_rate=np.full(n, 0.1),
            momentum=np.linspace(0.5, 0.95, n),
        ),
        seeds=np.zeros(n, int),
        history=history,
        stop_step=np.full(n, 2),
        best_step=np.full(n, 2),
        diverged=np.zeros(n, bool),
        static={"layer_sizes": [(2, 4, 1)] * 3 + [(2, 8, 1)] * 3},
    )
    space = sweep.refine(results, top=1, n=20, shrink=0.5)
    momentum = np.array([m["momentum"] for m in space])
    # The best member (highest dev accuracy) is the last: momentum 0.95, layer_sizes (2, 8, 1).
    assert momentum.min() >= 0.95 - 0.5 * 0.45 / 2 - 1e-9 and momentum.max() <= 0.95
    assert {m["layer_sizes"] for m in space} == {(2, 8, 1)}


@pytest.mark.parametrize("bad", [0.5, "1", True])
def test_member_seed_must_be_an_int(bad):
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        sweep.Space([{"lambd": 0.1, "seed": bad}])


def test_spaces_of_one_seed_combine_with_a_product():
    from jaxhp import sweep

    space = sweep.grid(lambd=[0.0, 1.0]) * sweep.random(
        0, 3, momentum=sweep.one_minus_loguniform(0.8, 0.99)
    )
    assert len(space) == 6
    assert all(set(m) == {"lambd", "momentum"} for m in space.members)
    _, seeds = space.compile(1)
    assert list(seeds) == [0] * 6  # no seed axis: every member takes seed 0
    assert len(sweep.grid(lambd=[0.0], seeds=2) * sweep.grid(keep_prob=[0.5, 1.0])) == 4


@pytest.mark.parametrize(
    "axis, values, shown",
    [
        ("lambd", [0, 0.1, 0.0], "0.0"),  # 0 and 0.0 are one point
        ("keep_prob", [(0.5, 0.8), (0.5, 0.9), (0.5, 0.8)], "(0.5, 0.8)"),
        ("layer_sizes", [(2, 4, 1), (2, 5, 1), (2, 4, 1)], "(2, 4, 1)"),
        ("optimizer", ["adam", "sgd", "adam"], "'adam'"),
    ],
)
def test_a_grid_axis_that_repeats_a_value_is_refused(axis, values, shown):
    with pytest.raises(ValueError, match=rf"grid axis '{axis}' lists {re.escape(shown)} more"):
        sweep.grid(**{axis: values})
    sweep.grid(**{axis: values[:2]})  # distinct values are fine


def test_a_dataset_file_may_hold_labels_as_a_column(tmp_path):
    from jaxhp.data import load_file

    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    y = np.array([0, 1, 1, 0, 1, 0])
    np.savez(tmp_path / "column.npz", x=x, y=y[:, None])
    loaded_x, loaded_y = load_file(tmp_path / "column.npz")
    np.testing.assert_array_equal(loaded_y, y)
    assert loaded_y.shape == (6,)
    np.testing.assert_array_equal(loaded_x, x)


def test_random_draws_over_lists_are_distinct_points():
    lists = {"lambd": [0.0, 0.01, 0.1, 1.0], "keep_prob": [0.5, 0.8, 1.0]}
    space = sweep.random(0, 12, **lists)  # every one of the 12 combinations, once
    points = {(m["lambd"], m["keep_prob"]) for m in space}
    assert points == {(lam, kp) for lam in lists["lambd"] for kp in lists["keep_prob"]}
    with pytest.raises(ValueError, match=r"random\(n=13\) asks for more distinct points .* \(12:"):
        sweep.random(0, 13, **lists)


def test_random_draws_without_repeats_are_the_independent_draws():
    # Continuous axes never repeat: the points are the plain draws, one key per axis.
    key = jax.random.key(3)
    space = sweep.random(key, 5, lambd=sweep.loguniform(1e-3, 1.0), momentum=sweep.uniform(0, 1))
    k_lambd, k_momentum = jax.random.split(key, 2)
    u_lambd = np.asarray(jax.random.uniform(k_lambd, (5,)), np.float64)
    np.testing.assert_allclose([m["lambd"] for m in space], 1e-3 * 1000.0**u_lambd, rtol=1e-6)
    u = np.asarray(jax.random.uniform(k_momentum, (5,)))
    np.testing.assert_allclose([m["momentum"] for m in space], u, rtol=1e-6)


def test_a_space_that_repeats_a_member_is_refused():
    with pytest.raises(ValueError, match=r"members 0 and 2 of the space are the same point"):
        sweep.Space([{"lambd": 0.1}, {"lambd": 0.2}, {"lambd": 0.1, "seed": 0}])
    with pytest.raises(ValueError, match="same point with the same seed"):
        sweep.grid(lambd=[0.1, 0.2]) + sweep.grid(lambd=[0.2, 0.3])
    assert len(sweep.Space([{"lambd": 0.1, "seed": 0}, {"lambd": 0.1, "seed": 1}])) == 2
