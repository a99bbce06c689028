"""JAX's persistent compilation cache, set up so that small kernels are cached too.

By default JAX only stores compiles slower than ``jax_persistent_cache_min_compile_time_secs``
(1 s), so the tens-of-milliseconds kernels of a test suite are compiled afresh every run. The
directory is keyed by platform and CPU model: a cache must not be shared across CPU types.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def default_cache_dir() -> Path:
    """``$CROSSCHECK_JAX_CACHE`` or ``~/.cache/crosscheck/jax-<machine>-<cpu>``."""
    explicit = os.environ.get("CROSSCHECK_JAX_CACHE")
    if explicit:
        return Path(explicit)
    cpu = _cpu_model().replace(" ", "_").replace("/", "_")[:60] or "cpu"
    return Path.home() / ".cache" / "crosscheck" / f"jax-{platform.machine()}-{cpu}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def enable_compilation_cache(directory: str | os.PathLike[str] | None = None) -> Path:
    """Turn on JAX's persistent compilation cache for every compile, however small.

    Returns the directory used. Safe to call more than once.
    """
    import jax  # here: the oracle reads default_cache_dir without loading JAX

    path = Path(directory) if directory is not None else default_cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path
