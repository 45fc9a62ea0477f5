"""Sweeps over several processes or hosts with JAX's multi-controller runtime.

Every process builds the same space and calls :func:`jaxhp.run_sweep` with
``distributed=Cluster(...)``. The members still to train are split by global member index
into contiguous blocks, one per process; each process trains its block on its local
devices, writes its own checkpoint chunks (``chunk-p<K>-...``), and the results are
all-gathered so that every process holds the full table; process 0 writes the outputs.
On CPU the gathers use JAX's gloo collectives, so all of this runs on one machine too.

Timeouts (``Cluster.timeout_s``, default 60 s):
- start-up: every process must join within ``timeout_s`` or ``initialize`` raises a
  TimeoutError naming the processes that did not come (process 0 holds a short roll call
  on the coordinator's port before JAX starts, because JAX's own join aborts the process
  from C++ when a peer never comes);
- liveness: a process that dies (or hangs without heartbeats) is detected by JAX's
  coordination service within ``timeout_s``; every survivor is then stopped by JAX with
  ``Task K heartbeat timeout`` (task K is process K) and a non-zero exit status (the
  runtime aborts the process), whether it was training or waiting in a gather. None waits
  forever. If process 0 itself dies, the others lose the coordination service and stop the
  same way.
A re-run with the same arguments, with any number of processes, resumes from the
checkpoint chunks that every process wrote before the failure. The checkpoint folder must
be shared: at start-up the processes compare what they see in it (the sweep's identity and
its finished members) and stop with a clear error when their views differ.
"""

from __future__ import annotations

import hashlib
import select
import socket
import time
from typing import NamedTuple

import jax
import numpy as np

DEFAULT_TIMEOUT_S = 60


class Cluster(NamedTuple):
    """Where a process sits in a multi-process sweep.

    ``coordinator`` is ``"host:port"`` of process 0's coordination service. With all three
    of coordinator, num_processes and process_id left as None, JAX detects them from the
    environment (SLURM, Open MPI, Kubernetes... whatever ``jax.distributed.initialize``
    supports).
    """

    coordinator: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    timeout_s: int = DEFAULT_TIMEOUT_S


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not (0 < int(port) < 65536):
        raise ValueError(f"coordinator must be HOST:PORT with a port in 1..65535, got {address!r}")
    return host, int(port)


def _port_is_free(host: str, port: int) -> bool:
    host = "127.0.0.1" if host == "localhost" else host.strip("[]")  # [::1] is IPv6's
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def validate(cluster: Cluster) -> Cluster:
    """Check a cluster description before anything starts; raise ValueError naming the
    argument otherwise."""
    given = [v is not None for v in cluster[:3]]
    if any(given) and not all(given):
        raise ValueError(
            "give coordinator, num_processes and process_id together, or none "
            "of them to let JAX read the cluster from the environment"
        )
    if not all(given):
        return cluster
    n, k = cluster.num_processes, cluster.process_id
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_processes must be a positive int, got {n!r}")
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < n:
        raise ValueError(f"process_id must be in [0, {n}), got {k!r}")
    host, port = _split_address(cluster.coordinator)
    if k == 0 and not _port_is_free(host, port):
        raise ValueError(
            f"coordinator port {port} on {host} is already in use; pick a free "
            "port for --coordinator"
        )
    if not (cluster.timeout_s > 0):
        raise ValueError(f"timeout_s must be > 0, got {cluster.timeout_s!r}")
    return cluster


def initialize(cluster: Cluster) -> None:
    """Join the cluster: validate, pick gloo collectives on CPU, ``jax.distributed``.

    Call it before any other JAX computation. A no-op when already initialised.
    """
    if jax.distributed.is_initialized():
        return
    cluster = validate(cluster)
    if cluster.coordinator is not None and cluster.num_processes > 1:
        roll_call(cluster)
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=cluster.coordinator,
            num_processes=cluster.num_processes,
            process_id=cluster.process_id,
            initialization_timeout=int(cluster.timeout_s),
            heartbeat_timeout_seconds=int(cluster.timeout_s),
        )
    except RuntimeError as err:
        if "before" in str(err) and "backend" in str(err).lower():
            raise RuntimeError(
                "jaxhp.distributed.initialize must run before any JAX "
                "computation: call it at the start of the program"
            ) from err
        raise


def roll_call(cluster: Cluster) -> None:
    """Return once every process of ``cluster`` has called this, or raise a clear error.

    Process 0 listens on the coordinator's port (JAX's coordination service takes the port
    over afterwards); every other process connects, says who it is, and waits for process
    0's word. Within ``timeout_s`` of process 0's start, a missing process is a TimeoutError
    naming it (a peer that connected and then died counts as missing), and a duplicate
    process id or a different process count is a ValueError on every process that came.
    A peer waits up to twice ``timeout_s`` for that word, so start-up takes at most
    ``2 * timeout_s`` before JAX's own join (which has ``timeout_s`` of its own).
    """
    host, port = _split_address(cluster.coordinator)
    if cluster.process_id == 0:
        _call_the_roll(cluster, port, time.monotonic() + cluster.timeout_s)
    else:  # process 0's verdict counts: wait for it as long as it may take to give one
        _answer_the_roll(cluster, host.strip("[]"), port, time.monotonic(), cluster.timeout_s)


def _call_the_roll(cluster: Cluster, port: int, deadline: float) -> None:
    n = cluster.num_processes
    peers = {}  # process id -> its connection
    try:
        with _listening_socket(port, cluster) as server:
            while len(peers := _still_open(peers)) < n - 1:
                process, conn, their_n = _next_peer(server, deadline, cluster, peers)
                peers = _still_open(peers)  # a peer that quit and came back is no duplicate
                problem = _roll_problem(process, their_n, n, peers)
                if problem:
                    for other in (conn, *peers.values()):
                        _send(other, f"refused {problem}\n")
                    raise ValueError(problem)
                peers[process] = conn
        # The listener is closed: JAX's coordination service can take the port now.
        for conn in peers.values():
            _send(conn, "go\n")
        for conn in peers.values():  # let the peers close first: the port stays reusable
            conn.settimeout(5)
            try:
                conn.recv(1)
            except OSError:
                pass
    finally:
        for conn in peers.values():
            conn.close()


def _listening_socket(port: int, cluster: Cluster) -> socket.socket:
    try:
        if socket.has_dualstack_ipv6():
            return socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
        return socket.create_server(("", port))
    except OSError as err:
        raise ValueError(
            f"coordinator port {port} cannot be opened ({err.strerror or err}); pick a free "
            "port for the coordinator"
        ) from None


def _next_peer(server, deadline: float, cluster: Cluster, peers: dict):
    """(process id, connection) of the next jaxhp process that connects; other
    connections (a port probe, say) are ignored."""
    n = cluster.num_processes
    while True:
        server.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            conn, _ = server.accept()
        except TimeoutError:
            missing = sorted(set(range(1, n)) - set(_still_open(peers)))
            raise TimeoutError(
                f"process(es) {', '.join(map(str, missing))} of {n} did not join the "
                f"coordinator {cluster.coordinator} within {cluster.timeout_s} s; start one "
                f"process for each process id 0..{n - 1}, each with the same coordinator and "
                "number of processes, or raise the timeout"
            ) from None
        conn.settimeout(min(5, max(deadline - time.monotonic(), 0.01)))
        try:
            words = conn.makefile("r").readline().split()
        except (OSError, UnicodeDecodeError):
            words = []
        if len(words) == 3 and words[0] == "jaxhp" and all(w.isdigit() for w in words[1:]):
            conn.settimeout(None)
            return int(words[1]), conn, int(words[2])
        conn.close()


def _roll_problem(process: int, their_n: int, n: int, peers: dict) -> str | None:
    if their_n != n:
        return (
            f"process {process} was started with {their_n} processes and process 0 with "
            f"{n}; give every process the same number of processes"
        )
    if process in peers:
        return (
            f"two processes were started with process id {process}; give each process "
            f"its own id in 1..{n - 1}"
        )
    return None


def _still_open(peers: dict) -> dict:
    """The peers whose connection is still open (a peer that quit has closed its own)."""
    live = {}
    for process, conn in peers.items():
        readable, _, _ = select.select([conn], [], [], 0)
        try:
            closed = bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            closed = True
        if closed:
            conn.close()
        else:
            live[process] = conn
    return live


def _send(conn, text: str) -> None:
    try:
        conn.sendall(text.encode())
    except OSError:  # a peer that has gone: it learns nothing, and needs nothing
        pass


def _answer_the_roll(cluster: Cluster, host: str, port: int, started: float, wait: float):
    process, n = cluster.process_id, cluster.num_processes
    try:
        socket.getaddrinfo(host, port)
    except socket.gaierror as err:
        raise ValueError(f"coordinator host {host!r} cannot be resolved ({err})") from None
    while True:
        try:
            conn = socket.create_connection((host, port), timeout=5)
            break
        except OSError:
            if time.monotonic() - started >= wait:
                raise TimeoutError(
                    f"process 0 (the coordinator {host}:{port}) did not answer process "
                    f"{process} within {cluster.timeout_s} s; start process 0 with the same "
                    "coordinator, or check the address and that the port is reachable"
                ) from None
            time.sleep(0.2)
    with conn:  # process 0 answers within its own timeout of its start, after ours began
        conn.settimeout(max(started + 2 * wait - time.monotonic(), 0.01))
        try:
            conn.sendall(f"jaxhp {process} {n}\n".encode())
            reply = conn.makefile("r").readline().strip()
        except (OSError, UnicodeDecodeError):
            reply = ""
    if reply.startswith("refused "):
        raise ValueError(reply.removeprefix("refused "))
    if reply != "go":
        raise TimeoutError(
            f"process 0 (the coordinator {host}:{port}) did not start the sweep for "
            f"process {process}: not every process joined it within its timeout"
        )


def assigned(pending: np.ndarray, process_id: int, num_processes: int) -> np.ndarray:
    """The members a process trains: a contiguous block of the pending global indices."""
    return np.array_split(pending, num_processes)[process_id]


def allgather_bytes(payload: bytes) -> list[bytes]:
    """Every process's ``payload`` (same length on all), in process order."""
    from jax.experimental import multihost_utils

    gathered = multihost_utils.process_allgather(np.frombuffer(payload, np.uint8))
    return [bytes(row) for row in np.asarray(gathered).reshape(jax.process_count(), -1)]


def agree_on_spec(spec: str) -> None:
    """All processes must run the same sweep: exchange the spec hashes and compare."""
    digest = hashlib.sha256(spec.encode()).digest()
    hashes = allgather_bytes(digest)
    for process, other in enumerate(hashes):
        if other != digest:
            raise ValueError(
                f"process {process} was started with different sweep arguments (spec hash "
                f"{other.hex()[:12]} != {digest.hex()[:12]} on process "
                f"{jax.process_index()}); start every process with the same arguments"
            )


def agree_on_finished(finished, folder) -> None:
    """All processes must see the same finished members in the checkpoint folder, or they
    would split different pending sets (training members twice, skipping some, or failing
    at the gather). Exchange a hash of the sorted finished set and compare.

    It is a collective: it returns on every process only once every process has read the
    folder, so no chunk is written before all have read it.

    Raises:
      ValueError: naming the processes whose views differ and how many members each saw.
    """
    members = np.asarray(sorted(int(i) for i in finished), np.int64)
    digest = hashlib.sha256(members.tobytes()).digest()
    payload = digest + np.int64(len(members)).tobytes()
    views = allgather_bytes(payload)
    if any(view != views[0] for view in views):
        counts = ", ".join(
            f"process {p} sees {int(np.frombuffer(view[32:], np.int64)[0])}"
            for p, view in enumerate(views)
        )
        raise ValueError(
            f"processes see different finished members in checkpoint folder {folder} "
            f"({counts}); every process must read the same shared folder: check that "
            "it is on a file system all hosts share, wait until it is in sync, then rerun"
        )


def agree_on_survivors(survivors, rung: int) -> None:
    """All processes must continue the same members into a halving rung. Each ranks the
    same gathered costs, so they agree unless a process computed differently; compare.

    Raises:
      RuntimeError: naming the rung, when the survivor sets differ.
    """
    members = np.asarray(sorted(int(i) for i in survivors), np.int64)
    views = allgather_bytes(hashlib.sha256(members.tobytes()).digest())
    if any(view != views[0] for view in views):
        raise RuntimeError(
            f"processes chose different survivors for halving rung {rung}; the processes "
            "must run the same jaxhp, JAX and hardware to rank members identically"
        )


def gather_members(members: np.ndarray, arrays: dict[str, np.ndarray], counts: list[int]):
    """All-gather each process's (members, arrays); ``counts`` is every process's member
    count (known to all from the deterministic assignment). Returns member -> arrays."""
    from jax.experimental import multihost_utils

    width = max(counts)
    padded_members = np.full(width, -1, np.int64)
    padded_members[: len(members)] = members
    gathered_members = np.asarray(multihost_utils.process_allgather(padded_members))
    done = {}
    for name, values in arrays.items():
        shape = (width, *values.shape[1:])
        padded = np.zeros(shape, values.dtype)
        padded[: len(values)] = values
        gathered = np.asarray(multihost_utils.process_allgather(padded))
        for process in range(len(counts)):
            for row in range(counts[process]):
                member = int(gathered_members[process, row])
                done.setdefault(member, {})[name] = gathered[process, row]
    return done
