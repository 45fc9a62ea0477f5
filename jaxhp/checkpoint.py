"""Checkpoints of a sweep: its identity, the spec file, the chunk files, damaged files.

A checkpoint folder holds ``spec.json`` and one ``chunk-*.npz`` per finished chunk. A re-run
of the same sweep reuses the finished members and trains only the others.

Identity by content. A sweep is identified by what its members compute, never by how
Python prints it (every ``lambda`` has the same name, and a ``functools.partial``'s repr
holds a memory address):
- the training program: the StableHLO text of ``jax.jit(jaxhp.fit)`` lowered on abstract
  inputs (the optimizer, model, augmentation and every static choice are in it, including
  the constants they close over);
- the data: the train and dev arrays, byte for byte;
- the members: every member's hyperparameters and seed, and the sweep's base seed.
Where the program cannot be identified from its text (a ``jax.pure_callback`` or
``io_callback`` inside it: the text names only a slot, not the Python function), opening a
checkpoint is refused unless the caller names the program with ``checkpoint_id``.

Versions. ``spec.json`` records the jaxhp and JAX versions that wrote it. A different
version may compile the same program differently, so resuming is refused with a message
that says how to start fresh (delete the folder or use another path; every member is then
re-trained). Nothing is mixed across versions.

Damaged files. Every chunk records its sweep's identity. A chunk that cannot be read (empty,
truncated), holds foreign arrays (missing keys, wrong shapes or dtypes, members out of range)
or belongs to another sweep is set aside (renamed ``*.damaged`` or ``*.foreign``) with a
warning naming it, and its members are trained again; the other chunks are kept. A damaged
``spec.json`` stops the sweep with a message naming the file and the fix.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxhp import _warn, train
from jaxhp.records import without_unset_new_fields

SPEC_FILE = "spec.json"
FORMAT = 2  # version of the folder layout (1: first release, no identity in the chunks)

# A Python callback is lowered to a custom call that names a slot, not the function.
_CALLBACK = re.compile(r"python\w*callback")
# How Python prints objects (memory addresses) and source locations: never stable.
_UNSTABLE = re.compile(r" at 0x[0-9a-fA-F]+|\.py[\"':]")


class SweepSpec(NamedTuple):
    """The identity of a sweep.

    Attributes:
      digest: sha256 hex of ``parts``: equal digests mean equal results.
      parts: ``program``, ``data`` and ``members``: sha256 hex of each.
      n_members: number of members.
      unidentified: why the program could not be identified (None when it was).
      summary: the config's plain fields, the data's row counts and the members' count
        and names, as JSON: what a refusal names when two sweeps differ.
    """

    digest: str
    parts: dict[str, str]
    n_members: int
    unidentified: str | None = None
    summary: dict | None = None  # readable fields, to say how two sweeps differ


def _versions() -> dict[str, str]:
    import jaxhp

    return {"jaxhp": jaxhp.__version__, "jax": jax.__version__}


def _abstract(tree, drop_leading: bool = False):
    """ShapeDtypeStructs of a pytree of arrays (without the leading axis if asked)."""

    def leaf(a):
        a = a if isinstance(a, jax.ShapeDtypeStruct) else np.asarray(a)
        shape = a.shape[1:] if drop_leading else a.shape
        return jax.ShapeDtypeStruct(shape, jax.dtypes.canonicalize_dtype(a.dtype))

    return jax.tree.map(leaf, tree)


def program_text(config, data, hparams) -> str:
    """The StableHLO text of ``jax.jit(jaxhp.fit)`` for ``config``, lowered on abstract
    inputs (a key, one member's hparams and the data's shapes, no values).

    Args:
      config: a :class:`jaxhp.TrainConfig`.
      data: :class:`jaxhp.Data` of arrays or ``jax.ShapeDtypeStruct``s.
      hparams: one member's :class:`jaxhp.HParams` (arrays or ShapeDtypeStructs).

    Returns:
      The module text, without debug locations.
    """
    key = jax.eval_shape(lambda: jax.random.key(0))
    lowered = jax.jit(train.fit).lower(key, _abstract(hparams), _abstract(data), config)
    return lowered.as_text(debug_info=False)


def _program_part(config, data, hparams) -> tuple[str, str | None]:
    """sha256 of the lowered program, and why it is not an identity (None when it is)."""
    text = program_text(config, data, hparams)
    reason = None
    if _CALLBACK.search(text):
        reason = "it calls back into Python (jax.pure_callback or io_callback)"
    elif _UNSTABLE.search(text):
        reason = "its compiled text holds a memory address or a file path"
    return hashlib.sha256(text.encode()).hexdigest(), reason


def _is_plain(value) -> bool:
    """Whether a value is plain data (no callable or object whose text is not its identity)."""
    if isinstance(value, (tuple, list)):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _plain_fields(config) -> dict[str, Any]:
    """The config fields that are plain data (callables and other objects left out)."""
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return without_unset_new_fields({k: v for k, v in fields.items() if _is_plain(v)})


def _hash_arrays(digest, arrays) -> None:
    for array in arrays:
        array = np.ascontiguousarray(np.asarray(array))
        digest.update(f"{array.shape}{array.dtype.str}".encode())
        digest.update(array.reshape(-1).view(np.uint8).data)  # its bytes, without a copy


def data_digest(data) -> str:
    """sha256 of the train and dev arrays (shapes, dtypes and bytes; test is unused)."""
    digest = hashlib.sha256()
    _hash_arrays(digest, [a for pair in (data.train, data.dev) for a in (pair or ())])
    return digest.hexdigest()


def sweep_spec(
    config,
    data,
    hparams,
    seeds,
    seed: int,
    *,
    static: dict[str, list] | None = None,
    checkpoint_id: str | None = None,
    program_notes: dict | None = None,
) -> SweepSpec:
    """The identity of a sweep: its training program(s), data and members.

    Args:
      config: the :class:`jaxhp.TrainConfig`, or a sequence of them (one per static group
        of the sweep, in a fixed order).
      data: :class:`jaxhp.Data` as trained on (train and dev are hashed; test is unused).
      hparams: :class:`jaxhp.HParams` with a leading member axis (numpy arrays).
      seeds: (n,) member seeds.
      seed: the sweep's base seed.
      static: per-member values of static axes (JSON-able lists), if any.
      checkpoint_id: a name the caller gives the training program; when given, the program
        is not lowered, and the id (with the config's plain fields) stands for it.
      program_notes: JSON-able values outside the config that change what the programs
        compute (the sweep's vmap widths, its schedule): hashed with the program and
        named in the summary, so that a refusal says which differs.

    Returns:
      A :class:`SweepSpec`.

    Raises:
      TypeError: when ``checkpoint_id`` is given but not a non-empty str.
    """
    configs = list(config) if isinstance(config, (list, tuple)) else [config]
    example = _abstract(hparams, drop_leading=True)
    program = hashlib.sha256()
    unidentified = None
    if checkpoint_id is not None:
        if not isinstance(checkpoint_id, str) or not checkpoint_id:
            raise TypeError(f"checkpoint_id must be a non-empty str, got {checkpoint_id!r}")
        plain = [_plain_fields(c) for c in configs]
        program.update(json.dumps({"id": checkpoint_id, "config": plain}).encode())
    else:
        for one in configs:
            part, reason = _program_part(one, data, example)
            program.update(part.encode())
            unidentified = unidentified or reason

    program.update(json.dumps(program_notes or {}, sort_keys=True).encode())
    members = hashlib.sha256()
    members.update(json.dumps({"names": list(hparams._fields), "seed": int(seed)}).encode())
    members.update(json.dumps(static or {}, sort_keys=True).encode())
    _hash_arrays(members, [*hparams._asdict().values(), np.asarray(seeds, np.int64)])

    parts = {
        "program": program.hexdigest(),
        "data": data_digest(data),
        "members": members.hexdigest(),
    }
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
    summary = {
        "config": [_plain_fields(c) for c in configs],
        "train rows": len(data.train[0]),
        "dev rows": 0 if data.dev is None else len(data.dev[0]),
        "members": len(seeds),
        "seed": int(seed),
        **{name: _few(values) for name, values in hparams._asdict().items()},
        **(program_notes or {}),
    }
    summary = json.loads(json.dumps(summary))  # tuples as lists, as spec.json reads back
    return SweepSpec(digest, parts, len(seeds), unidentified, summary)


def _few(values) -> str:
    """A hyperparameter's distinct values, in short: "[0, 0.1, 1]" or "[0.001 .. 3] (20 values)"."""
    distinct = np.unique(np.asarray(values, np.float64).reshape(len(values), -1), axis=0)
    shown = [("/".join(f"{v:.6g}" for v in row)) for row in distinct]
    if len(shown) <= 6:
        return f"[{', '.join(shown)}]"
    return f"[{shown[0]} .. {shown[-1]}] ({len(shown)} values)"


def _differences(stored: dict | None, now: dict | None) -> list[str]:
    """What differs between two summaries, as "steps 30 here, 20 in the checkpoint"."""
    if not isinstance(stored, dict) or not isinstance(now, dict):
        return []
    pairs = [(k, stored.get(k), now.get(k)) for k in now if k != "config"]
    old_configs, new_configs = stored.get("config") or [], now.get("config") or []
    if len(old_configs) == len(new_configs):
        for old, new in zip(old_configs, new_configs):
            pairs += [(k, old.get(k), new.get(k)) for k in new if k != "model"]
    else:
        pairs.append(("static groups", len(old_configs), len(new_configs)))
    return [f"{k} {new} here, {old} in the checkpoint" for k, old, new in pairs if old != new]


_PART_WORDS = {
    "program": "the training program (config, model, optimizer, augmentation, schedule or "
    "vmap width)",
    "data": "the data",
    "members": "the members (hyperparameters or seeds)",
}


def _folder(path) -> Path:
    """The checkpoint folder, created if missing; a clear error when it cannot be."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"checkpoint must be a folder, got {str(path)!r}, which is a file; give a "
            "folder path (it is created if missing)"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(
            f"checkpoint folder {str(path)!r} cannot be created ({err.strerror}); give a "
            "folder path under a writable folder"
        ) from err
    return path


def _read_spec(file: Path) -> dict:
    fix = (
        f"delete {file} to resume (every chunk records its sweep's identity, so only "
        "this sweep's chunks are reused), or use a new checkpoint path"
    )
    try:
        stored = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"checkpoint spec file {file} is damaged ({err}); {fix}") from err
    kinds = {"format": int, "spec": str, "parts": dict, "members": int, "versions": dict}
    wrong = [
        name
        for name, kind in kinds.items()
        if not isinstance(stored, dict) or not isinstance(stored.get(name), kind)
    ]
    if wrong:
        raise ValueError(
            f"checkpoint spec file {file} is damaged or from an older jaxhp (missing or "
            f"malformed fields: {', '.join(wrong)}); {fix}"
        )
    return stored


def _check_same_sweep(path: Path, stored: dict, spec: SweepSpec) -> None:
    fresh = (
        f"use another checkpoint path, or delete {path} to start fresh (every member is re-trained)"
    )
    versions = _versions()
    if stored["versions"] != versions:
        was = ", ".join(f"{k} {v}" for k, v in sorted(stored["versions"].items()))
        now = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
        raise ValueError(
            f"checkpoint {path} was written by {was}; this is {now}, which may compute "
            f"different results, so its chunks are not reused; {fresh}"
        )
    if stored["spec"] != spec.digest:
        differ = [_PART_WORDS[k] for k in spec.parts if stored["parts"].get(k) != spec.parts[k]]
        named = "; ".join(_differences(stored.get("summary"), spec.summary))
        raise ValueError(
            f"checkpoint {path} was written by a different sweep (it differs in "
            f"{' and '.join(differ) or 'its identity'}{': ' + named if named else ''}); {fresh}"
        )


class Checkpoint:
    """A folder of finished chunks: ``spec.json`` plus one ``.npz`` per chunk, each written
    to a temporary file and renamed, so a killed sweep leaves only whole chunks.

    Args:
      path: the folder (created if missing).
      spec: the sweep's :class:`SweepSpec`.
      expected: name -> (shape, dtype) of each per-member array a chunk holds (without the
        member axis; a None length accepts any).
      tag: inserted in chunk names (e.g. ``"p1-"``: chunks written by process 1).

    Raises:
      ValueError: the path is a file; the program cannot be identified (pass
        ``checkpoint_id``); spec.json is damaged; the folder holds another sweep, or was
        written by another jaxhp or JAX version.
    """

    def __init__(self, path, spec: SweepSpec, expected: dict[str, tuple], *, tag: str = ""):
        if spec.unidentified:
            raise ValueError(
                f"cannot checkpoint this sweep: its training program cannot be identified "
                f"from its compiled form ({spec.unidentified}); name it yourself with "
                "run_sweep(..., checkpoint_id='a name that changes whenever the program "
                "changes')"
            )
        self.path = _folder(path)
        self.spec = spec
        self.expected = {k: (tuple(s), np.dtype(d)) for k, (s, d) in expected.items()}
        self.tag = tag
        spec_file = self.path / SPEC_FILE
        if spec_file.exists():
            _check_same_sweep(self.path, _read_spec(spec_file), spec)
        else:
            stored = {
                "format": FORMAT,
                "spec": spec.digest,
                "parts": spec.parts,
                "members": spec.n_members,
                "versions": _versions(),
                "summary": spec.summary,
            }
            _atomic_write(spec_file, json.dumps(stored, indent=1).encode())

    def load(self) -> dict[int, dict[str, np.ndarray]]:
        """Finished members: index -> that member's result arrays. Chunks that are damaged
        or foreign are set aside with a warning (their members count as not finished)."""
        done = {}
        for file in sorted(self.path.glob("chunk-*.npz")):
            try:
                arrays = _read_chunk(file)
            except FileNotFoundError:  # another process set it aside meanwhile
                continue
            except Exception as err:  # noqa: BLE001 - zipfile, numpy and the OS raise many types
                _set_aside(file, "damaged", _unreadable(file, err))
                continue
            problem = self._problem(arrays)
            if problem:
                kind = "foreign" if problem.startswith("written by") else "damaged"
                _set_aside(file, kind, problem)
                continue
            members = arrays.pop("member")
            arrays.pop("spec")
            for row, member in enumerate(members):
                done[int(member)] = {k: v[row] for k, v in arrays.items()}
        return done

    def _problem(self, arrays: dict[str, np.ndarray]) -> str | None:
        """Why a chunk's arrays are not this sweep's (None when they are)."""
        spec = arrays.get("spec")
        if spec is None or spec.shape != () or str(spec) != self.spec.digest:
            return "written by another sweep"
        missing = sorted({"member", *self.expected} - arrays.keys())
        if missing:
            return f"arrays missing: {missing}"
        members = arrays["member"]
        if members.ndim != 1 or members.dtype.kind not in "iu":
            return f"member indices of shape {members.shape} and dtype {members.dtype}"
        if members.size and (members.min() < 0 or members.max() >= self.spec.n_members):
            return f"member indices outside [0, {self.spec.n_members})"
        for name, (shape, dtype) in self.expected.items():
            got = arrays[name]
            fits = len(got.shape) == len(shape) + 1 and all(
                want is None or have == want
                for have, want in zip(got.shape, (len(members), *shape))
            )
            if not fits or got.dtype != dtype:
                return (
                    f"{name} has shape {got.shape} and dtype {got.dtype}, expected "
                    f"{(len(members), *shape)} {dtype}"
                )
        return None

    def save(self, members: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        """Write one finished chunk: ``members`` (k,) and each array with k rows."""
        name = f"chunk-{self.tag}{int(members[0]):07d}-{len(members)}-{os.getpid()}.npz"
        payload = _npz_bytes(
            member=np.asarray(members, np.int64), spec=np.asarray(self.spec.digest), **arrays
        )
        _atomic_write(self.path / name, payload)


def _read_chunk(file: Path) -> dict[str, np.ndarray]:
    with np.load(file) as chunk:  # allow_pickle stays off: a chunk holds plain arrays
        return {k: chunk[k] for k in chunk.files}


def _unreadable(file: Path, err: Exception) -> str:
    """Why a chunk cannot be read. Bytes that are no zip archive at all make numpy try
    them as a pickle and refuse that, which would read as if the chunk held objects."""
    try:
        with open(file, "rb") as f:
            head = f.read(4)
    except OSError:
        head = b""
    if head and head != b"PK\x03\x04":
        return "cannot be read: not an .npz file (overwritten?)"
    return f"cannot be read: {type(err).__name__}: {err}"


def _set_aside(file: Path, kind: str, reason: str) -> None:
    target = file.with_name(f"{file.name}.{kind}")
    try:
        os.replace(file, target)
    except FileNotFoundError:  # another process set it aside first
        pass
    _warn.warn(
        f"checkpoint chunk {file} is {kind} ({reason}); set aside as {target.name}, and "
        "its members will be trained again"
    )


def _npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _umask() -> int:
    """The process's umask (reading it means setting it: put it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, payload: bytes) -> None:
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide results from others
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno is not None:  # the file asked for, not
            raise type(err)(err.errno, err.strerror, str(path)) from None  # the temporary one
        raise
