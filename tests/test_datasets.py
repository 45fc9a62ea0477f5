"""datasets.digits and load("digits") against scikit-learn's own arrays."""

import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

import jaxhp


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
    ],
)
def test_load_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jaxhp.datasets.load(**kwargs)


def test_digits_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match="pip install 'jaxhp\\[data\\]'"):
        jaxhp.datasets.digits()
