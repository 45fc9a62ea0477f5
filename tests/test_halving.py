"""Successive halving: rung arithmetic, survivors equal to the full sweep's members, stopped
members not trained further, one program for every rung, resume per rung, bad input.

The reference for who survives is the full sweep itself: its history at each rung's
evaluation, ranked by dev cost with NumPy."""

import math
import re
import subprocess
import sys
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxhp
from jaxhp import _programs, halving, sweep
from jaxhp.cache import compile_stats

CONFIG = jaxhp.TrainConfig(layer_sizes=(2, 6, 1), steps=45, eval_every=5)
SPACE = sweep.random(
    3,
    10,
    lambd=sweep.loguniform(1e-3, 1.0),
    keep_prob=sweep.uniform(0.6, 1.0),
    learning_rate=sweep.loguniform(0.05, 1.0),
)
SCHEDULE = sweep.halving(eta=3, min_steps=5)  # rungs at 5, 15, 45 steps: 10, 3, 1 members


@pytest.fixture(scope="module")
def data():
    return jaxhp.datasets.load("moons", n_train=64, n_dev=48, n_test=0, noise=0.3)


@pytest.fixture(scope="module")
def full(data):
    return jaxhp.run_sweep(SPACE, data, CONFIG, progress=False)


@pytest.fixture(scope="module")
def halved(data):
    return jaxhp.run_sweep(SPACE, data, CONFIG, progress=False, schedule=SCHEDULE)


# ---- rung arithmetic ----------------------------------------------------------------------
def test_rungs_of_the_issue_workload():
    got = halving.rungs(sweep.halving(3, 100), 81, 2700, 100)
    assert [(r.step, r.evaluation, r.members) for r in got] == [
        (100, 1, 81),
        (300, 3, 27),
        (900, 9, 9),
        (2700, 27, 3),
    ]
    # 81*100 + 27*200 + 9*600 + 3*1800, by hand
    assert halving.member_steps(got) == 24_300


def test_rungs_round_up_to_evaluations_and_end_at_steps():
    # eta 2.5 from 100 with an evaluation every 50: 100, 250, 625 -> 650, 1562.5 -> 1600;
    # 2000 steps is less than sqrt(2.5) x 1600, so the last rung is the config's 2000 steps
    # (no short extra rung from 1600 to 2000).
    got = halving.rungs(sweep.halving(2.5, 100), 20, 2000, 50)
    assert [r.step for r in got] == [100, 250, 650, 2000]
    assert [r.members for r in got] == [20, 8, 3, 1]  # floor(n / 2.5), at least 1
    # 40 x 2.01 = 80.4 is past the evaluation at 80: up to 90 (it was rounded to 80 first)
    assert [r.step for r in halving.rungs(sweep.halving(2.01, 40), 20, 1000, 10)][:2] == [40, 90]


def test_one_configuration_left_trains_to_the_end():
    # 4 points x 2 seeds, eta 3 from 33 (an evaluation every 3 steps): 33, 99, 297 -> 300.
    # After rung 0 one configuration is left: it trains straight to 300, no rung at 99.
    got = halving.rungs(sweep.halving(3, 33), 4, 300, 3, seeds=2)
    assert [(r.step, r.members, r.points) for r in got] == [(33, 8, 4), (300, 2, 1)]
    assert got[-1].evaluation == 100
    single = halving.rungs(sweep.halving(3, 30), 1, 300, 3)
    assert [(r.step, r.points) for r in single] == [(300, 1)]


def test_default_first_rung_lets_about_one_member_reach_the_end():
    # 27 members, eta 3: s = 3 halvings, so the first rung is 2700 / 27 = 100 steps.
    got = halving.rungs(sweep.halving(3), 27, 2700, 50)
    assert [(r.step, r.members) for r in got] == [(100, 27), (300, 9), (900, 3), (2700, 1)]


def test_ranking_puts_non_finite_costs_last_and_breaks_ties_by_train_cost():
    dev = np.array([0.5, np.nan, 0.2, 0.5, np.inf])
    train = np.array([0.4, 0.1, 0.9, 0.3, 0.1])
    assert halving.rank(dev, train).tolist() == [2, 3, 0, 1, 4]


# ---- the engine against the full sweep ----------------------------------------------------
def _expected_survivors(full, rungs):
    """Who enters each rung, ranked from the full sweep's own history."""
    entrants = np.arange(len(full))
    out = [entrants]
    for rung, following in zip(rungs, rungs[1:]):
        row = rung["evaluation"] - 1
        dev = full.history.dev_cost[entrants, row]
        train = full.history.train_cost[entrants, row]
        dev = np.where(np.isfinite(dev), dev, np.inf)
        order = np.lexsort((np.arange(len(entrants)), train, dev))
        entrants = np.sort(entrants[order[: following["members"]]])
        out.append(entrants)
    return out


def test_survivors_are_the_full_sweeps_best_and_equal_its_members(full, halved):
    rungs = halved.meta["rungs"]
    assert [r["members"] for r in rungs] == [10, 3, 1]
    expected = _expected_survivors(full, rungs)
    for k, entrants in enumerate(expected):
        np.testing.assert_array_equal(np.flatnonzero(halved.rung >= k), entrants)
    last = expected[-1]
    for field in full.history._fields:  # same program, same lanes: bit for bit
        np.testing.assert_array_equal(
            getattr(halved.history, field)[last], getattr(full.history, field)[last]
        )
    for field in ("stop_step", "best_step", "diverged"):
        np.testing.assert_array_equal(getattr(halved, field)[last], getattr(full, field)[last])


def test_stopped_members_train_no_further_than_their_rung(full, halved):
    _assert_each_member_is_the_full_sweeps_up_to_its_rung(full, halved)


ADAM_SUBPROCESS = """
import sys
sys.path.insert(0, {tests!r})
import jaxhp
import test_halving

data = jaxhp.datasets.load("moons", n_train=64, n_dev=48, n_test=0, noise=0.3)
test_halving.check_adam_mini_batches_and_patience(data)
print("same bits")
"""


def test_with_adam_mini_batches_and_patience_members_are_the_full_sweeps():
    """In a process with XLA's default flags, as users run: this suite's compile-fast
    flags (loop emitters at -O0) compile the sweep's and halving's programs so that Adam
    rounds differently in the two (seen in row 0 of a member's train cost)."""
    from conftest import cpu_command_env  # here: the subprocess imports this module

    env = cpu_command_env()
    env.pop("XLA_FLAGS", None)
    script = ADAM_SUBPROCESS.format(tests=str(Path(__file__).parent))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.split()[-2:] == ["same", "bits"], done.stderr[
        -3000:
    ]


def check_adam_mini_batches_and_patience(data):
    config = CONFIG.replace(optimizer="adam", batch_size=16, patience=1)
    space = sweep.random(
        4, 10, lambd=sweep.loguniform(1e-3, 1.0), learning_rate=sweep.loguniform(0.05, 2.0)
    )
    full = jaxhp.run_sweep(space, data, config, progress=False)
    halved = jaxhp.run_sweep(space, data, config, progress=False, schedule=SCHEDULE)
    assert (full.stop_step < config.steps).any()  # patience stopped someone: the case exists
    for k, entrants in enumerate(_expected_survivors(full, halved.meta["rungs"])):
        np.testing.assert_array_equal(np.flatnonzero(halved.rung >= k), entrants)
    _assert_each_member_is_the_full_sweeps_up_to_its_rung(full, halved)
    for field in ("stop_step", "best_step", "diverged", "seeds"):  # the same arrays, dtypes too
        assert getattr(halved, field).dtype == getattr(full, field).dtype, field


def _assert_each_member_is_the_full_sweeps_up_to_its_rung(full, halved):
    rungs = halved.meta["rungs"]
    for member in range(len(full)):
        k = int(halved.rung[member])
        rung = rungs[k]
        row = rung["evaluation"] - 1
        # the steps it trained: its rung's, unless it stopped earlier in the full run too
        assert halved.stop_step[member] == min(rung["step"], full.stop_step[member])
        # its history up to the rung is the full run's; after it, rows repeat the rung's
        for field in ("dev_cost", "train_cost", "dev_accuracy"):
            got, want = getattr(halved.history, field)[member], getattr(full.history, field)[member]
            np.testing.assert_array_equal(got[: row + 1], want[: row + 1])
            np.testing.assert_array_equal(got[row + 1 :], np.repeat(want[row], len(got) - row - 1))


def test_one_advance_program_serves_every_rung(data, halved):
    program = _programs._ADVANCE["cpu"]
    before = program._cache_size()
    again = jaxhp.run_sweep(SPACE, data, CONFIG, progress=False, schedule=sweep.halving(2, 5))
    assert len(again.meta["rungs"]) == 4  # other rungs and survivor counts: no new program
    assert program._cache_size() == before
    # ... and the count does see a new program: another config compiles one more
    jaxhp.run_sweep(SPACE, data, CONFIG.replace(steps=40), progress=False, schedule=SCHEDULE)
    assert program._cache_size() == before + 1


def test_a_halving_run_compiles_one_program_per_static_group(data):
    space = sweep.random(1, 6, lambd=sweep.loguniform(1e-3, 1.0), layer_sizes=[(2, 3, 1)])
    config = CONFIG.replace(steps=30)  # a config no other test compiles
    with compile_stats() as stats:
        jaxhp.run_sweep(space, data, config, progress=False, schedule=SCHEDULE)
    assert stats.programs == 1  # every rung, and the members' results, from one program
    # ... and the count sees a second program: two static groups compile two
    space = sweep.random(
        1, 6, lambd=sweep.loguniform(1e-3, 1.0), layer_sizes=[(2, 4, 1), (2, 5, 1)]
    )
    with compile_stats() as stats:
        jaxhp.run_sweep(space, data, config, progress=False, schedule=SCHEDULE)
    assert stats.programs == 2


def test_a_first_rung_of_a_few_steps_chosen_by_default_warns(data):
    space = sweep.random(2, 9, lambd=sweep.loguniform(1e-3, 1.0))
    config = CONFIG.replace(steps=20, eval_every=1)  # default first rung: 20 / 3**2 -> 2
    with pytest.warns(UserWarning, match=r"first after 2 of 20 steps .*min_steps .*e.g. 10"):
        jaxhp.run_sweep(space, data, config, progress=False, schedule=sweep.halving(3))
    with warnings.catch_warnings():  # chosen by the user: no warning
        warnings.simplefilter("error")
        jaxhp.run_sweep(space, data, config, progress=False, schedule=sweep.halving(3, 2))


def test_a_schedule_of_one_rung_warns_that_it_halves_nothing(data):
    space = sweep.random(2, 9, lambd=sweep.loguniform(1e-3, 1.0))
    config = CONFIG.replace(steps=20, eval_every=1)
    # min_steps 12: the next rung (36) is past the end, and 12 * sqrt(3) > 20 merges the
    # first into the last: one rung, every member trained to the end
    assert len(halving.rungs(sweep.halving(3, 12), 9, 20, 1)) == 1
    for min_steps in (20, 12):
        with pytest.warns(UserWarning, match=r"has one rung here \(9 configurations, first"):
            jaxhp.run_sweep(
                space, data, config, progress=False, schedule=sweep.halving(3, min_steps)
            )


def test_lanes_and_table(full, halved):
    n_devices = len(halved.meta["devices"])
    # one vmap group per device per call: 8 members on the CPU, 64 on an accelerator
    width = 8 if jax.default_backend() == "cpu" else sweep.ACCELERATOR_GROUP_WIDTH
    lanes = n_devices * width
    calls = [math.ceil(r["members"] / lanes) for r in halved.meta["rungs"]]
    steps = [5, 10, 30]  # each rung's new steps
    assert halved.meta["lane_steps"] == sum(c * lanes * s for c, s in zip(calls, steps))
    assert halved.columns()["rung"].tolist() == halved.rung.tolist()
    assert "rung" not in full.columns()
    # members that reached the last rung rank first, whatever their metric
    assert halved.best("dev_accuracy")["rung"] == 2
    assert halved.summary()[0]["rung"] == 2


# ---- resume ---------------------------------------------------------------------------------
class _Stop(Exception):
    pass


def test_resume_per_rung_retrains_nothing_finished(data, halved, tmp_path, monkeypatch):
    folder = tmp_path / "ck"
    calls, interrupt = [], [True]
    real_advance = halving._advance

    def counted(plan, trainer, members, states, until, *args):
        calls.append((until, len(members)))
        if until == 3 and interrupt[0]:  # rung 1 (evaluation 3) has started: stop the run
            raise _Stop
        return real_advance(plan, trainer, members, states, until, *args)

    monkeypatch.setattr(halving, "_advance", counted)
    with pytest.raises(_Stop):
        jaxhp.run_sweep(SPACE, data, CONFIG, progress=False, schedule=SCHEDULE, checkpoint=folder)
    assert [u for u, _ in calls] == [1, 3]  # rung 0 finished and saved, rung 1 cut short
    calls.clear()
    interrupt[0] = False
    resumed = jaxhp.run_sweep(
        SPACE, data, CONFIG, progress=False, schedule=SCHEDULE, checkpoint=folder
    )
    assert [u for u, _ in calls] == [3, 9]  # rung 0 was read back, not trained again
    first = halved.meta["rungs"][0]
    assert resumed.meta["member_steps_from_checkpoint"] == first["members"] * first["step"]
    for field in resumed.history._fields:
        np.testing.assert_array_equal(
            getattr(resumed.history, field), getattr(halved.history, field)
        )
    np.testing.assert_array_equal(resumed.rung, halved.rung)
    np.testing.assert_array_equal(resumed.stop_step, halved.stop_step)
    calls.clear()
    again = jaxhp.run_sweep(
        SPACE, data, CONFIG, progress=False, schedule=SCHEDULE, checkpoint=folder
    )
    assert calls == []  # everything finished: nothing trains
    assert again.meta["member_steps_from_checkpoint"] == int(np.sum(halved.stop_step))


def test_member_steps_count_what_members_trained_and_read_back_the_same(data, tmp_path):
    """A member that early stopping ended inside a rung trained fewer steps than the rung;
    one that diverged trained up to the evaluation that saw it, though its stop_step rolls
    back. The reference is the full sweep: each member trains min(its rung's end, the
    steps it trained there). A resumed run counts the same from the checkpoint."""
    config = CONFIG.replace(patience=1)
    space = sweep.grid(learning_rate=[0.01, 0.3, 3.0, 30.0, 1e36, 1e38], seeds=2)
    folder = tmp_path / "ck"
    first = jaxhp.run_sweep(
        space, data, config, progress=False, schedule=SCHEDULE, checkpoint=folder
    )
    full = jaxhp.run_sweep(space, data, config, progress=False)
    rung_steps = np.asarray([r["step"] for r in first.meta["rungs"]])[first.rung]
    assert np.any(first.stop_step < rung_steps) and full.diverged.any()  # both cases exist
    seen = np.argmax(~np.isfinite(full.history.dev_cost), axis=1)  # the evaluation that saw it
    trained_full = np.where(
        full.diverged, full.history.step[np.arange(len(full)), seen], full.stop_step
    )
    assert first.meta["member_steps"] == int(np.sum(np.minimum(rung_steps, trained_full)))
    again = jaxhp.run_sweep(
        space, data, config, progress=False, schedule=SCHEDULE, checkpoint=folder
    )
    assert again.meta["member_steps_from_checkpoint"] == first.meta["member_steps"]


def test_a_halving_checkpoint_never_serves_another_schedule_or_a_full_sweep(data, tmp_path):
    folder = tmp_path / "ck"
    small = sweep.grid(lambd=[0.0, 0.1, 1.0])
    jaxhp.run_sweep(small, data, CONFIG, progress=False, schedule=SCHEDULE, checkpoint=folder)
    for schedule in (sweep.halving(2, 5), None):
        with pytest.raises(ValueError, match="different sweep"):
            jaxhp.run_sweep(
                small, data, CONFIG, progress=False, schedule=schedule, checkpoint=folder
            )


# ---- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, kind, words",
    [
        ({"eta": 1}, ValueError, "eta must be a number > 1"),
        ({"eta": 0.5}, ValueError, "got 0.5"),
        ({"eta": float("nan")}, ValueError, "eta must be"),
        ({"eta": True}, TypeError, "eta must be"),
        ({"eta": "3"}, TypeError, "got '3'"),
        ({"min_steps": 0}, ValueError, "min_steps must be a positive int"),
        ({"min_steps": -5}, ValueError, "got -5"),
        ({"min_steps": 2.5}, TypeError, "min_steps must be"),
    ],
)
def test_bad_schedules_are_refused(kwargs, kind, words):
    with pytest.raises(kind, match=words):
        sweep.halving(**kwargs)


@pytest.mark.parametrize(
    "schedule, kind, words",
    [
        (sweep.halving(3, 50), ValueError, r"min_steps must be <= the config's steps \(45\)"),
        (sweep.halving(3, 7), ValueError, "min_steps=7 does not fall on an evaluation.*5 or 10"),
        ((3, 5), TypeError, "schedule must be None or jaxhp.sweep.halving"),
    ],
)
def test_bad_schedules_for_the_config_fail_before_training(data, schedule, kind, words):
    with pytest.raises(kind, match=words):
        jaxhp.run_sweep(SPACE, data, CONFIG, progress=False, schedule=schedule)


def test_halving_needs_one_rung_layout_for_every_static_group(data):
    space = sweep.grid(lambd=[0.0, 0.1], steps=[45, 30])
    with pytest.raises(ValueError, match=r"same steps and eval_every.*\(30, 5\), \(45, 5\)"):
        jaxhp.run_sweep(space, data, CONFIG, progress=False, schedule=SCHEDULE)


def test_halving_without_dev_data_says_it_ranks_by_train_cost(data):
    train_only = jaxhp.Data(train=data.train)
    with pytest.warns(UserWarning, match="ranks the members at each rung by their training"):
        jaxhp.run_sweep(
            sweep.grid(lambd=[0.0, 1.0]), train_only, CONFIG, progress=False, schedule=SCHEDULE
        )


# ---- the command ----------------------------------------------------------------------------
def test_the_sweep_command_halves_and_records_it(tmp_path, capsys):
    import csv
    import json

    from jaxhp.cli import main

    out = tmp_path / "out"
    argv = ["sweep", "--n-train", "64", "--n-dev", "48", "--layers", "6", "--lambd", "0,0.1,1"]
    argv += ["--keep-prob", "0.8,1", "--seeds", "1", "--steps", "30", "--eval-every", "5"]
    argv += ["--halving", "2", "--min-steps", "10", "--quiet", "--no-cache", "--out", str(out)]
    argv += ["--checkpoint", str(tmp_path / "ck")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "rungs at step (members) 10 (6), 20 (3), 30 (1)" in printed
    # the best reached the last rung: the others were measured after fewer steps
    table = [line for line in printed.splitlines() if re.match(r"\s+\d+ ", line)]
    assert table[0].endswith("yes") and len(table) == 5
    assert all(line.endswith("  (stopped at an earlier rung)") for line in table[1:])
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    rungs = sorted(int(r["rung"]) for r in rows)
    assert rungs == [0, 0, 0, 1, 1, 2]
    assert {int(r["stop_step"]) for r in rows if r["rung"] == "2"} <= {30}
    assert all(int(r["stop_step"]) <= 10 for r in rows if r["rung"] == "0")
    assert (out / "rungs.png").read_bytes()[:4] == b"\x89PNG"
    recorded = json.loads((out / "results.json").read_text())["config"]
    assert recorded["halving"] == {"eta": 2.0, "min_steps": 10}
    assert "--halving=2.0" in recorded["argv"] and "--min-steps=10" in recorded["argv"]
    # a re-run resumes, and counts what the latest rung saved: its one member
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "holds the progress of 1 member at rung 2" in printed
    # 3 members x 10 steps, 2 x 20 and 1 x 30, all read back
    assert (
        "(successive halving: 100 member-steps, 56% of a full sweep's 180; 100 of them " in printed
    )


def test_without_eval_every_the_sweep_command_evaluates_on_the_first_rung(tmp_path, capsys):
    import json

    from jaxhp.cli import main

    # 700 steps evaluate every 7 by default, and 10 is no multiple of 7: 5 is the largest
    # divisor of 10 up to 7
    out = tmp_path / "out"
    argv = ["sweep", "--n-train", "64", "--n-dev", "48", "--layers", "4", "--lambd", "0,1"]
    argv += ["--keep-prob", "1", "--seeds", "1", "--steps", "700", "--halving", "5"]
    argv += ["--min-steps", "10", "--quiet", "--no-cache", "--out", str(out)]
    assert main(argv) == 0
    assert "rungs at step (members) 10 (2), 700 (1)" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["config"]["eval_every"] == 5


def test_an_interrupted_halving_sweep_counts_the_latest_rung_with_saved_progress(tmp_path):
    """Stopped just after rung 1's folder was made: rung 0's six members are what is saved."""
    from jaxhp.cli import _saved_words

    (tmp_path / "rung0-group0").mkdir()
    np.savez(tmp_path / "rung0-group0" / "chunk0.npz", member=np.arange(4))
    np.savez(tmp_path / "rung0-group0" / "chunk1.npz", member=np.arange(4, 6))
    (tmp_path / "rung1-group0").mkdir()
    assert _saved_words(tmp_path, halving=True) == (6, "the progress of 6 members at rung 0")
    assert _saved_words(tmp_path / "rung1-group0", halving=True) == (0, "no member")


def test_a_configurations_seeds_are_kept_or_dropped_together(data):
    space = sweep.random(
        5,
        6,
        seeds=2,
        lambd=sweep.loguniform(1e-3, 1.0),
        learning_rate=sweep.loguniform(0.05, 1.0),
    )
    full = jaxhp.run_sweep(space, data, CONFIG, progress=False)
    halved = jaxhp.run_sweep(space, data, CONFIG, progress=False, schedule=SCHEDULE)
    assert [(r["points"], r["members"]) for r in halved.meta["rungs"]] == [(6, 12), (2, 4), (1, 2)]
    # seeds vary fastest: members 2p and 2p + 1 are configuration p
    np.testing.assert_array_equal(halved.rung[0::2], halved.rung[1::2])
    # reference: the full sweep's mean dev cost over the two seeds at evaluation 1 (step 5)
    mean_dev = full.history.dev_cost[:, 0].reshape(6, 2).mean(axis=1)
    best_two = np.sort(np.argsort(mean_dev, kind="stable")[:2])
    np.testing.assert_array_equal(np.flatnonzero(halved.rung[0::2] >= 1), best_two)
    assert halved.summary()[0]["seeds"] == 2 and halved.summary()[0]["rung"] == 2
