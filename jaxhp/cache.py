"""JAX's persistent compilation cache for jaxhp's programs, and a compile-time meter.

Compiling a sweep program takes seconds, often more than training a course-scale sweep.
With the cache on, a second process that builds the same program (same shapes, config and
JAX version) loads the compiled executable from disk instead. ``jaxhp sweep`` turns it on
by default (``--no-cache`` turns it off); library users opt in with
:func:`enable_compilation_cache`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import jax

_HITS = "/jax/compilation_cache/cache_hits"
_MISSES = "/jax/compilation_cache/cache_misses"
_TRACE = "/jax/core/compile/jaxpr_trace_duration"
_LOWER = "/jax/core/compile/jaxpr_to_mlir_module_duration"
_COMPILE = "/jax/core/compile/backend_compile_duration"  # a cache hit counts its load time


def default_cache_dir() -> Path:
    """``$JAXHP_CACHE_DIR``, else ``$XDG_CACHE_HOME/jaxhp/xla``, else ``~/.cache/jaxhp/xla``."""
    if os.environ.get("JAXHP_CACHE_DIR"):
        return Path(os.environ["JAXHP_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxhp" / "xla"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
    """Store every compiled program under ``path`` and reuse it in later processes.

    Every program is cached, however fast it compiled (JAX's default skips those under a
    second, which would leave out most of jaxhp's). Call it before the programs you want
    cached are compiled. It sets JAX's global ``jax_compilation_cache_dir`` option, so it
    applies to every JAX program in this process.

    Args:
      path: the cache folder (created if missing); default :func:`default_cache_dir`.

    Returns:
      The cache folder.

    Raises:
      ValueError: ``path`` exists and is not a folder, or cannot be created.
    """
    folder = default_cache_dir() if path is None else Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"cache path must be a folder, got the file {str(folder)!r}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the cache folder {str(folder)!r}: {err}") from err
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


@dataclass
class CompileStats:
    """What JAX compiled while a :func:`compile_stats` block ran.

    Attributes:
      trace_s, lower_s, compile_s: seconds spent tracing, lowering to StableHLO, and in the
        backend compiler (on a cache hit, loading the executable).
      cache_hits, cache_misses: persistent-cache lookups that found or missed a program.
      programs: programs compiled (or loaded from the cache).
    """

    trace_s: float = 0.0
    lower_s: float = 0.0
    compile_s: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    programs: int = 0

    @property
    def total_s(self) -> float:
        return self.trace_s + self.lower_s + self.compile_s


@contextlib.contextmanager
def compile_stats():
    """Measure compilation inside the block through JAX's monitoring events.

    Example:
      >>> with compile_stats() as stats:
      ...     results = jaxhp.run_sweep(space, data, config)
      >>> stats.compile_s, stats.cache_hits
    """
    stats = CompileStats()
    durations = {_TRACE: "trace_s", _LOWER: "lower_s", _COMPILE: "compile_s"}
    counts = {_HITS: "cache_hits", _MISSES: "cache_misses"}

    def on_duration(event: str, seconds: float, **_):
        if event in durations:
            setattr(stats, durations[event], getattr(stats, durations[event]) + seconds)
        stats.programs += event == _COMPILE

    def on_event(event: str, **_):
        if event in counts:
            setattr(stats, counts[event], getattr(stats, counts[event]) + 1)

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    jax.monitoring.register_event_listener(on_event)
    try:
        yield stats
    finally:
        jax.monitoring.unregister_event_duration_listener(on_duration)
        jax.monitoring.unregister_event_listener(on_event)
