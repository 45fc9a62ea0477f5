"""datasets.digits and load("digits") against scikit-learn's own arrays; the Bayes error of
the 2-D generators against the Bayes classifier's error on fresh draws."""

import functools
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

import jaxhp
from jaxhp import datasets


def test_digits_are_sklearns_images_as_nhwc_in_unit_range():
    x, y = jaxhp.datasets.digits()
    reference = load_digits()
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32
    assert y.dtype == np.int32
    np.testing.assert_array_equal(x[..., 0] * 16, reference.images)
    np.testing.assert_array_equal(y, reference.target)
    assert x.min() == 0.0 and x.max() == 1.0


def test_load_digits_deals_disjoint_seeded_sets():
    data = jaxhp.datasets.load("digits", n_train=1200, n_dev=500, n_test=97, seed=3)
    reference = load_digits()
    # Together the three sets are sklearn's (image, label) rows, each once: compare the
    # rows sorted.
    dealt = np.concatenate([np.column_stack([x.reshape(len(x), -1) * 16, y]) for x, y in data])
    expected = np.column_stack([reference.images.reshape(1797, -1), reference.target])
    np.testing.assert_array_equal(dealt[np.lexsort(dealt.T)], expected[np.lexsort(expected.T)])
    assert jaxhp.datasets.n_classes("digits") == 10
    again = jaxhp.datasets.load("digits", n_train=1200, n_dev=500, n_test=97, seed=3)
    np.testing.assert_array_equal(again.dev[0], data.dev[0])
    other = jaxhp.datasets.load("digits", n_train=1200, n_dev=500, n_test=97, seed=4)
    assert not np.array_equal(other.dev[1], data.dev[1])


def test_load_digits_defaults_and_empty_sets():
    data = jaxhp.datasets.load("digits")
    assert [len(s[1]) for s in data] == [1197, 300, 300]
    data = jaxhp.datasets.load("digits", n_train=100, n_dev=0, n_test=0)
    assert len(data.train[1]) == 100 and data.dev is None and data.test is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(name="mnist"), "unknown dataset 'mnist'; allowed: 'moons', .*'spirals', 'digits'"),
        (dict(name="digits", n_train=1500, n_dev=300), "= 2100 exceeds the 1797 images"),
        (dict(name="digits", noise=0.1), "digits dataset has no noise parameter"),
        (dict(name="digits", n_dev=-1), "n_dev must be an int >= 0, got -1"),
        (dict(name="moons", n_dev=-1), "n_dev must be an int >= 0, got -1"),
        (dict(name="digits", n_test=True), "n_test must be an int >= 0, got True"),
        (dict(name="moons", n_train="600"), "n_train must be a positive int, got '600'"),
        (dict(name="circles", noise=-1), r"noise must be in \[0.0, inf\], got -1.0"),
        (dict(name="moons", seed=-1), "seed must be an int >= 0, got -1"),
        (dict(name="digits", seed=True), "seed must be an int >= 0, got True"),
        (dict(name="spirals", seed=1.5), "seed must be an int >= 0, got 1.5"),
    ],
)
def test_load_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jaxhp.datasets.load(**kwargs)
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -2"):
        jaxhp.datasets.moons(10, seed=-2)


def test_sizes_may_be_numpy_ints_for_every_dataset():
    for name in ("digits", "moons"):
        data = jaxhp.datasets.load(name, n_train=np.int64(60), n_dev=np.int64(20), n_test=0)
        assert (len(data.train[1]), len(data.dev[1]), data.test) == (60, 20, None)


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install 'jaxhp\\[data\\]'"):
        jaxhp.datasets.digits()


@pytest.mark.parametrize("name, noise", [("moons", 0.25), ("circles", 0.1)])
def test_bayes_error_is_the_error_of_the_bayes_classifier_on_fresh_draws(name, noise):
    """An independent check of the class densities: the classifier that picks the class
    of larger density, scored on fresh labelled draws of the generator, errs at the rate
    bayes_error states (within three binomial standard errors)."""
    bayes = datasets.bayes_error(name, noise)
    x, y = datasets.GENERATORS[name](10_000, noise=noise, seed=99)
    curves, span = datasets._CURVES[name]
    theta = np.linspace(0, span, 720, endpoint=False)
    density = [
        np.exp(-((x[:, None, :] - c[None]) ** 2).sum(-1) / (2 * noise**2)).mean(1)
        for c in curves(theta)
    ]
    errors = np.mean((density[1] > density[0]).astype(int) != y)
    assert abs(errors - bayes) < 3 * np.sqrt(bayes * (1 - bayes) / len(y)) + 0.003
    assert 0.0 < bayes < 0.5


@pytest.mark.parametrize(
    "name, noise, shape",
    [
        ("flower", 0.2, {}),
        ("flower", 0.5, {}),
        ("flower", 1.5, {}),  # the angles' Fourier series
        ("spirals", 0.5, {}),
        ("spirals", 1, {"classes": 5}),
    ],
)
def test_bayes_error_of_flower_and_spirals_against_nearest_neighbours(name, noise, shape):
    """Petals and spiral arms are blurred along their angle, not isotropically, so their
    class densities come from the generators' own polar models. Two checks independent of
    those densities: on fresh labelled draws, the densities' own classifier errs at the
    rate bayes_error states, and a 50-nearest-neighbour vote over 300,000 other draws (a
    classifier that knows nothing of the model) errs at about that rate, not far below
    it, nor more than a little above (it approaches the Bayes classifier from above)."""
    spatial = pytest.importorskip("scipy.spatial")
    bayes = datasets.bayes_error(name, noise, **shape)
    generate = functools.partial(datasets.GENERATORS[name], noise=noise, **shape)
    x, y = generate(20_000, seed=99)
    margin = 3 * np.sqrt(bayes * (1 - bayes) / len(y)) + 0.003  # + the estimate's own noise
    by_density = np.mean(datasets.class_densities(name, x, noise, **shape).argmax(0) != y)
    assert abs(by_density - bayes) < margin
    known_x, known_y = generate(300_000, seed=98)
    _, nearest = spatial.cKDTree(known_x).query(x, k=50)
    votes = np.stack([(known_y[nearest] == c).sum(1) for c in range(int(y.max()) + 1)])
    by_neighbours = np.mean(votes.argmax(0) != y)
    assert bayes - margin < by_neighbours < bayes + margin + 0.005
    assert bayes > 0.04


def test_bayes_error_grows_with_the_noise_and_is_refused_where_unknown():
    low, high = datasets.bayes_error("moons", 0.1), datasets.bayes_error("moons", 0.3)
    assert 0 <= low < 0.005 < high  # at noise 0.1 the moons barely overlap
    assert datasets.bayes_error("moons", 0.0) == 0.0
    assert datasets.bayes_error("flower", 0.1) < datasets.bayes_error("flower", 0.3)
    # the spiral arms lie 1.7 radians apart or more: at noise 0.1 they never meet
    assert datasets.bayes_error("spirals", 0.1) < 1e-6
    # noise far wider than a turn leaves nothing to tell the classes apart: chance level
    for name, chance in (("flower", 1 / 2), ("spirals", 2 / 3), ("moons", 1 / 2)):
        assert datasets.bayes_error(name, 1e4) == pytest.approx(chance, abs=1e-3)
        assert datasets.bayes_error(name, 1e200) == pytest.approx(chance, abs=1e-3)
        # a vanishing noise leaves the classes apart, though every density underflows
        assert datasets.bayes_error(name, 1e-8) < 1e-3
    # a point far from every class still gets its posterior odds (the nearer class wins)
    np.testing.assert_array_equal(
        datasets.class_densities("moons", [[10.0, 0.0]], 0.05), [[0], [1]]
    )
    with pytest.raises(ValueError, match=r"noise must be in \[0, inf\], got -0.1"):
        datasets.bayes_error("flower", -0.1)
    with pytest.raises(ValueError, match="known for the 2-D generators moons, circles, flower"):
        datasets.bayes_error("digits")
    with pytest.raises(ValueError, match=r"x must be \(n, 2\) points, got shape \(4, 3\)"):
        datasets.class_densities("flower", np.zeros((4, 3)))


@pytest.mark.parametrize("noise", [0.5, 1.5])  # the sum of 2 pi k copies; the Fourier series
@pytest.mark.parametrize("span", [0.0, datasets._PETAL])
def test_wrapped_angle_density_against_a_histogram_of_draws(noise, span):
    """The angle density both the flower and the spirals use, against a histogram of
    200,000 draws of (centre + U(-span/2, span/2) + N(0, noise^2)) mod 2 pi."""
    rng = np.random.default_rng(0)
    draws = 1.0 + rng.uniform(-span / 2, span / 2, 200_000) + noise * rng.standard_normal(200_000)
    counts, edges = np.histogram(np.mod(draws, 2 * np.pi), bins=40, range=(0, 2 * np.pi))
    middles = (edges[:-1] + edges[1:]) / 2
    expected = np.exp(datasets._log_wrapped(middles, 1.0, span, noise)) * (edges[1] - edges[0])
    z_scores = (counts / 200_000 - expected) / np.sqrt(expected / 200_000)
    assert np.abs(z_scores).max() < 5
