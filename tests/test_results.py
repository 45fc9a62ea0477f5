"""SweepResults without training: tables built by hand, checked against independent code."""

import csv
import json

import numpy as np
import pytest

from jaxhp import diagnose, sweep
from jaxhp.records import History, HParams
from jaxhp.results import SweepResults, short_float


def _results(dev_acc, dev_cost, *, best_step=None, diverged=None, keep=None, seeds=None, **meta):
    """A sweep of N members with 3 evaluations at steps 10, 20, 30; the last row holds the
    given final values."""
    dev_acc = np.asarray(dev_acc, np.float32)
    n = len(dev_acc)
    rng = np.random.default_rng(0)
    history = History(
        step=np.tile(np.asarray([10, 20, 30], np.int32), (n, 1)),
        train_cost=rng.uniform(0.1, 1, (n, 3)).astype(np.float32),
        train_accuracy=rng.uniform(0.5, 1, (n, 3)).astype(np.float32),
        dev_cost=np.column_stack([np.full(n, 0.9), np.full(n, 0.8), dev_cost]).astype(np.float32),
        dev_accuracy=np.column_stack([np.full(n, 0.5), np.full(n, 0.6), dev_acc]).astype(
            np.float32
        ),
    )
    return SweepResults(
        hparams=HParams(
            lambd=np.linspace(0, 1, n, dtype=np.float32),
            keep_prob=np.ones(n, np.float32) if keep is None else np.asarray(keep, np.float32),
            learning_rate=np.full(n, 0.1, np.float32),
        ),
        seeds=np.zeros(n, np.int64) if seeds is None else np.asarray(seeds),
        history=history,
        stop_step=np.full(n, 30),
        best_step=np.full(n, 30) if best_step is None else np.asarray(best_step),
        diverged=np.zeros(n, bool) if diverged is None else np.asarray(diverged),
        meta=meta,
    )


def test_best_and_top_rank_by_the_metric_then_the_dev_cost():
    rng = np.random.default_rng(1)
    n = 40
    acc = rng.choice([0.9, 0.925, 0.95], n)  # many ties, as on a small dev set
    cost = rng.choice([0.2, 0.3, 0.25], n)  # ties in the tie-break too: member index decides
    diverged = rng.random(n) < 0.2
    results = _results(acc, cost, diverged=diverged)
    acc32, cost32 = acc.astype(np.float32), cost.astype(np.float32)
    expected = sorted(
        (i for i in range(n) if not diverged[i]), key=lambda i: (-acc32[i], cost32[i], i)
    )
    assert [r["member"] for r in results.top(n)] == expected
    assert results.best()["member"] == expected[0]
    by_cost = sorted(
        (i for i in range(n) if not diverged[i]), key=lambda i: (cost32[i], -acc32[i], i)
    )
    assert [r["member"] for r in results.top(5, metric="dev_cost")] == by_cost[:5]
    with pytest.raises(ValueError, match="unknown metric 'accuracy'; allowed: train_accuracy"):
        results.best("accuracy")


def test_every_member_diverged_is_a_clear_error():
    results = _results([0.5, 0.5], [0.7, 0.7], diverged=[True, True])
    with pytest.raises(ValueError, match="every member of the sweep diverged"):
        results.best()


def test_best_columns_are_read_at_best_step():
    # Member 0: the lowest dev cost is the last row (0.7), but min_delta kept best_step at
    # 20 (cost 0.8, accuracy 0.6): every best_* column must describe step 20.
    # Member 1: no evaluation ever improved (best_step 0): the best_* columns are NaN.
    results = _results([0.9, 0.9], [0.7, 0.7], best_step=[20, 0])
    cols = results.columns()
    assert cols["best_step"].tolist() == [20, 0]
    assert cols["best_dev_cost"][0] == np.float32(0.8)
    assert cols["best_dev_accuracy"][0] == np.float32(0.6)
    assert cols["best_train_accuracy"][0] == results.history.train_accuracy[0, 1]
    assert np.isnan(cols["best_dev_cost"][1]) and np.isnan(cols["best_dev_accuracy"][1])
    # ranked by the accuracy at best_step, member 1 (NaN) is not ranked at all
    assert [r["member"] for r in results.top(5, metric="best_dev_accuracy")] == [0]


def test_csv_holds_the_shortest_text_that_round_trips_float32(tmp_path):
    rng = np.random.default_rng(2)
    values = np.concatenate(
        [[0.3, 0.1, 1e-30, 123456.78, 0.7, np.float32(2) / 3], rng.uniform(0, 1, 10)]
    ).astype(np.float32)
    results = _results(values, values)
    path = results.to_csv(tmp_path / "r.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["dev_accuracy"] == "0.3" and rows[4]["dev_accuracy"] == "0.7"
    for row, stored in zip(rows, values):
        text = row["dev_accuracy"]
        assert np.float32(text) == stored  # reads back exactly
        digits = len(text.lower().split("e")[0].replace("-", "").replace(".", "").strip("0"))
        for fewer in range(1, digits):  # no shorter decimal reads back as the same float32
            assert np.float32(f"{float(stored):.{fewer - 1}e}") != stored, (text, fewer)
    assert rows[0]["keep_prob"] == "1.0" and rows[0]["learning_rate"] == "0.1"
    assert short_float(np.float32(np.inf)) == "inf"


def _configurations(acc_by_config, m_dev):
    """One configuration (a lambd) per list of accuracies, one member per seed."""
    acc = [a for accs in acc_by_config for a in accs]
    seeds = [s for accs in acc_by_config for s in range(len(accs))]
    results = _results(acc, [0.3] * len(acc), seeds=seeds, m_dev=m_dev)
    lambd = [float(k) for k, accs in enumerate(acc_by_config) for _ in accs]
    results.hparams = results.hparams._replace(lambd=np.asarray(lambd, np.float32))
    return results


def test_within_noise_compares_every_gap_with_one_pooled_noise_level():
    """A configuration whose seeds scatter widely is not within noise of the best just for
    that, while a steadier and closer one is: one noise level for every row, the seeds'
    std pooled over the better half (here A and B), not each pair's larger std."""
    a, b, c, d = [0.97, 0.965], [0.97, 0.96], [0.99, 0.87], [0.80, 0.60]
    rows = _configurations([a, b, c, d], m_dev=200).summary()
    assert [r["lambd"] for r in rows] == [0.0, 1.0, 2.0, 3.0]
    pooled = np.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)  # equal degrees of freedom
    assert rows[0]["noise"] == pytest.approx(max(1 / 200, pooled), rel=1e-6)
    # gaps 0, 0.0025, 0.0375 (c: std 0.085), 0.2675
    assert [r["within_noise"] for r in rows] == [True, True, False, False]


def test_a_best_row_of_one_live_seed_still_gets_the_others_seed_noise():
    """The pool takes the better half of the rows that have two seeds or more: a best row
    whose other seed diverged does not leave the noise at one example."""
    results = _configurations([[0.98, 0.5], [0.95, 0.93], [0.90, 0.94]], m_dev=100)
    results.diverged = np.asarray([False, True, False, False, False, False])
    rows = results.summary()
    assert [r["seeds"] - r["diverged"] for r in rows] == [1, 2, 2]
    pooled = np.std([0.95, 0.93], ddof=1)  # the better half of the two seeded rows
    assert rows[0]["noise"] == pytest.approx(pooled, rel=1e-6)


def test_a_tie_with_the_best_is_within_noise_where_no_noise_is_known():
    """One seed of a cost: no seed std, no resolution, so the noise is 0; a configuration
    whose mean equals the best's (a duplicate point) must still read as within noise."""
    rows = _results([0.9, 0.9, 0.8], [0.3, 0.3, 0.5], m_dev=100).summary(metric="dev_cost")
    assert [r["noise"] for r in rows] == [0.0] * 3 and [r["gap"] for r in rows[:2]] == [0.0] * 2
    assert [r["within_noise"] for r in rows] == [True, True, False]


def test_within_noise_marks_follow_the_gap():
    """No row is left unmarked while a row further from the best is marked."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        centres = rng.uniform(0.6, 0.95, 12)
        spreads = rng.uniform(0.0, 0.08, 12)
        accs = [np.round(np.clip(c + s * rng.standard_normal(3), 0, 1) * 100) / 100
                for c, s in zip(centres, spreads)]  # fmt: skip
        rows = _configurations(accs, m_dev=100).summary()
        marked = [r["gap"] for r in rows if r["within_noise"]]
        unmarked = [r["gap"] for r in rows if not r["within_noise"]]
        assert max(marked) < min(unmarked, default=np.inf)


def test_table_values_read_back_as_the_stored_float32():
    results = _results([0.3, 0.7], [0.25, 0.2])
    row = results.table()[0]
    assert row["dev_accuracy"] == 0.3 and row["learning_rate"] == 0.1  # not 0.30000001192...
    assert np.float32(row["dev_accuracy"]) == results.history.dev_accuracy[0, -1]


def test_summary_means_stds_and_noise_across_seeds():
    # three configurations (lambd 0, 0.5, 1) x 2 seeds; m_dev = 200, so one example = 0.005
    acc = [0.90, 0.91, 0.90, 0.905, 0.85, 0.86]
    cost = [0.30, 0.28, 0.25, 0.26, 0.40, 0.41]
    results = _results(acc, cost, seeds=[0, 1] * 3, m_dev=200)
    results.hparams = results.hparams._replace(
        lambd=np.repeat(np.asarray([0.0, 0.5, 1.0], np.float32), 2)
    )
    rows = results.summary()
    assert [r["lambd"] for r in rows] == [0.0, 0.5, 1.0]
    exact = np.round(np.float32(acc).astype(np.float64) * 200) / 200  # hits / m, not float32
    for row, members in zip(rows, ([0, 1], [2, 3], [4, 5])):
        assert row["members"] == members and row["seeds"] == 2
        assert row["dev_accuracy_mean"] == pytest.approx(np.mean(exact[members]), rel=1e-7)
        assert row["dev_accuracy_std"] == pytest.approx(np.std(exact[members], ddof=1), rel=1e-6)
    # 0.905 vs 0.9025: gap 0.0025 < max(1/200, std) -> within noise; 0.855 is not
    assert [r["within_noise"] for r in rows] == [True, True, False]
    # one seed and equal accuracy: the dev cost decides, and the gap of 0 is within noise
    tied = _results([0.9, 0.9], [0.3, 0.2], m_dev=200)
    assert [r["members"] for r in tied.summary()] == [[1], [0]]
    assert all(r["within_noise"] for r in tied.summary())
    # one dev example apart is not within noise (it is the resolution, not below it)
    apart = _results([0.9, 0.895], [0.3, 0.2], m_dev=200)
    assert [r["within_noise"] for r in apart.summary()] == [True, False]
    assert apart.summary(resolution=0.01)[1]["within_noise"]
    with pytest.raises(ValueError, match="resolution must be >= 0"):
        apart.summary(resolution=-1)


def test_per_layer_keep_prob_and_static_columns():
    results = _results([0.9, 0.8], [0.3, 0.4], keep=[[0.8, 0.9], [1.0, 1.0]])
    results.static = {"layer_sizes": [(2, 4, 4, 1), (2, 8, 8, 1)]}
    row = results.table()[0]
    assert (row["keep_prob_1"], row["keep_prob_2"]) == (0.8, 0.9)
    assert row["layer_sizes"] == "2-4-4-1"
    assert results.hparam_names() == [
        "lambd",
        "keep_prob_1",
        "keep_prob_2",
        "learning_rate",
        "layer_sizes",
    ]


def test_distinct_functions_on_a_static_axis_stay_distinct_configurations():
    def sgd(hp):
        return None

    results = _results([0.9, 0.8, 0.7, 0.6], [0.3, 0.4, 0.5, 0.6], seeds=[0, 1, 0, 1])
    results.hparams = results.hparams._replace(lambd=np.zeros(4, np.float32))
    first, second = (lambda hp: 1), (lambda hp: 2)
    results.static = {"optimizer": [first, first, second, second]}
    assert [row["optimizer"] for row in results.table()] == ["<lambda>#1"] * 2 + ["<lambda>#2"] * 2
    assert len(results.summary()) == 2  # two configurations of two seeds, not one of four
    results.static = {"optimizer": [sgd, sgd, "adam", "adam"]}
    assert [row["optimizer"] for row in results.table()][::2] == ["sgd", "adam"]


def test_tied_accuracies_rank_by_dev_cost_whatever_their_float32_rounding():
    # 192/200 and 194/200 in float32 average to 0.96500003, 193/200 twice to 0.96499997:
    # both are 386 hits of 400, a tie, so the lower dev cost (the second point) ranks first
    results = _results([0.96, 0.97, 0.965, 0.965], [0.2, 0.2, 0.1, 0.1], seeds=[0, 1, 0, 1],
                       m_dev=200)  # fmt: skip
    results.hparams = results.hparams._replace(lambd=np.float32([0.0, 0.0, 1.0, 1.0]))
    first, second = results.summary()
    assert (first["lambd"], second["lambd"]) == (1.0, 0.0)
    assert first["dev_accuracy_mean"] == second["dev_accuracy_mean"] == 0.965
    assert second["dev_accuracy_std"] == pytest.approx(np.std([0.96, 0.97], ddof=1), rel=1e-6)


def test_diagnosis_of_a_configuration_uses_its_mean_error_rates():
    results = _results([0.9, 0.8, 0.7], [0.3, 0.4, 0.5], diverged=[False, False, True])
    train = results.history.train_accuracy[:2, -1].astype(np.float64)
    dev = np.asarray([0.9, 0.8], np.float32).astype(np.float64)
    got = results.diagnosis([0, 1, 2], bayes_error=0.05)
    want = diagnose(train_error=1 - train.mean(), dev_error=1 - dev.mean(), bayes_error=0.05)
    assert got.train_error == pytest.approx(want.train_error)
    assert got.dev_error == pytest.approx(want.dev_error)
    assert got.bayes_error == 0.05


def test_one_members_hparams_and_a_member_outside_the_table():
    results = _results([0.9, 0.8, 0.7], [0.3, 0.4, 0.5], keep=[[0.8, 0.9], [1.0, 0.5], [1, 1]])
    hp = results.member_hparams(np.int64(1))
    assert hp._fields == ("lambd", "keep_prob", "learning_rate")
    assert hp.lambd == np.float32(0.5) and hp.learning_rate == np.float32(0.1)
    np.testing.assert_array_equal(hp.keep_prob, np.asarray([1.0, 0.5], np.float32))
    for bad in (3, -1, 1.5, True):
        with pytest.raises(ValueError, match=r"member must be a row of the results, an int in "):
            results.member_hparams(bad)
    with pytest.raises(ValueError, match=r"an int in \[0, 3\), got 99"):
        results.diagnosis(member=[0, 99])


def test_diagnosis_defaults_to_the_best_configuration():
    results = _results([0.7, 0.9, 0.8], [0.5, 0.3, 0.4])  # member 1 has the best dev accuracy
    train = float(results.history.train_accuracy[1, -1])
    got = results.diagnosis(bayes_error=0.05)
    want = diagnose(train_error=1 - train, dev_error=1 - 0.9, bayes_error=0.05)
    assert got.train_error == pytest.approx(want.train_error)
    assert got.dev_error == pytest.approx(want.dev_error, abs=1e-7)
    assert got.verdict == want.verdict


def test_accuracies_read_as_exact_fractions_of_the_rows(tmp_path):
    # 194/200 as a float32 mean (sum times 1/200) is 0.96999997, not float32(0.97)
    mean = np.float32(194) * np.float32(1 / 200)
    assert mean != np.float32(0.97)
    results = _results([mean, 0.5], [0.3, 0.4], m_dev=200, m_train=300, train_weighted=False)
    assert results.table()[0]["dev_accuracy"] == 0.97
    assert "0.96999997" not in results.to_csv(tmp_path / "r.csv").read_text()
    train = results.history.train_accuracy[:, -1].astype(np.float64)
    expected = np.round(train * 300) / 300  # the nearest fraction of the 300 train rows
    shown = [np.float32(row["train_accuracy"]) for row in results.table()]
    np.testing.assert_array_equal(shown, expected.astype(np.float32))
    weighted = _results([mean, 0.5], [0.3, 0.4], m_dev=200, m_train=300, train_weighted=True)
    raw = results.history.train_accuracy[0, -1]  # weighted: not a fraction of rows, kept
    assert np.float32(weighted.table()[0]["train_accuracy"]) == raw


def test_json_holds_the_config_and_short_numbers(tmp_path):
    results = _results([0.3, 0.7], [0.25, 0.2], m_dev=40)
    path = results.to_json(tmp_path / "r.json", config={"argv": ["--steps=30"], "steps": 30})
    text = path.read_text()
    payload = json.loads(text)
    assert payload["config"]["steps"] == 30 and payload["meta"]["m_dev"] == 40
    assert payload["members"][0]["dev_accuracy"] == 0.3
    assert "0.30000001" not in text and payload["history"]["dev_accuracy"][0][-1] == 0.3


def test_json_reads_back_as_the_same_results(tmp_path):
    def custom(hp):
        return None

    rng = np.random.default_rng(1)
    results = _results([0.9, 0.8, 0.7], [0.3, 0.4, np.nan], keep=rng.uniform(0.5, 1, (3, 2)))
    results.history = results.history._replace(
        train_cost=rng.uniform(0, 1, (3, 3)).astype(np.float32)  # no short decimal texts
    )
    results.best_step = np.asarray([30, 20, 0])  # member 2 never improved: NaN best columns
    results.stop_step = np.asarray([30, 20, 10], np.int32)
    results.rung = np.asarray([1, 0, 0])
    results.static = {"layer_sizes": [(2, 4, 1), (2, 4, 1), (2, 8, 1)], "batch_size": [None] * 3}
    results.meta.update(seed=7, rungs=[{"step": 10}, {"step": 30}])
    read = SweepResults.from_json(results.to_json(tmp_path / "r.json"))
    for field in ("seeds", "stop_step", "best_step", "diverged", "rung"):
        got, want = np.asarray(getattr(read, field)), np.asarray(getattr(results, field))
        assert got.dtype == want.dtype and np.array_equal(got, want), field
    for name, value in results.hparams._asdict().items():
        got = getattr(read.hparams, name)
        assert got.dtype == np.float32 and np.array_equal(got, value), name
    for name, value in results.history._asdict().items():
        got = getattr(read.history, name)
        assert got.dtype == value.dtype and np.array_equal(got, value, equal_nan=True), name
    assert read.static == results.static and read.meta["seed"] == 7
    assert repr(read.summary()) == repr(results.summary())  # NaN gaps compare as text
    # a function on a static axis comes back as its table text, and refit refuses that
    # member, also once the file has been read and written again
    results.static = {"optimizer": [custom, "adam", "adam"], "flag": [np.bool_(True)] * 3}
    read = SweepResults.from_json(results.to_json(tmp_path / "r.json"))
    assert read.static["optimizer"] == ["custom", "adam", "adam"]
    assert read.static["flag"] == [True] * 3  # a NumPy bool is plain data
    again = SweepResults.from_json(read.to_json(tmp_path / "again.json"))
    for each in (read, again):
        assert each.meta["static_as_text"] == {"optimizer": [0]}
        with pytest.raises(ValueError, match=r"member 0's optimizer came back from .*json as"):
            sweep.refit(each, 0, None, None)
        # refine would draw new points with the text "custom" as their optimizer
        with pytest.raises(ValueError, match=r"member 0's optimizer .*: refine the SweepResults"):
            sweep.refine(each, top=3, n=4)


def test_a_configuration_whose_members_all_diverged_ranks_last_whatever_its_rung():
    results = _results([0.7, 0.8, 0.95], [0.5, 0.4, 0.2], diverged=[True, False, False])
    results.rung = np.asarray([1, 1, 0])  # the diverged one reached the last rung
    rows = results.summary()
    assert [row["members"] for row in rows] == [[1], [2], [0]]
    assert rows[0]["within_noise"] and rows[0]["dev_accuracy_mean"] == 0.8
    assert np.isnan(rows[2]["dev_accuracy_mean"]) and not rows[2]["within_noise"]
    assert results.best()["member"] == 1


def test_reading_a_file_that_is_not_results_json_names_it(tmp_path):
    (tmp_path / "a.json").write_text('{"meta": {}}')
    (tmp_path / "b.json").write_text("not json")
    (tmp_path / "d.json").write_text("5")
    with pytest.raises(ValueError, match=r"d.json is not a results.json .*not a JSON object"):
        SweepResults.from_json(tmp_path / "d.json")
    with pytest.raises(ValueError, match=r"a.json is not a results.json .*missing \['members'"):
        SweepResults.from_json(tmp_path / "a.json")
    with pytest.raises(ValueError, match=r"cannot read results from .*b.json"):
        SweepResults.from_json(tmp_path / "b.json")
    with pytest.raises(ValueError, match=r"cannot read results from .*c.json"):
        SweepResults.from_json(tmp_path / "c.json")
    (tmp_path / "results.csv").write_text("member,seed\n0,0\n")
    with pytest.raises(ValueError, match=r"results.csv: .*\(give the results.json a sweep wrote"):
        SweepResults.from_json(tmp_path / "results.csv")


def test_a_point_drawn_twice_with_the_same_seed_counts_as_one_seed():
    # members 0 and 1: the same configuration and seed (a random draw over a list repeated)
    n = 3
    history = History(
        np.tile(np.arange(1, 3) * 10, (n, 1)),
        np.ones((n, 2)),
        np.ones((n, 2)),
        np.array([[0.5, 0.4], [0.5, 0.4], [0.6, 0.5]]),
        np.array([[0.8, 0.9], [0.8, 0.9], [0.7, 0.8]]),
    )
    results = SweepResults(
        HParams(lambd=np.array([1.0, 1.0, 0.0], np.float32)),
        np.array([0, 0, 0]),
        history,
        np.full(n, 20),
        np.full(n, 20),
        np.zeros(n, bool),
    )
    rows = results.summary()
    assert [(r["members"], r["seeds"]) for r in rows] == [([0, 1], 1), ([2], 1)]
    assert rows[0]["dev_accuracy_mean"] == pytest.approx(0.9)
    assert np.isnan(rows[0]["dev_accuracy_std"])  # one run has no sample std (not "no spread")


def test_the_default_ranking_follows_the_params_kept():
    """Member 0 ends best (0.9 at step 30) but its best dev cost was at step 10 (0.5
    there); member 1's best is its last evaluation (0.8). Kept params: the last ones rank
    member 0 first; the best ones (early stopping) rank member 1 first."""
    last = _results([0.9, 0.8], [0.7, 0.3], best_step=[10, 30])
    restored = _results([0.9, 0.8], [0.7, 0.3], best_step=[10, 30], restore_best=True)
    assert (last.default_metric, restored.default_metric) == ("dev_accuracy", "best_dev_accuracy")
    assert last.best()["member"] == 0
    assert restored.best()["member"] == 1
    assert [row["member"] for row in restored.top(2)] == [1, 0]
    assert restored.summary()[0]["members"] == [1]


def test_with_restored_params_the_diagnosis_reads_the_best_evaluation():
    """Member 0's best dev cost is at step 10 (first column of the history): with early
    stopping it keeps those params, so its error rates are those of that evaluation."""
    restored = _results([0.9], [0.7], best_step=[10], restore_best=True)
    last = _results([0.9], [0.7], best_step=[10])
    h = restored.history
    kept_train, final_train = (float(np.float64(h.train_accuracy[0, j])) for j in (0, -1))
    assert restored.diagnosis(0).train_error == pytest.approx(1 - kept_train)
    assert restored.diagnosis(0).dev_error == pytest.approx(1 - 0.5)  # 0.5 at step 10
    assert last.diagnosis(0).train_error == pytest.approx(1 - final_train)
    assert last.diagnosis(0).dev_error == pytest.approx(1 - 0.9)


def test_a_diverged_members_diagnosis_reads_its_best_evaluation_not_nan():
    """A diverged member's last evaluation has NaN accuracies (no model to score), and
    the diagnosis once read "not measured" for a member with finite evaluations: it reads
    the best evaluation's error rates (here at step 20, row 1) and says it diverged."""
    results = _results([np.nan, 0.9], [np.nan, 0.3], diverged=[True, False], best_step=[20, 30])
    last_of_member_0 = (np.arange(2)[:, None] == 0) & (np.arange(3)[None, :] == 2)
    results.history = results.history._replace(
        train_accuracy=np.where(last_of_member_0, np.nan, results.history.train_accuracy)
    )
    d = results.diagnosis(0)
    assert d.verdict == "learning rate too high / diverging"
    assert d.dev_error == pytest.approx(1 - 0.6)  # _results' row at step 20
    assert d.train_error == pytest.approx(1 - float(results.history.train_accuracy[0, 1]))
    assert [row["dev_error"] for row in results.diagnose()] == pytest.approx([0.4, 0.1])


def test_top_and_writing_errors_name_what_the_user_gave(tmp_path):
    """top("dev_cost") failed with "slice indices must be integers"; writing a table over a
    folder named the temporary file (.tmp-...) instead of the path given."""
    results = _results([0.9, 0.8], [0.3, 0.4])
    with pytest.raises(TypeError, match=r"top\(metric='dev_cost'\)"):
        results.top("dev_cost")
    with pytest.raises(ValueError, match="k must be a positive int, got -1"):
        results.top(-1)
    (tmp_path / "taken").mkdir()
    for write in (results.to_csv, results.to_json):
        with pytest.raises(IsADirectoryError) as caught:
            write(tmp_path / "taken")
        assert caught.value.filename == str(tmp_path / "taken") and ".tmp-" not in str(caught.value)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]  # none left


def test_print_shows_the_ranked_table_the_command_prints():
    """print(results) is the table of ``jaxhp sweep``: ranked rows whose mean ± std match
    NumPy's over each configuration's seeds (exact hits / m), the within-noise marks."""
    acc = [0.90, 0.91, 0.90, 0.905, 0.85, 0.86]
    results = _results(acc, [0.30, 0.28, 0.25, 0.26, 0.40, 0.41], seeds=[0, 1] * 3, m_dev=200)
    results.hparams = results.hparams._replace(
        lambd=np.repeat(np.asarray([0.0, 0.5, 1.0], np.float32), 2)
    )
    lines = str(results).splitlines()
    assert lines[0].split()[:5] == ["rank", "lambd", "keep_prob", "learning_rate", "seeds"]
    exact = np.round(np.float32(acc).astype(np.float64) * 200) / 200
    for line, lam, members in zip(lines[1:], ("0", "0.5", "1"), ([0, 1], [2, 3], [4, 5])):
        shown = f"{np.mean(exact[members]):.4f} ± {np.std(exact[members], ddof=1):.4f}"
        assert line.split()[1] == lam and shown in line, line
    assert [line.rstrip().endswith("yes") for line in lines[1:]] == [True, True, False]
    assert len(results.summary_text(top=np.int64(1)).splitlines()) == 2  # header, the best
    assert results.summary_text("dev_cost").splitlines()[1].split()[1] == "0.5"  # 0.255
    with pytest.raises(ValueError, match="top must be a positive int or None, got 0"):
        results.summary_text(top=0)
