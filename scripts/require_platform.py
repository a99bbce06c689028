"""Exit 0 and print ``OK <devices>`` if JAX sees a device of PLATFORM; else one line saying why
(exit 3, ``ExitCode.INCOMPLETE``: the hardware the run needs is missing).

    python scripts/require_platform.py cuda GPU      # JAX_PLATFORMS is pinned to the platform

Used by ``nox -s gpu`` / ``nox -s tpu`` and ``scripts/accelerator_check.py`` before any test runs,
so a missing device fails loudly instead of the suite running silently on CPU.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The repository root: the script runs from a checkout, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from verify.messages import ExitCode, error_line


def _plugin_hint(platform: str) -> str:
    """Which JAX plugin for ``platform`` is installed, as a hint for the failure line."""
    import importlib.util

    names = {
        "cuda": ("jax_cuda13_plugin", "jax_cuda12_plugin"),
        "tpu": ("libtpu",),
    }.get(platform, ())
    found = [name for name in names if importlib.util.find_spec(name) is not None]
    if not found:
        extra = {"cuda": "jax[cuda12] or jax[cuda13]", "tpu": "jax[tpu]"}.get(platform, "?")
        return f"no plugin installed (pip install {extra})"
    return f"plugin {', '.join(found)} installed, but no device is visible to it"


def probe(platform: str, label: str) -> tuple[bool, str]:
    """``(found, line)``: whether JAX has a ``platform`` device, and a one-line account."""
    # Pinned: with JAX_PLATFORMS unset JAX falls back to CPU without a word.
    os.environ["JAX_PLATFORMS"] = platform
    try:
        import jax

        devices = jax.devices(platform)
    except Exception as error:  # RuntimeError usually; jax 0.10 raises a bare AssertionError
        # for cuda when no NVIDIA GPU is visible, so the reason is rebuilt from what is known.
        reason = (str(error).strip().splitlines() or [""])[0][:160]
        if not reason:
            reason = f"no {platform} backend could be initialised; {_plugin_hint(platform)}"
        return False, (
            f"no {label}: JAX_PLATFORMS={platform} but JAX finds no {platform} device "
            f"({type(error).__name__}: {reason})"
        )
    return True, f"OK {len(devices)} x {devices[0].device_kind} (jax {jax.__version__})"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(error_line("usage: python scripts/require_platform.py PLATFORM LABEL"))
        return ExitCode.USAGE
    found, line = probe(*argv)
    print(line if found else error_line(line))
    return ExitCode.OK if found else ExitCode.INCOMPLETE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
