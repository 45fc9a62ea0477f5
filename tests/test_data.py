import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import scipy.stats
from conftest import assert_close

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
    for name in ("norm.npz", "plain"):  # np.savez appends .npz: save returns what it wrote
        restored = Normalizer.load(norm.save(tmp_path / name))
        np.testing.assert_allclose(restored.transform(x_dev), norm.transform(x_dev))
    assert (tmp_path / "plain.npz").is_file()
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
    # a feature that varies below min_std is not left unscaled silently (small units?)
    tiny = np.random.default_rng(0).normal(0.0, 1e-9, (100, 1))
    with pytest.warns(UserWarning, match=r"feature 0: std 9.*e-10\) and are treated as const"):
        assert Normalizer().fit(tiny).constant_features.tolist() == [0]
    small = Normalizer(min_std=1e-12).fit(tiny)  # as the warning says: scaled
    assert np.std(small.transform(tiny)) == pytest.approx(1.0, rel=1e-5)
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


def test_ks_p_values_match_scipy_and_a_hand_case():
    from jaxhp.data import _ks_two_sample

    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 4))
    b = rng.normal(size=(45, 4))
    b[:, 1] += 0.8
    b[:15, 2] = a[:15, 2]  # shared values: ties between the samples
    stats, p = _ks_two_sample(a, b)
    for j in range(4):
        reference = scipy.stats.ks_2samp(a[:, j], b[:, j])
        assert stats[j] == pytest.approx(reference.statistic, rel=1e-12)
        assert p[j] == pytest.approx(reference.pvalue, rel=1e-9)
    # Hand case: every a below every b (n = m = 5) gives D = 1, and of the C(10, 5) equally
    # likely orderings only 2 reach D = 1, so p = 2 / 252.
    stats, p = _ks_two_sample(np.arange(5.0)[:, None], np.arange(5.0, 10.0)[:, None])
    assert stats[0] == 1.0 and p[0] == pytest.approx(2 / 252, rel=1e-9)
    # D = 0 (a constant feature, e.g. an image border) means p = 1, never "different".
    stats, p = _ks_two_sample(np.ones((40, 2)), np.ones((50, 2)))
    np.testing.assert_array_equal(stats, [0.0, 0.0])
    np.testing.assert_array_equal(p, [1.0, 1.0])


def test_check_shift_with_constant_features_is_not_a_false_alarm():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(60, 3)), rng.normal(size=(60, 3))
    a[:, 0] = b[:, 0] = 0.0  # a constant border pixel in both sets
    report = check_shift(a, b, key=0, n_permutations=100, steps=20)
    assert report.ks_statistic[0] == 0.0 and report.ks_p_value[0] == 1.0
    assert not report.different


def test_normalizer_from_explicit_statistics():
    norm = Normalizer(mean=[1.0, 2.0, 3.0], std=[2.0, 0.0, 4.0])
    np.testing.assert_array_equal(norm.constant_features, [1])  # an explicit 0 is constant
    out = norm.transform(np.array([[5.0, 7.0, 3.0]]))
    np.testing.assert_allclose(out, [[2.0, 5.0, 0.0]])  # (5-1)/2, (7-2)/1, (3-3)/4
    np.testing.assert_allclose(norm.inverse_transform(out), [[5.0, 7.0, 3.0]])
    np.testing.assert_allclose(norm.inverse_transform(np.zeros((2, 3))), [[1, 2, 3]] * 2)
    with pytest.raises(ValueError, match=r"feature shape \(1,\) but .* fitted on \(3,\)"):
        norm.inverse_transform(np.ones((4, 1)))  # not broadcast to 3 features


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


def _angles(key, n, max_degrees):
    """The documented draw: example i rotates by uniform(split(key, n)[i], ±max_degrees)."""
    keys = jax.random.split(key, n)
    return np.array(
        [float(jax.random.uniform(k, minval=-max_degrees, maxval=max_degrees)) for k in keys]
    )


def test_rotation_matches_scipy_and_turns_clockwise_by_the_drawn_angle():
    size, centre = 15, 7
    rows, cols = np.mgrid[0:size, 0:size]
    blob = np.exp(-((rows - centre) ** 2 + (cols - centre - 3) ** 2) / 2.0)  # 3 px right
    x = np.broadcast_to(np.stack([blob, 2 * blob], -1), (8, size, size, 2)).astype(np.float32)
    key = jax.random.key(3)
    out = np.asarray(augment.random_rotation(key, x, max_degrees=90.0))
    angles = _angles(key, 8, 90.0)
    assert angles.min() < -30 and angles.max() > 30  # both directions are exercised
    for image, degrees in zip(out, angles):
        # scipy turns counter-clockwise (as displayed) for a positive angle.
        reference = scipy.ndimage.rotate(blob, -degrees, reshape=False, order=1, cval=0.0)
        np.testing.assert_allclose(image[..., 0], reference, atol=1e-3)
        np.testing.assert_allclose(image[..., 1], 2 * reference, atol=2e-3)
        # Closed form: the blob's centre moves from (0, 3) to 3 (sin θ, cos θ) (row, col).
        mass = image[..., 0].sum()
        theta = np.deg2rad(degrees)
        centroid = ((image[..., 0] * rows).sum() / mass, (image[..., 0] * cols).sum() / mass)
        np.testing.assert_allclose(
            centroid, (centre + 3 * np.sin(theta), centre + 3 * np.cos(theta)), atol=0.05
        )


def test_gaussian_noise_is_additive_with_the_given_std(key):
    x = _images(key, n=4, h=32, w=32, c=3)
    std = 0.3
    noise = np.asarray(augment.gaussian_noise(jax.random.key(9), x, std=std) - x, np.float64)
    shifted = augment.gaussian_noise(jax.random.key(9), x + 1.0, std=std) - (x + 1.0)
    np.testing.assert_allclose(shifted, noise, atol=1e-5)  # independent of the image
    n = noise[0].size
    for example in noise:
        # Sample std of n normals: relative sd 1 / sqrt(2 n); allow 5 sds.
        assert abs(example.std() / std - 1) < 5 / np.sqrt(2 * n)
        assert abs(example.mean()) < 5 * std / np.sqrt(n)
    corr = np.corrcoef(noise.reshape(4, -1))[np.triu_indices(4, 1)]
    assert np.abs(corr).max() < 5 / np.sqrt(n)  # independent across examples


def test_training_applies_augment_to_every_batch(key):
    # Negating every training batch must train exactly like training on -x (evaluation
    # sees clean data, so only params are compared); an ignored augment trains on +x.
    x = jax.random.normal(key, (64, 16))
    y = (x[:, 0] > 0).astype(jnp.int32)
    config = jaxhp.TrainConfig(layer_sizes=(16, 8, 1), steps=20, eval_every=20)
    hp = jaxhp.HParams(learning_rate=0.1)
    negated = jaxhp.fit(key, hp, jaxhp.Data((x, y)), config.replace(augment=lambda k, b: -b))
    on_minus_x = jaxhp.fit(key, hp, jaxhp.Data((-x, y)), config)
    assert_close(negated.params, on_minus_x.params, rtol=1e-6, atol=1e-7)


def test_compose_applies_each_op_with_its_own_key(key):
    x = _images(key, n=4)
    op = augment.compose(augment.random_flip, augment.gaussian_noise)
    k_flip, k_noise = jax.random.split(jax.random.key(2))
    expected = augment.gaussian_noise(k_noise, augment.random_flip(k_flip, x))
    np.testing.assert_array_equal(op(jax.random.key(2), x), expected)
    flat = augment.for_flat_images(op, (8, 8, 3))
    np.testing.assert_array_equal(
        flat(jax.random.key(2), x.reshape(4, -1)), np.asarray(expected).reshape(4, -1)
    )


def test_auc_matches_pair_counting():
    from jaxhp.data import _auc, _ranks

    rng = np.random.default_rng(3)
    scores = np.round(rng.normal(size=60), 1)  # rounding makes ties
    labels = rng.integers(0, 2, 60)
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    np.testing.assert_allclose(_auc(_ranks(scores), labels), pairs.mean(), rtol=1e-12)


def test_printing_data_shows_shapes_not_values():
    x, y = np.zeros((1000, 2), np.float32), np.zeros(1000, np.int32)
    weights = np.ones(1000)
    data = jaxhp.Data((x, y, weights), ([[0.5, 1.5]], [1]))
    assert repr(data) == (
        "Data(train=(float32[1000, 2], int32[1000], float64[1000]), "
        "dev=(float64[1, 2], int64[1]), test=None)"
    )


def test_printing_a_train_result_summarises_its_arrays():
    history = jaxhp.History(*(np.zeros(5, np.float32) for _ in jaxhp.History._fields))
    params = {"W": np.zeros((20, 2)), "b": np.zeros(20)}
    result = jaxhp.TrainResult(params, params, history, np.int32(50), np.False_, np.int32(40))
    assert repr(result) == (
        "TrainResult(params=<2 arrays, 60 values>, best_params=<2 arrays, 60 values>, "
        "history=<5 evaluations>, stop_step=50, diverged=False, best_step=40)"
    )


def test_a_csv_with_a_one_cell_title_line_still_loads(tmp_path):
    """A first line of words (a title, or a header with spaces) before comma-separated rows
    is a header, not a sign of another separator."""
    path = tmp_path / "titled.csv"
    path.write_text("my data\n" + "0.1,0.2,0\n0.3,0.4,1\n" * 3)
    x, y = jaxhp.data.load_file(path)
    np.testing.assert_array_equal(x, np.tile(np.float32([[0.1, 0.2], [0.3, 0.4]]), (3, 1)))
    np.testing.assert_array_equal(np.ravel(y), [0, 1] * 3)


def test_check_shift_warns_that_integer_ids_are_compared_as_numbers():
    """Even ids against odd ids: disjoint vocabularies, yet alike as numbers (no shift
    found). The warning says so; float features get none."""
    rng = np.random.default_rng(0)
    evens, odds = rng.integers(0, 25, (60, 3)) * 2, rng.integers(0, 25, (60, 3)) * 2 + 1
    with pytest.warns(UserWarning, match="x_a holds integers: check_shift compares them as num"):
        report = check_shift(evens, odds, key=0, n_permutations=50, steps=20)
    assert not report.different  # why the warning is needed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_shift(evens + 0.0, odds + 0.0, key=0, n_permutations=50, steps=20)
        pixels = (evens * 5).astype(np.uint8)  # uint8: pixel values, numbers indeed
        check_shift(pixels, pixels[::-1], key=0, n_permutations=50, steps=20)
