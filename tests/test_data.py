import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxhp
from jaxhp import augment
from jaxhp.data import Normalizer, check_shift, split, split_indices


@pytest.mark.parametrize(
    "m, expected",
    [
        (100, (60, 20, 20)),
        (10_000, (6000, 2000, 2000)),
        (1_000_000, (980_000, 10_000, 10_000)),
        (3_000_000, (2_980_000, 10_000, 10_000)),
    ],
)
def test_auto_split_sizes_follow_the_course(m, expected):
    idx = split_indices(m, key=0, stratify=False)
    assert (len(idx.train), len(idx.dev), len(idx.test)) == expected
    if m <= 1_000_000:
        together = np.concatenate([idx.train, idx.dev, idx.test])
        assert len(np.unique(together)) == m  # disjoint and covering every row


def test_split_is_disjoint_covering_reproducible_and_stratified():
    rng = np.random.default_rng(0)
    y = rng.choice(3, size=997, p=[0.6, 0.3, 0.1])
    x = rng.normal(size=(997, 4))
    a = split(x, y, key=jax.random.key(5))
    b = split(x, y, key=jax.random.key(5))
    c = split(x, y, key=jax.random.key(6))
    for part in ("train", "dev", "test"):
        np.testing.assert_array_equal(getattr(a.indices, part), getattr(b.indices, part))
    assert not np.array_equal(a.indices.dev, c.indices.dev)
    rows = np.concatenate([a.indices.train, a.indices.dev, a.indices.test])
    assert np.array_equal(np.sort(rows), np.arange(997))
    for part in ("train", "dev", "test"):
        idx = getattr(a.indices, part)
        np.testing.assert_array_equal(getattr(a, part)[0], x[idx])
        for cls in range(3):
            exact = len(idx) * np.mean(y == cls)
            assert abs(np.sum(y[idx] == cls) - exact) <= 1 + 1e-9


def test_train_dev_split_and_explicit_ratios():
    x, y = np.zeros((1000, 2)), np.arange(1000) % 2
    s = split(x, y, key=1, train_dev=True)
    assert [
        len(i) for i in (s.indices.train, s.indices.train_dev, s.indices.dev, s.indices.test)
    ] == [400, 200, 200, 200]
    s = split(x, y, key=1, ratios=(0.7, 0.15, 0.15))
    assert (len(s.indices.train), len(s.indices.dev), len(s.indices.test)) == (700, 150, 150)
    assert isinstance(s.data(), jaxhp.Data)


def test_split_bad_input():
    x, y = np.zeros((100, 2)), np.arange(100) % 2
    with pytest.raises(ValueError, match="ratios must sum to 1"):
        split(x, y, key=0, ratios=(0.6, 0.2, 0.3))
    with pytest.raises(ValueError, match="dev set would have 0 examples"):
        split(x, y, key=0, ratios=(0.9, 0.0, 0.1))
    y_single = y.copy()
    y_single[0] = 7
    with pytest.raises(ValueError, match="class 7 has 1 example"):
        split(x, y_single, key=0)
    x_nan = x.copy()
    x_nan[42, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf, first at row 42"):
        split(x_nan, y, key=0)


def test_normalizer_uses_training_statistics_only(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.normal(loc=5.0, scale=2.0, size=(500, 3))
    x_dev = rng.normal(loc=-3.0, scale=0.5, size=(200, 3))  # shifted on purpose
    norm = Normalizer().fit(x_train)
    expected = (x_dev - x_train.mean(axis=0)) / x_train.std(axis=0)
    np.testing.assert_allclose(norm.transform(x_dev), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.transform(x_train).mean(axis=0), 0, atol=1e-5)
    # The dev set's own statistics are not used: it is far from mean 0 / std 1.
    assert abs(norm.transform(x_dev).mean()) > 3
    restored = Normalizer.load(norm.save(tmp_path / "norm.npz"))
    np.testing.assert_allclose(restored.transform(x_dev), norm.transform(x_dev))
    again = Normalizer.from_dict(norm.to_dict())
    np.testing.assert_allclose(
        again.inverse_transform(again.transform(x_dev)), x_dev, rtol=1e-5, atol=1e-5
    )


def test_normalizer_constant_feature_and_errors():
    x = np.column_stack([np.arange(10.0), np.full(10, 3.0)])
    norm = Normalizer().fit(x)
    np.testing.assert_array_equal(norm.constant_features, [1])
    out = norm.transform(np.array([[0.0, 4.0]]))
    assert np.isfinite(out).all() and out[0, 1] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not fitted"):
        Normalizer().transform(x)
    with pytest.raises(ValueError, match="feature shape \\(3,\\) but .* fitted on \\(2,\\)"):
        norm.transform(np.ones((4, 3)))
    with pytest.raises(ValueError, match="NaN or inf, first at row 1"):
        Normalizer().fit(np.array([[1.0, 2.0], [np.nan, 1.0]]))


def test_check_shift_false_alarm_rate():
    # 40 pairs from one distribution at alpha 0.05: P(more than 6 alarms) < 0.015 under a
    # correct 5% rate (binomial), so the bound is not tuned to pass.
    alarms = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        a, b = rng.normal(size=(400, 5)), rng.normal(size=(400, 5))
        alarms += check_shift(a, b, key=seed, n_permutations=200, steps=100).different
    assert alarms <= 6


def test_check_shift_detects_half_sigma_shift_in_one_of_twenty_features():
    detected = 0
    for seed in range(20):
        rng = np.random.default_rng(100 + seed)
        a, b = rng.normal(size=(2000, 20)), rng.normal(size=(2000, 20))
        b[:, 7] += 0.5
        report = check_shift(a, b, key=seed, n_permutations=200, steps=100)
        detected += report.different
        if seed == 0:
            assert report.top_features[0][0] == 7
            assert "feature 7" in str(report)
    assert detected >= 19  # at least 95% of seeds


def test_check_shift_bad_input():
    with pytest.raises(ValueError, match="different feature counts: 3 vs 4"):
        check_shift(np.ones((20, 3)), np.ones((20, 4)), key=0)


def _images(key, n=6, h=8, w=8, c=3):
    return jax.random.uniform(key, (n, h, w, c))


def test_flip_and_crop_keep_shapes_and_are_deterministic_per_key(key):
    x = _images(key)
    for op in (
        augment.random_flip,
        augment.random_crop,
        augment.random_rotation,
        augment.gaussian_noise,
    ):
        out = op(jax.random.key(1), x)
        assert out.shape == x.shape and out.dtype == x.dtype
        np.testing.assert_array_equal(out, op(jax.random.key(1), x))
        assert not np.array_equal(out, op(jax.random.key(2), x))


def test_augmentations_differ_across_examples(key):
    same = jnp.broadcast_to(_images(key, n=1), (16, 8, 8, 3))
    for op in (augment.random_flip, augment.random_crop, augment.gaussian_noise):
        out = np.asarray(op(jax.random.key(3), same))
        assert len({out[i].tobytes() for i in range(16)}) > 1


def test_flip_is_an_exact_mirror_and_crop_a_shift(key):
    x = _images(key, n=32)
    out = np.asarray(augment.random_flip(jax.random.key(4), x))
    xs = np.asarray(x)
    flipped = [np.array_equal(o, xi[:, ::-1]) for o, xi in zip(out, xs)]
    kept = [np.array_equal(o, xi) for o, xi in zip(out, xs)]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)
    crop = np.asarray(augment.random_crop(jax.random.key(5), x, padding=2))
    # Every cropped image is its source shifted by at most 2 pixels, zero-filled.
    for o, xi in zip(crop, xs):
        padded = np.pad(xi, ((2, 2), (2, 2), (0, 0)))
        assert any(
            np.array_equal(o, padded[t : t + 8, s : s + 8]) for t in range(5) for s in range(5)
        )


def test_augment_inside_training_and_composition(key):
    op = augment.for_flat_images(
        augment.compose(augment.random_flip, augment.gaussian_noise), (4, 4, 1)
    )
    x = jax.random.normal(key, (64, 16))
    y = (x[:, 0] > 0).astype(jnp.int32)
    config = jaxhp.TrainConfig(layer_sizes=(16, 8, 1), steps=20, augment=op)
    plain = jaxhp.fit(
        key, jaxhp.HParams(learning_rate=0.1), jaxhp.Data((x, y)), config.replace(augment=None)
    )
    augmented = jaxhp.fit(key, jaxhp.HParams(learning_rate=0.1), jaxhp.Data((x, y)), config)
    assert not np.allclose(plain.params[0].W, augmented.params[0].W)


def test_auc_matches_pair_counting():
    from jaxhp.data import _auc, _ranks

    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=60), 1)  # rounding makes ties
    labels = rng.integers(0, 2, 60)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    np.testing.assert_allclose(_auc(_ranks(scores), labels), pairs.mean(), rtol=1e-12)
