"""Static axes: members grouped by TrainConfig fields, one program per group, one table."""

import jax
import numpy as np
import pytest
from conftest import assert_close

import jaxhp
from jaxhp import sweep

CONFIG = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=12, eval_every=4)


@pytest.fixture(scope="module")
def data():
    return jaxhp.datasets.load("moons", n_train=60, n_dev=30, n_test=0, noise=0.2)


def _standalone(results, i, data, config):
    hp = jax.tree.map(lambda v: v[i], results.hparams)
    return jaxhp.fit(sweep.member_key(0, int(results.seeds[i])), hp, data, config)


def test_layer_sizes_axis_one_program_per_value(data):
    sizes = [(2, 4, 1), (2, 6, 3, 1)]
    space = sweep.grid(layer_sizes=sizes, lambd=[0.0, 0.3], keep_prob=[0.8])
    results = jaxhp.run_sweep(space, data, CONFIG, progress=False)
    assert results.meta["programs"] == 2
    assert results.static == {"layer_sizes": [sizes[0]] * 2 + [sizes[1]] * 2}
    assert [row["layer_sizes"] for row in results.table()] == ["2-4-1"] * 2 + ["2-6-3-1"] * 2
    for i in range(4):
        single = _standalone(
            results, i, data, CONFIG.replace(layer_sizes=results.static["layer_sizes"][i])
        )
        assert_close(
            jax.tree.map(lambda a: a[i], results.history), single.history, rtol=1e-6, atol=1e-7
        )
    # The deeper net really is a different model: its costs differ from the shallow one's.
    assert not np.allclose(results.history.train_cost[0], results.history.train_cost[2])


def test_a_model_axis_keeps_each_model_and_labels_them_apart(data):
    """sweep.grid(model=[m1, m2]): each member trains its own model (as a plain fit with
    that model), and the table tells the two apart (both would read as "Model")."""
    models = [jaxhp.models.mlp((2, 4, 1)), jaxhp.models.mlp((2, 6, 1))]
    config = jaxhp.TrainConfig(model=models[0], steps=12, eval_every=4)
    space = sweep.grid(model=models, lambd=[0.0, 0.3])
    results = jaxhp.run_sweep(space, data, config, progress=False)
    assert [row["model"] for row in results.table()] == ["Model#1"] * 2 + ["Model#2"] * 2
    for i in range(4):
        alone = _standalone(results, i, data, config.replace(model=models[i // 2]))
        assert_close(results.history.dev_cost[i], alone.history.dev_cost, rtol=1e-5)


def test_batch_size_optimizer_and_steps_axes(data, tmp_path):
    space = sweep.grid(batch_size=[20], optimizer=["adam"], steps=[8], lambd=[0.0, 0.1])
    space = space + sweep.grid(batch_size=[None], optimizer=["sgd"], steps=[12], lambd=[0.1])
    results = jaxhp.run_sweep(space, data, CONFIG, progress=False)
    assert results.meta["programs"] == 2
    assert results.static["optimizer"] == ["adam", "adam", "sgd"]
    # None (full batch, the config's default) is a value like any other in the table
    assert [row["batch_size"] for row in results.table()] == [20, 20, "None"]
    assert [s["batch_size"] for s in results.summary()].count("None") == 1
    lines = results.to_csv(tmp_path / "r.csv").read_text().splitlines()
    assert [line.split(",")[lines[0].split(",").index("batch_size")] for line in lines[1:]] == [
        "20",
        "20",
        "None",
    ]
    for i in (1, 2):
        static = {k: v[i] for k, v in results.static.items()}
        config = CONFIG.replace(**static)
        single = _standalone(results, i, data, config)
        # Fewer evaluations (steps=8) are padded by repeating the last one.
        n = config.n_evals
        assert_close(results.history.train_cost[i, :n], single.history.train_cost, rtol=1e-6)
        assert np.all(results.history.train_cost[i, n:] == single.history.train_cost[-1])
        assert results.stop_step[i] == config.steps


@pytest.mark.parametrize(
    "space, match",
    [
        (
            sweep.grid(layer_sizes=[(2, 4, 1), (3, 4, 1)]),
            r"member 1 of the sweep.*first layer takes 3 \(layer_sizes\[0\]",
        ),
        (
            sweep.grid(batch_size=[10, 0]),
            r"member 1 of the sweep has an invalid static value.*batch_size",
        ),
        (sweep.grid(optimizer=["sgd", "adamw"]), r"member 1 .*unknown optimizer 'adamw'"),
        (sweep.grid(steps=[10, 2]), r"member 1 .*eval_every must be <= steps"),
    ],
)
def test_invalid_static_value_names_the_member(data, space, match):
    with pytest.raises(ValueError, match=match):
        jaxhp.run_sweep(space, data, CONFIG.replace(eval_every=4), progress=False)


def test_a_name_that_only_one_static_group_reads_is_used(data, recwarn):
    # "sgd" reads no momentum, "momentum" does: the axis is not unknown, nor the base unread
    space = sweep.grid(optimizer=["sgd", "momentum"], momentum=[0.5, 0.9])
    results = jaxhp.run_sweep(space, data, CONFIG, progress=False)
    assert not [w for w in recwarn if "momentum" in str(w.message)]
    costs = results.history.train_cost
    assert np.array_equal(costs[0], costs[1])  # sgd: the momentum changes nothing
    assert not np.allclose(costs[2], costs[3], rtol=1e-4)  # momentum: it does
    jaxhp.run_sweep(
        sweep.grid(optimizer=["sgd", "momentum"]), data, CONFIG, progress=False,
        base=jaxhp.HParams(momentum=0.7),
    )  # fmt: skip
    assert not [w for w in recwarn if "base has" in str(w.message)]
