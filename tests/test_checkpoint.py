"""The checkpoint matrix: each case gives the right results or a clear error, never another
sweep's results. One base sweep is trained once per module; the cases copy its folder."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import jax
import numpy as np
import optax
import pytest

import jaxhp
from jaxhp import checkpoint, sweep

CONFIG = jaxhp.TrainConfig(
    layer_sizes=(2, 4, 1),
    steps=20,
    eval_every=5,
    optimizer=lambda lr: optax.sgd(lr),
    augment=lambda key, x: x,
)
SPACE = sweep.grid(lambd=[0.0, 0.1], keep_prob=[1.0, 0.8])


@pytest.fixture(scope="module")
def data():
    return jaxhp.datasets.load("moons", n_train=64, n_dev=32, n_test=0, noise=0.2)


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """A finished base sweep: its folder (two chunks of two members) and its results."""
    folder = tmp_path_factory.mktemp("base") / "ck"
    results = jaxhp.run_sweep(SPACE, data, CONFIG, chunk_size=2, checkpoint=folder, progress=False)
    assert len(list(folder.glob("chunk-*.npz"))) == 2
    return folder, results


@pytest.fixture
def folder(finished, tmp_path):
    """A private copy of the base sweep's folder."""
    return shutil.copytree(finished[0], tmp_path / "ck")


def _resume(data, folder, config=CONFIG):
    return jaxhp.run_sweep(SPACE, data, config, chunk_size=2, checkpoint=folder, progress=False)


def _assert_same_results(a, b):
    for field in a.history._fields:
        np.testing.assert_array_equal(getattr(a.history, field), getattr(b.history, field))
    for field in ("stop_step", "best_step", "diverged"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def test_equal_programs_resume_and_different_ones_differ(data, folder, finished):
    # New lambda objects with the same bodies compute the same thing: every member reused.
    same = CONFIG.replace(optimizer=lambda lr: optax.sgd(lr), augment=lambda key, x: x)
    resumed = _resume(data, folder, same)
    assert resumed.meta["members_from_checkpoint"] == 4
    _assert_same_results(resumed, finished[1])


@pytest.mark.parametrize(
    "change",
    [
        {"optimizer": lambda lr: optax.adam(lr)},
        {"optimizer": lambda lr: optax.sgd(lr, momentum=0.5)},
        {"augment": lambda key, x: x + 0.1 * jax.random.normal(key, x.shape)},
    ],
    ids=["adam-lambda", "closed-over-constant", "augment-lambda"],
)
def test_another_lambda_is_another_sweep(data, folder, change):
    # Every lambda is named "<lambda>"; the old spec took these for the base sweep.
    with pytest.raises(ValueError, match=r"different sweep \(it differs in the training program"):
        _resume(data, folder, CONFIG.replace(**change))


def test_other_data_or_members_are_named(data, folder):
    other = jaxhp.datasets.load("moons", n_train=64, n_dev=32, n_test=0, noise=0.3)
    with pytest.raises(ValueError, match=r"differs in the data\)"):
        _resume(other, folder)  # the same shapes: nothing readable differs
    fewer = jaxhp.datasets.load("moons", n_train=48, n_dev=32, n_test=0, noise=0.3)
    with pytest.raises(ValueError, match=r"the data: train rows 48 here, 64 in the checkpoint\)"):
        _resume(fewer, folder)
    with pytest.raises(
        ValueError, match=r"differs in the members .*; lambd \[0, 0.2\] here, \[0, 0.1\] in the"
    ):
        jaxhp.run_sweep(sweep.grid(lambd=[0.0, 0.2]), data, CONFIG, checkpoint=folder)


def test_a_changed_config_field_is_named(data, folder):
    with pytest.raises(ValueError, match=r"program .*: steps 25 here, 20 in the checkpoint\)"):
        _resume(data, folder, CONFIG.replace(steps=25))


PARTIAL_SWEEP = textwrap.dedent("""
    import functools, json, sys
    import optax, jaxhp
    from jaxhp import sweep
    data = jaxhp.datasets.load("moons", n_train=64, n_dev=32, n_test=0, noise=0.2)
    config = jaxhp.TrainConfig(layer_sizes=(2, 4, 1), steps=20, eval_every=5,
                               optimizer=functools.partial(optax.sgd, momentum=0.9))
    results = jaxhp.run_sweep(sweep.grid(lambd=[0.0, 0.1]), data, config,
                              checkpoint=sys.argv[1], progress=False)
    print(json.dumps({"reused": results.meta["members_from_checkpoint"],
                      "dev_cost": results.history.dev_cost.tolist()}))
""")


def test_partial_optimizer_resumes_in_a_new_process(tmp_path):
    # Its repr holds a memory address: the old spec refused every new process.
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    runs = []
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", PARTIAL_SWEEP, str(tmp_path / "ck")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert [run["reused"] for run in runs] == [0, 2]
    assert runs[1]["dev_cost"] == runs[0]["dev_cost"]


def _chunks(folder):
    return sorted(folder.glob("chunk-*.npz"))


def _rewrite(file, change):
    with np.load(file) as chunk:
        arrays = {k: chunk[k] for k in chunk.files}
    change(arrays)
    with open(file, "wb") as f:
        np.savez(f, **arrays)


def _truncate(file):
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


DAMAGE = {
    "truncated": (_truncate, "damaged", "cannot be read: BadZipFile"),
    "empty": (lambda file: file.write_bytes(b""), "damaged", "cannot be read: EOFError"),
    # numpy reads bytes that are no zip as a pickle and says the file holds "pickled data"
    "overwritten": (
        lambda file: file.write_bytes(b"garbage " * 20),
        "damaged",
        r"cannot be read: not an .npz file \(overwritten\?\)",
    ),
    "missing-key": (
        lambda file: _rewrite(file, lambda a: a.pop("history_dev_cost")),
        "damaged",
        r"arrays missing: \['history_dev_cost'\]",
    ),
    "wrong-shape": (
        lambda file: _rewrite(file, lambda a: a.update(stop_step=a["stop_step"][:1])),
        "damaged",
        r"stop_step has shape \(1,\)",
    ),
    "member-out-of-range": (
        lambda file: _rewrite(file, lambda a: a.update(member=a["member"] + 10)),
        "damaged",
        r"member indices outside \[0, 4\)",
    ),
    "another-sweep": (
        lambda file: _rewrite(file, lambda a: a.update(spec=np.asarray("0" * 64))),
        "foreign",
        "written by another sweep",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_chunk_is_set_aside_and_retrained(data, folder, finished, damage):
    make, kind, reason = DAMAGE[damage]
    bad, good = _chunks(folder)
    make(bad)
    with pytest.warns(UserWarning, match=rf"chunk {bad}.* is {kind} \({reason}"):
        resumed = _resume(data, folder)
    assert resumed.meta["members_from_checkpoint"] == 2  # the other chunk is kept
    _assert_same_results(resumed, finished[1])
    assert bad.with_name(f"{bad.name}.{kind}").exists() and good.exists()
    assert len(_chunks(folder)) == 2  # the good one and the re-trained one


@pytest.mark.parametrize(
    "text, match",
    [
        ('{"format": 2, "spec": "ab', "Unterminated string"),
        ("", "Expecting value"),
        ("[1, 2]", "malformed fields: format, spec"),
        ('{"spec": "abc"}', "malformed fields: format, parts"),
    ],
)
def test_damaged_spec_file_stops_with_the_fix(data, folder, text, match):
    spec_file = folder / "spec.json"
    spec_file.write_text(text)
    with pytest.raises(ValueError, match=rf"spec file {spec_file} is damaged.*{match}") as info:
        _resume(data, folder)
    assert f"delete {spec_file} to resume" in str(info.value)
    assert len(_chunks(folder)) == 2  # nothing lost


def test_damaged_spec_file_deleted_reuses_only_this_sweeps_chunks(data, folder, finished):
    (folder / "spec.json").unlink()
    resumed = _resume(data, folder)
    assert resumed.meta["members_from_checkpoint"] == 4
    _assert_same_results(resumed, finished[1])


@pytest.mark.parametrize("package", ["jaxhp", "jax"])
def test_another_version_is_refused_with_how_to_start_fresh(data, folder, package):
    spec_file = folder / "spec.json"
    stored = json.loads(spec_file.read_text())
    stored["versions"][package] = "0.0.1"
    spec_file.write_text(json.dumps(stored))
    with pytest.raises(ValueError, match=rf"written by .*{package} 0\.0\.1.*start fresh"):
        _resume(data, folder)


def test_checkpoint_path_that_is_a_file(data, tmp_path):
    file = tmp_path / "ck"
    file.write_text("not a folder")
    with pytest.raises(ValueError, match=r"checkpoint must be a folder, got .*ck'.* a file"):
        _resume(data, file)
    with pytest.raises(ValueError, match=r"checkpoint folder .*ck/sub' cannot be created"):
        _resume(data, file / "sub")
    assert file.read_text() == "not a folder"


def _spec_of(data, config, **kwargs):
    hparams, seeds = SPACE.compile(config.n_hidden)
    return checkpoint.sweep_spec(config, data, hparams, seeds, 0, **kwargs)


def test_python_callback_needs_a_checkpoint_id(data, tmp_path, folder):
    def noisy(key, x):
        shape = jax.ShapeDtypeStruct(x.shape, x.dtype)
        return jax.pure_callback(lambda v: v + np.float32(0.1), shape, x)

    config = CONFIG.replace(augment=noisy)
    with pytest.raises(ValueError, match=r"calls back into Python.*checkpoint_id="):
        jaxhp.run_sweep(SPACE, data, config, checkpoint=tmp_path / "cb", progress=False)
    named = _spec_of(data, config, checkpoint_id="noisy-v1")
    assert named.unidentified is None
    assert _spec_of(data, config, checkpoint_id="noisy-v2").digest != named.digest
    # The id stands for the callables only: plain config fields still count.
    assert _spec_of(data, config.replace(steps=30), checkpoint_id="noisy-v1") != named
    checkpoint.Checkpoint(tmp_path / "cb", named, {})  # opens: the caller named the program
    with pytest.raises(TypeError, match="checkpoint_id must be a non-empty str, got 3"):
        _spec_of(data, config, checkpoint_id=3)
    # run_sweep passes the id on: it replaces the lowered program in the identity.
    with pytest.raises(ValueError, match="differs in the training program"):
        jaxhp.run_sweep(SPACE, data, CONFIG, checkpoint=folder, checkpoint_id="base")


def test_program_text_has_no_addresses_or_paths(data):
    hparams, _ = SPACE.compile(CONFIG.n_hidden)
    member = jax.tree.map(lambda a: a[0], hparams)
    text = checkpoint.program_text(CONFIG, data, member)
    assert "stablehlo" in text
    assert " at 0x" not in text and ".py" not in text and "loc(" not in text


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_writes_follow_the_umask_like_open(tmp_path, umask):
    """results.csv/json and checkpoint chunks get the mode a plain open() would give them,
    not mkstemp's private 0600."""
    from jaxhp.checkpoint import _atomic_write

    old = os.umask(umask)
    try:
        _atomic_write(tmp_path / "atomic", b"x")
        (tmp_path / "plain").write_bytes(b"x")
    finally:
        os.umask(old)
    mode = lambda name: (tmp_path / name).stat().st_mode & 0o777  # noqa: E731
    assert mode("atomic") == mode("plain") == 0o666 & ~umask


def test_a_checkpoint_split_over_devices_does_not_serve_a_one_device_run(data, folder, finished):
    """XLA may round a program split over devices differently from a one-device program
    (optax.adam does): a one-device run must not take a two-device run's members."""
    with pytest.raises(ValueError, match=r"split over devices False here, True in the checkpoint"):
        jaxhp.run_sweep(SPACE, data, CONFIG, chunk_size=2, checkpoint=folder, devices=1)
    assert _resume(data, folder).meta["members_from_checkpoint"] == 4  # split again: reused


def test_an_interrupted_sweep_says_what_it_kept_and_resumes(data, tmp_path, finished, monkeypatch):
    """Ctrl-C inside run_sweep ended in a traceback deep in JAX with nothing about the
    checkpoint: the KeyboardInterrupt now carries a note (2 of 4 members saved here, after
    the first chunk), and the same call resumes to the uninterrupted results."""
    train_chunk, calls = sweep._train_chunk, []

    def interrupted_at_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train_chunk(*args, **kwargs)

    monkeypatch.setattr(sweep, "_train_chunk", interrupted_at_the_second_chunk)
    folder = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt) as caught:
        _resume(data, folder)
    assert caught.value.__notes__ == [
        f"run_sweep was interrupted: 2 of 4 members are saved in the checkpoint {folder}; "
        "call run_sweep again with the same arguments to resume"
    ]
    monkeypatch.undo()
    _assert_same_results(_resume(data, folder), finished[1])
