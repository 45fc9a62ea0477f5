"""Multi-process sweeps: every test launches real processes on 127.0.0.1 with timeouts."""

import csv
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import cpu_command_env

ENV = cpu_command_env(devices=2, XLA_FLAGS="--xla_force_host_platform_device_count=2")
SWEEP = [
    "--n-train",
    "120",
    "--n-dev",
    "60",
    "--layers",
    "8,4",
    "--lambd",
    "0,0.01,0.1,1,3",
    "--keep-prob",
    "0.6,0.8,1",
    "--steps",
    "60",
    "--quiet",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def jaxhp_sweep(*args):
    return [sys.executable, "-m", "jaxhp", "sweep", *args]


def run_one(*args, timeout=300, env=ENV):
    """One single-process jaxhp sweep, to completion."""
    return subprocess.run(
        jaxhp_sweep(*args), env=env, capture_output=True, text=True, timeout=timeout
    )


def launch(args_of, n, port, extra=(), env=ENV):
    return [
        subprocess.Popen(
            jaxhp_sweep(
                *args_of(k),
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                str(n),
                "--process-id",
                str(k),
                *extra,
            ),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(n)
    ]


def finish(procs, timeout=240):
    outs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        outs.append((p.returncode, out, err))
    return outs


def read_table(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def assert_same_table(a, b):
    assert len(a) == len(b) and a
    for row_a, row_b in zip(a, b):
        assert row_a.keys() == row_b.keys()
        for key in row_a:
            if key in ("diverged",):
                assert row_a[key] == row_b[key]
            else:
                np.testing.assert_allclose(
                    float(row_a[key]), float(row_b[key]), rtol=1e-6, atol=1e-7, err_msg=key
                )


def test_two_processes_equal_one(tmp_path):
    single = run_one(*SWEEP, "--out", str(tmp_path / "one"), timeout=240)
    assert single.returncode == 0, single.stderr
    outs = finish(launch(lambda k: [*SWEEP, "--out", str(tmp_path / "two")], 2, free_port()))
    for code, _out, err in outs:
        assert code == 0, err
    assert "process 0 writes the results" in outs[1][1]
    # bit-identical members: the two tables are the same text
    one = (tmp_path / "one" / "results.csv").read_text()
    assert one.count("\n") > 10
    assert (tmp_path / "two" / "results.csv").read_text() == one


REFIT_MEMBER_0 = """
import sys, numpy as np, jaxhp
results, data, config = jaxhp.cli.load_run(sys.argv[1])
refitted = jaxhp.sweep.refit(results, 0, data, config)
print(np.array_equal(refitted.history.dev_cost, results.history.dev_cost[0]))
"""


def test_two_processes_of_one_device_each_round_as_one_device(tmp_path):
    """Each process trains its members on its own devices: with one device each, the
    program is not split, and XLA rounds Adam as in a one-device run (a split program
    rounds its bias correction differently). A refit of their table runs unsplit too.
    XLA's default flags, as users run it (the suite's compile-fast ones round Adam
    differently again with the number of vmap groups a device runs)."""
    adam = [*SWEEP[:6], "--lambd", "0,0.1,1", "--keep-prob", "0.8,1", "--steps", "40"]
    adam += ["--optimizer", "adam", "--quiet"]
    two_devices = cpu_command_env(devices=2, XLA_FLAGS="")
    one_device = cpu_command_env(devices=1, XLA_FLAGS="")
    run = run_one(*adam, "--out", str(tmp_path / "1dev"), env=one_device)
    assert run.returncode == 0, run.stderr
    outs = finish(launch(lambda k: [*adam, "--out", str(tmp_path / "two")], 2, free_port(),
                         env=one_device))  # fmt: skip
    for code, _out, err in outs:
        assert code == 0, err
    table = (tmp_path / "two" / "results.csv").read_text()
    assert table == (tmp_path / "1dev" / "results.csv").read_text()

    refit = subprocess.run(  # a process of two devices refits the table's member 0
        [sys.executable, "-c", REFIT_MEMBER_0, str(tmp_path / "two" / "results.json")],
        env=two_devices, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert refit.returncode == 0, refit.stderr
    assert refit.stdout.split()[-1] == "True", refit.stdout


def test_two_processes_agree_on_halving_survivors(tmp_path):
    halving = [*SWEEP, "--halving", "3", "--min-steps", "6"]
    single = run_one(*halving, "--out", str(tmp_path / "one"), timeout=240)
    assert single.returncode == 0, single.stderr
    outs = finish(launch(lambda k: [*halving, "--out", str(tmp_path / "two")], 2, free_port()))
    for code, _out, err in outs:
        assert code == 0, err
    one = read_table(tmp_path / "one" / "results.csv")
    rungs = [int(row["rung"]) for row in one]
    # 15 points x 2 seeds; a point's seeds go together: 15, 5, 1 points enter the rungs
    # (the last point left trains straight to the end)
    assert rungs.count(2) == 2 and rungs.count(1) == 8 and rungs.count(0) == 20
    assert (tmp_path / "two" / "results.csv").read_text() == (
        tmp_path / "one" / "results.csv"
    ).read_text()


def test_killed_process_is_named_and_rerun_resumes(tmp_path):
    slow = [*SWEEP[:-3], "--steps", "1500", "--chunk-size", "2", "--quiet"]
    checkpoint = tmp_path / "ck"
    procs = launch(
        lambda k: [*slow, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "killed")],
        2,
        free_port(),
        ["--timeout", "10"],
    )
    deadline = time.monotonic() + 240
    while not list(checkpoint.glob("chunk-p1-*.npz")):
        assert procs[1].poll() is None, procs[1].communicate()[1]
        assert time.monotonic() < deadline, "process 1 wrote no chunk in time"
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    code, out, err = finish(procs[:1], timeout=120)[0]
    waited = time.monotonic() - killed_at
    procs[1].wait(timeout=10)
    assert code != 0
    # JAX's coordination service names the lost process, in one of two wordings depending
    # on which check sees it first: "Task 1 heartbeat timeout", or "The following tasks are
    # unhealthy (stopped sending heartbeats):" followed by the task number.
    named = re.search(r"Task 1 heartbeat timeout|stopped sending heartbeats\):\s+1\b", err)
    assert named, err[-3000:]
    assert waited < 10 + 60, f"the survivor took {waited:.0f} s to stop"

    resumed = run_one(*slow, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "resumed"))
    assert resumed.returncode == 0, resumed.stderr
    assert " 0 from checkpoint" not in resumed.stdout
    # members are bit-identical whatever the chunk size: the reference runs in one chunk
    unchunked = [a for a in slow if a not in ("--chunk-size", "2")]
    fresh = run_one(*unchunked, "--out", str(tmp_path / "fresh"))
    assert fresh.returncode == 0, fresh.stderr
    assert_same_table(
        read_table(tmp_path / "resumed" / "results.csv"),
        read_table(tmp_path / "fresh" / "results.csv"),
    )


def test_process_id_out_of_range(tmp_path):
    cluster = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2"]
    done = run_one(*SWEEP, *cluster, "--process-id", "2", timeout=60)
    assert done.returncode == 2
    assert "--process-id must be in [0, 2), got 2" in done.stderr


def test_port_in_use(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cluster = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
        done = run_one(*SWEEP, *cluster, "--process-id", "0", timeout=60)
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_an_ipv6_coordinator_port_is_probed_as_ipv6():
    from jaxhp import distributed as dist

    with socket.socket(socket.AF_INET6) as busy:
        busy.bind(("::1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match=rf"port {port} on \[::1\] is already in use"):
            dist.validate(dist.Cluster(f"[::1]:{port}", 2, 0, 10))
    free = dist.Cluster(f"[::1]:{port}", 2, 0, 10)  # was refused as "in use" when free
    assert dist.validate(free) == free


def test_processes_with_different_arguments_are_refused(tmp_path):
    def args_of(k):
        lambd = "0,1" if k == 0 else "0,2"
        return [*SWEEP[:6], "--lambd", lambd, *SWEEP[8:], "--out", str(tmp_path)]

    outs = finish(launch(args_of, 2, free_port(), ["--timeout", "20"]), timeout=120)
    assert all(code != 0 for code, _, _ in outs)
    assert any("different sweep arguments" in err for _, _, err in outs)
    assert not (tmp_path / "results.csv").exists()


def test_processes_that_see_different_checkpoints_are_stopped(tmp_path):
    tiny = [*SWEEP[:4], "--layers", "4", "--lambd", "0,1", "--keep-prob", "1"]
    tiny += ["--steps", "20", "--seeds", "1", "--quiet"]
    shared = tmp_path / "ck"
    single = run_one(*tiny, "--checkpoint", str(shared), "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr

    def args_of(k):  # process 1 sees an empty folder, as on a file system it does not share
        folder = shared if k == 0 else tmp_path / "unshared"
        return [*tiny, "--checkpoint", str(folder), "--out", str(tmp_path / "two")]

    outs = finish(launch(args_of, 2, free_port(), ["--timeout", "20"]), timeout=120)
    assert all(code != 0 for code, _, _ in outs)
    for _, _, err in outs:
        assert "processes see different finished members" in err, err[-3000:]
        assert "process 0 sees 2, process 1 sees 0" in err
    assert not (tmp_path / "two" / "results.csv").exists()


def roll_call_all(n, port, timeout_s=20, ids=None, counts=None):
    """Run roll_call for each (process id, process count) on threads; the outcome of each."""
    import threading

    from jaxhp import distributed as dist

    ids = list(range(n)) if ids is None else ids
    counts = [n] * len(ids) if counts is None else counts
    outcomes = [None] * len(ids)

    def one(slot):
        cluster = dist.Cluster(f"127.0.0.1:{port}", counts[slot], ids[slot], timeout_s)
        try:
            dist.roll_call(cluster)
            outcomes[slot] = "joined"
        except (ValueError, TimeoutError) as err:
            outcomes[slot] = err

    threads = [threading.Thread(target=one, args=(slot,)) for slot in range(len(ids))]
    for thread in reversed(threads):  # peers before process 0: they must wait for it
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_roll_call_returns_once_everyone_joined_and_leaves_the_port_free():
    port = free_port()
    assert roll_call_all(3, port) == ["joined"] * 3
    with socket.socket() as again:  # JAX's coordination service binds it next
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_roll_call_names_the_process_that_never_came():
    leader, peer = roll_call_all(3, free_port(), timeout_s=1, ids=[0, 1])
    assert isinstance(leader, TimeoutError)
    assert "process(es) 2 of 3 did not join the coordinator" in str(leader)
    assert isinstance(peer, TimeoutError) and "did not start the sweep" in str(peer)
    (alone,) = roll_call_all(2, free_port(), timeout_s=1, ids=[1])
    assert isinstance(alone, TimeoutError)
    assert "process 0 (the coordinator 127.0.0.1:" in str(alone)


def test_roll_call_refuses_a_duplicate_id_and_a_different_process_count():
    # every process that came is told why, not only the one that came second
    outcomes = roll_call_all(3, free_port(), timeout_s=5, ids=[0, 1, 1])
    for outcome in outcomes:
        assert isinstance(outcome, ValueError), outcomes
        assert "two processes were started with process id 1" in str(outcome)
    leader, peer = roll_call_all(2, free_port(), timeout_s=5, counts=[2, 3])
    for outcome in (leader, peer):
        assert isinstance(outcome, ValueError), outcome
        assert "process 1 was started with 3 processes and process 0 with 2" in str(outcome)


def test_a_process_that_never_joins_is_a_clear_error_not_an_abort(tmp_path):
    # Before the roll call, JAX's own join aborted from C++: exit 134 and a stack trace.
    cluster = ["--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2"]
    done = run_one(*SWEEP, *cluster, "--process-id", "0", "--timeout", "2", timeout=60)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "process(es) 1 of 2 did not join the coordinator" in done.stderr
    assert "Check failure" not in done.stderr


def test_roll_call_ignores_a_connection_that_is_not_a_jaxhp_process():
    import threading

    port = free_port()
    outcome = []
    thread = threading.Thread(target=lambda: outcome.extend(roll_call_all(2, port, ids=[0])))
    thread.start()
    deadline = time.monotonic() + 20
    while True:  # a port probe: connects, says something else, leaves
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as probe:
                probe.sendall(b"GET / HTTP/1.0\r\n\r\n")
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert roll_call_all(2, port, ids=[1]) == ["joined"]
    thread.join(timeout=30)
    assert outcome == ["joined"]


def _a_peer_that_quits(port, process, n, deadline):
    """Connect as process ``process`` of ``n``, say so, and close: a peer that died."""
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as peer:
                peer.sendall(f"jaxhp {process} {n}\n".encode())
            return
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_a_peer_that_died_after_answering_is_missing_and_may_come_back():
    import threading

    for comes_back in (False, True):
        port, outcome = free_port(), []
        leader = threading.Thread(
            target=lambda: outcome.extend(roll_call_all(3, port, timeout_s=3, ids=[0]))
        )
        leader.start()
        _a_peer_that_quits(port, 1, 3, time.monotonic() + 20)  # while 0 waits for 2
        time.sleep(0.3)
        if comes_back:  # restarted with the same id: welcome, not a duplicate
            assert roll_call_all(3, port, timeout_s=3, ids=[1, 2]) == ["joined"] * 2
        leader.join(timeout=30)
        if comes_back:
            assert outcome == ["joined"]
        else:  # before: process 1 counted as joined, and process 0 went on into JAX
            (error,) = outcome
            assert isinstance(error, TimeoutError) and "process(es) 1, 2 of 3" in str(error)
