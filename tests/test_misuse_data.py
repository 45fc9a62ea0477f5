"""Misuse of the data, init, loss and diagnosis API: each bad input gets a ValueError or
TypeError that names the argument, raised before any work (no raw NumPy/JAX error)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxhp
from jaxhp import augment, datasets
from jaxhp.data import Normalizer, check_shift, split, split_indices
from jaxhp.diagnose import majority_error
from jaxhp.losses import logits_accuracy, targets

KEY = jax.random.key(0)
X = np.random.default_rng(0).normal(size=(40, 3))
Y = np.arange(40) % 2
IMAGES = jnp.ones((2, 4, 4, 1))
BINARY = jaxhp.init_mlp(KEY, (2, 3, 1))
MULTI = jaxhp.init_mlp(KEY, (2, 3, 3))
XB = jnp.ones((4, 2))
YB = jnp.array([0, 1, 1, 0])
FLAT_FLIP = augment.for_flat_images(augment.random_flip, (4, 4, 1))
TINY = jaxhp.TrainConfig(layer_sizes=(2, 3, 1), steps=1)
NOT_A_RESULT = {"train_error": 0.1, "dev_error": 0.2}

CASES = {
    # data.split / split_indices
    "split key string": (lambda: split(X, Y, key="abc"), TypeError, "key must be a PRNG key"),
    "split key float": (lambda: split(X, Y, key=0.5), TypeError, "key must be .* int seed"),
    "split 0 rows": (
        lambda: split(np.zeros((0, 3)), np.zeros(0), key=0),
        ValueError,
        r"x must be \(m, ...\) with m > 0 rows",
    ),
    "split strings": (lambda: split([["a", "b"]] * 10, Y[:10], key=0), TypeError, "x must hold"),
    "split ragged": (lambda: split([[1, 2], [3]], [0, 1], key=0), ValueError, "x must be a rect"),
    "split ratios number": (lambda: split(X, Y, key=0, ratios=0.5), TypeError, "ratios must"),
    "split NaN label": (  # was "class nan has 1 example"
        lambda: split(X, np.where(np.arange(len(Y)) == 3, np.nan, Y), key=0),
        ValueError,
        r"y must be finite labels, got nan at row 3",
    ),
    "split y 3-D": (
        lambda: split(X, np.zeros((40, 2, 2)), key=0),
        ValueError,
        r"y must be \(m,\) labels",
    ),
    "split rows differ": (lambda: split(X, Y[:30], key=0), ValueError, "x and y have diff"),
    "split_indices y rows": (
        lambda: split_indices(10, key=0, y=np.zeros(5)),
        ValueError,
        "y has 5 rows but m is 10",
    ),
    # Normalizer
    "normalizer mean only": (lambda: Normalizer(mean=[0.0]), ValueError, "got mean but no std"),
    "normalizer std only": (lambda: Normalizer(std=[1.0]), ValueError, "got std but no mean"),
    "normalizer negative std": (
        lambda: Normalizer([0.0, 0.0], [1.0, -1.0]),
        ValueError,
        "std must be >= 0, got -1.0",
    ),
    "normalizer shapes": (
        lambda: Normalizer([0.0, 0.0], [1.0]),
        ValueError,
        r"got mean \(2,\) and std \(1,\)",
    ),
    "normalizer min_std": (lambda: Normalizer(min_std="x"), TypeError, "min_std must be a num"),
    "normalizer strings": (
        lambda: Normalizer().fit(X).transform([["a"] * 3]),
        TypeError,
        "x must hold real numbers",
    ),
    "normalizer 0 rows": (
        lambda: Normalizer().fit(np.zeros((0, 3))),
        ValueError,
        "with m > 0, got shape",
    ),
    "normalizer inverse shape": (
        lambda: Normalizer().fit(X).inverse_transform(np.ones((2, 1))),
        ValueError,
        r"x has feature shape \(1,\) but .* fitted on \(3,\)",
    ),
    # check_shift
    "shift few rows": (
        lambda: check_shift(np.ones((5, 2)), np.ones((20, 2)), key=0),
        ValueError,
        "x_a 5 and x_b 20 rows",
    ),
    "shift alpha": (lambda: check_shift(X, X, key=0, alpha=1.5), ValueError, "alpha must be"),
    "shift alpha string": (lambda: check_shift(X, X, key=0, alpha="0.05"), TypeError, "alpha"),
    "shift permutations": (
        lambda: check_shift(X, X, key=0, n_permutations=0),
        ValueError,
        "n_permutations must be a positive int",
    ),
    "shift key": (lambda: check_shift(X, X, key="k"), TypeError, "key must be a PRNG key"),
    "shift strings": (lambda: check_shift([["a"]] * 20, X, key=0), TypeError, "x_a must hold"),
    # augment
    "flip p": (lambda: augment.random_flip(KEY, IMAGES, p=1.5), ValueError, "p must be in"),
    "flip 3-D batch": (
        lambda: augment.random_flip(KEY, jnp.ones((4, 4, 1))),
        ValueError,
        r"NHWC batches x \(N, H, W, C\), got shape \(4, 4, 1\)",
    ),
    "flip key": (lambda: augment.random_flip("k", IMAGES), TypeError, "key must be a PRNG key"),
    "crop padding": (
        lambda: augment.random_crop(KEY, IMAGES, padding=1.5),
        ValueError,
        "padding must be an int >= 0, got 1.5",
    ),
    "crop mode": (lambda: augment.random_crop(KEY, IMAGES, mode="mirror"), ValueError, "mode"),
    "rotation degrees": (
        lambda: augment.random_rotation(KEY, IMAGES, max_degrees=-5),
        ValueError,
        "max_degrees must be in",
    ),
    "noise int images": (
        lambda: augment.gaussian_noise(KEY, jnp.ones((2, 4, 4, 1), jnp.int32)),
        TypeError,
        "x must hold float images",
    ),
    "noise std": (lambda: augment.gaussian_noise(KEY, IMAGES, std=-0.1), ValueError, "std must"),
    "compose non-op": (
        lambda: augment.compose(augment.random_flip, "flip"),
        TypeError,
        "argument 1 is 'flip'",
    ),
    "flat shape": (
        lambda: augment.for_flat_images(augment.random_flip, (4, 4)),
        ValueError,
        r"shape must be \(H, W, C\)",
    ),
    "flat rows": (
        lambda: FLAT_FLIP(KEY, jnp.ones((2, 15))),
        ValueError,
        r"takes rows x \(m, 16\), got shape \(2, 15\)",
    ),
    # datasets generators
    "moons n": (lambda: datasets.moons(0), ValueError, "n must be a positive int, got 0"),
    "moons n string": (lambda: datasets.moons("10"), ValueError, "n must be a positive int"),
    "spirals classes": (
        lambda: datasets.spirals(10, classes=0),
        ValueError,
        "classes must be a positive int",
    ),
    "load name": (lambda: datasets.load("mnist"), ValueError, "unknown dataset 'mnist'"),
    "load noise string": (
        lambda: datasets.load("moons", noise="0.3"),
        TypeError,
        "noise must be a number, got '0.3'",
    ),
    # init_mlp
    "init key": (lambda: jaxhp.init_mlp("k", (2, 1)), TypeError, "key must be a PRNG key"),
    "init scale string": (
        lambda: jaxhp.init_mlp(KEY, (2, 1), scale="big"),
        TypeError,
        "scale must be a number",
    ),
    "init scale negative": (
        lambda: jaxhp.init_mlp(KEY, (2, 1), scale=-1.0),
        ValueError,
        "scale must be > 0",
    ),
    "init int dtype": (
        lambda: jaxhp.init_mlp(KEY, (2, 1), dtype=jnp.int32),
        TypeError,
        "dtype must be a float dtype",
    ),
    "init unknown dtype": (
        lambda: jaxhp.init_mlp(KEY, (2, 1), dtype="abc"),
        TypeError,
        "dtype must be a float dtype",
    ),
    # loss / cross_entropy / accuracy / predict
    "loss list x": (
        lambda: jaxhp.loss(BINARY, [[1.0, 2.0]], jnp.array([0])),
        TypeError,
        r"x must be an array \(m, n_x\), got list",
    ),
    "loss list y": (
        lambda: jaxhp.loss(BINARY, XB, [0, 1, 1, 0]),
        TypeError,
        "labels y must be an array",
    ),
    "loss 0 rows": (
        lambda: jaxhp.loss(BINARY, jnp.ones((0, 2)), jnp.ones((0,))),
        ValueError,
        "x has 0 rows",
    ),
    "loss string x": (
        lambda: jaxhp.loss(BINARY, np.array([["a", "b"]]), np.array([0])),
        TypeError,
        "x must hold real numbers",
    ),
    "loss complex x": (
        lambda: jaxhp.loss(BINARY, XB.astype(jnp.complex64), YB),
        TypeError,
        "x must hold real numbers, got dtype complex64",
    ),
    "loss binary (m, 2) labels": (
        lambda: jaxhp.loss(BINARY, XB, jnp.zeros((4, 2))),
        ValueError,
        r"labels y have shape \(4, 2\), but one output unit needs",
    ),
    "loss soft binary labels": (
        lambda: jaxhp.loss(BINARY, XB, jnp.full((4,), 0.5)),
        ValueError,
        "labels y must be 0 or 1 .*got 0.5 .*soft labels as \\(m, 2\\) rows",
    ),
    "loss (m, 2) labels for 3 classes": (
        lambda: jaxhp.loss(MULTI, XB, jnp.zeros((4, 2))),
        ValueError,
        r"with 3 outputs use \(m,\) class ids or \(m, 3\) one-hot",
    ),
    "cross_entropy (m, 1) targets": (
        lambda: jaxhp.cross_entropy(jnp.zeros((4, 1)), jnp.zeros((4, 1))),
        ValueError,
        r"t must have shape \(4,\), got \(4, 1\)",
    ),
    "cross_entropy 1-D logits": (
        lambda: jaxhp.cross_entropy(jnp.zeros(4), jnp.zeros(4)),
        ValueError,
        r"logits must be \(m, n_out\)",
    ),
    "cross_entropy weights": (
        lambda: jaxhp.cross_entropy(jnp.zeros((4, 1)), jnp.zeros(4), jnp.ones(3)),
        ValueError,
        r"weights must have shape \(4,\), got \(3,\)",
    ),
    "targets (m, 2) for one output": (
        lambda: targets(jnp.zeros((4, 2)), 1),
        ValueError,
        r"labels have shape \(4, 2\); with 1 output",
    ),
    "accuracy label 2 for one output": (
        lambda: jaxhp.accuracy(BINARY, XB, jnp.array([0, 1, 2, 0])),
        ValueError,
        "labels y must be 0 or 1",
    ),
    "accuracy rows": (
        lambda: jaxhp.accuracy(BINARY, XB, jnp.array([0, 1, 1])),
        ValueError,
        "x and its labels have different row counts: 4 vs 3",
    ),
    "logits_accuracy rows": (
        lambda: logits_accuracy(jnp.zeros((4, 1)), jnp.zeros(5)),
        ValueError,
        r"labels must have shape \(4,\), got \(5,\)",
    ),
    "predict features": (
        lambda: jaxhp.predict(BINARY, jnp.ones((4, 3))),
        ValueError,
        r"x has 3 features but the first layer takes 2",
    ),
    "predict 1-D x": (
        lambda: jaxhp.predict(BINARY, jnp.ones(2)),
        ValueError,
        r"x must be 2-D \(m, n_x\), got shape \(2,\)",
    ),
    "fit 0-row train set": (
        lambda: jaxhp.fit(
            KEY, jaxhp.HParams(), jaxhp.Data(train=(jnp.ones((0, 2)), jnp.ones((0,)))), TINY
        ),
        ValueError,
        "train x must have at least one row",
    ),
    "fit 0-row dev set": (
        lambda: jaxhp.fit(
            KEY,
            jaxhp.HParams(),
            jaxhp.Data(train=(XB, YB), dev=(jnp.ones((0, 2)), jnp.ones((0,)))),
            TINY,
        ),
        ValueError,
        "dev x must have at least one row",
    ),
    # diagnose
    "diagnose a string": (lambda: jaxhp.diagnose("0.1"), TypeError, "result must be a jaxhp"),
    "diagnose a dict": (lambda: jaxhp.diagnose(NOT_A_RESULT), TypeError, "result must be"),
    "diagnose string rate": (
        lambda: jaxhp.diagnose(train_error="0.1", dev_error=0.2),
        TypeError,
        "train_error must be a number, got '0.1'",
    ),
    "diagnose dict rate": (
        lambda: jaxhp.diagnose(train_error=0.1, dev_error={"a": 1}),
        TypeError,
        "dev_error must be a number",
    ),
    "diagnose NaN rate": (
        lambda: jaxhp.diagnose(train_error=float("nan"), dev_error=0.2),
        ValueError,
        "train_error must be a finite number",
    ),
    "diagnose bayes 5": (
        lambda: jaxhp.diagnose(train_error=0.1, dev_error=0.2, bayes_error=5),
        ValueError,
        r"bayes_error must be an error rate in \[0, 1\), got 5.0",
    ),
    "diagnose result and rates": (
        lambda: jaxhp.diagnose(
            jaxhp.TrainResult(None, None, None, 0, False, 0), train_error=0.1, dev_error=0.1
        ),
        ValueError,
        "pass either result or train_error/dev_error",
    ),
    "diagnose threshold": (
        lambda: jaxhp.diagnose(train_error=0.1, dev_error=0.2, threshold="a"),
        TypeError,
        "threshold must be a number",
    ),
    "diagnose chance_error": (
        lambda: jaxhp.diagnose(train_error=0.1, dev_error=0.2, chance_error=2),
        ValueError,
        "chance_error must be an error rate",
    ),
    "diagnose diverged string": (
        lambda: jaxhp.diagnose(train_error=0.1, dev_error=0.2, diverged="no"),
        TypeError,
        "diverged must be True or False, got 'no'",
    ),
    "majority_error empty": (lambda: majority_error(np.zeros(0)), ValueError, "y has 0 labels"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_misuse_gets_a_clear_error(name):
    call, error, fragment = CASES[name]
    with pytest.raises(error, match=fragment):
        call()


def test_a_sweep_result_is_not_a_train_result():
    history = jaxhp.History(*(np.zeros((3, 2)) for _ in range(5)))
    sweep_like = jaxhp.TrainResult(None, None, history, 0, np.zeros(3, bool), 0)
    with pytest.raises(ValueError, match=r"result holds 3 runs .* results.diagnosis\(member\)"):
        jaxhp.diagnose(sweep_like)


def test_int_keys_are_seeds_and_lists_are_arrays():
    # Accepted on purpose: an int key is jax.random.key(seed); lists become arrays.
    np.testing.assert_array_equal(
        jaxhp.init_mlp(3, (2, 2))[0].W, jaxhp.init_mlp(jax.random.key(3), (2, 2))[0].W
    )
    a = split(X.tolist(), Y.tolist(), key=7)
    b = split(X, Y, key=jax.random.key(7))
    np.testing.assert_array_equal(a.indices.dev, b.indices.dev)
    np.testing.assert_array_equal(
        augment.random_flip(1, np.asarray(IMAGES).tolist()), augment.random_flip(1, IMAGES)
    )
