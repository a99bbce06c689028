"""``python -m verify`` (the seed walk-through) and its subcommands.

python -m verify                 the seed notebook, by all three implementations
python -m verify check SPEC ...  check another implementation (``--help`` for options)
"""

from __future__ import annotations

import sys

SUBCOMMANDS = {
    # name: (module, one-line description); modules are imported only when used.
    "check": ("verify._check_cli", "check an implementation of the layer: check SPEC [options]"),
    "precision": ("verify._precision_audit", "what float32 matmuls compute here, per precision"),
    "multihost": ("verify._multihost", "the sharded step across local processes: multihost -h"),
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        from ._walkthrough import main as walkthrough

        return walkthrough()
    if args[0] in ("-h", "--help"):
        print(__doc__.strip())
        for name, (_, text) in SUBCOMMANDS.items():
            print(f"  {name:10s} {text}")
        return 0
    if args[0] not in SUBCOMMANDS:
        print(
            f"python -m verify: unknown command {args[0]!r}; expected one of "
            f"{', '.join(SUBCOMMANDS)} (or no arguments for the seed walk-through)",
            file=sys.stderr,
        )
        return 2
    import importlib

    module = importlib.import_module(SUBCOMMANDS[args[0]][0])
    return int(module.main(args[1:]))


if __name__ == "__main__":
    sys.exit(main())
