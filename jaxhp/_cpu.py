"""One JAX device per CPU core by default, so sweeps use every core without being asked.

XLA runs a course-scale sweep's small per-member operations on about one core; sharding
the members over one device per core runs the shards side by side. This module sets that
up when ``jaxhp`` is imported, but only if JAX has not started yet and nothing else chose a
CPU device count (``JAX_NUM_CPU_DEVICES``, ``XLA_FLAGS=--xla_force_host_platform_device_count``
or ``jax.config.update("jax_num_cpu_devices", ...)``). ``JAXHP_CPU_DEVICES=N`` chooses N
instead (``JAXHP_CPU_DEVICES=1`` keeps JAX's single CPU device). Other backends (GPU, TPU)
are not affected.
"""

from __future__ import annotations

import os

import jax

ENV = "JAXHP_CPU_DEVICES"


def _chosen_elsewhere() -> bool:
    flags = os.environ.get("XLA_FLAGS", "")
    return (
        "JAX_NUM_CPU_DEVICES" in os.environ
        or "xla_force_host_platform_device_count" in flags
        or jax.config.jax_num_cpu_devices != -1
    )


def default_cpu_devices() -> int | None:
    """The CPU device count jaxhp asks for at import, or None when it leaves JAX alone."""
    if ENV in os.environ:
        value = os.environ[ENV].strip()
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{ENV} must be a positive int, got {value!r}")
        return int(value)
    if _chosen_elsewhere():
        return None
    return os.cpu_count() or 1


def split_cpu_by_default() -> None:
    """Apply :func:`default_cpu_devices` if JAX's backends have not started (else no-op)."""
    n = default_cpu_devices()
    if n is None:
        return
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # JAX already started: the user's process decides
        pass
