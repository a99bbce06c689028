"""``python -m verify``: the seed walk-through, and every other command as a subcommand.

python -m verify                 the seed notebook, by all three implementations
python -m verify check SPEC ...  check another implementation (``--help`` for options)
"""

from __future__ import annotations

import importlib
import sys

from .messages import ExitCode, print_error

#: name: (module with ``main(argv) -> int``, one-line description); imported only when used.
SUBCOMMANDS = {
    "check": (
        "verify.oracle.front.cli",
        "check an implementation of the layer: check SPEC [options]",
    ),
    "precision": ("verify.tools.precision", "what float32 matmuls compute here, per precision"),
    "exact": ("verify.tools.exact", "verify.step at size^3, bit for bit, timed: exact --size N"),
    "multihost": (
        "verify.tools.multihost",
        "the sharded step across local processes: multihost -h",
    ),
}


def usage() -> str:
    """``python -m verify --help``: a usage line, what no command does, and the commands."""
    commands = "\n".join(f"  {name:10s} {text}" for name, (_, text) in SUBCOMMANDS.items())
    return (
        "usage: python -m verify [COMMAND [ARGS...]]\n\n"
        "With no command: the seed walk-through, the seed notebook's example computed by all\n"
        "three implementations (the loops, the jitted JAX layer, jax.grad).\n\n"
        f"commands:\n{commands}\n\n"
        "python -m verify COMMAND --help shows a command's options."
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        from .tools.walkthrough import main as walkthrough

        return walkthrough()
    if args[0] in ("-h", "--help"):
        print(usage())
        return ExitCode.OK
    if args[0] not in SUBCOMMANDS:
        print_error(
            f"unknown command {args[0]!r}; expected one of {', '.join(SUBCOMMANDS)} "
            "(or no arguments for the seed walk-through)"
        )
        return ExitCode.USAGE
    module = importlib.import_module(SUBCOMMANDS[args[0]][0])
    return int(module.main(args[1:]))


if __name__ == "__main__":
    sys.exit(main())
