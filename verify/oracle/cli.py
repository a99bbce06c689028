"""``python -m verify check SPEC [options]``: check an implementation of the layer.

Exit status (``messages.ExitCode``): 0 every check agrees with the reference; 1 a defect was
found (its diagnosis, minimal counterexample and reproducer are printed); 2 usage or contract
error (SPEC cannot be imported, nothing recognised, a bad option), with a one-line reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .. import bounds
from ..messages import ExitCode, Parser, UsageError, print_error
from ._check import DEFAULT_REPRO_DIR, check
from ._checks import CHECKS
from ._loading import ContractError, as_candidate, enable_float64_for
from ._options import DEFAULT_TIMEOUT, Options

PROG = "python -m verify check"


def _parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="Check an implementation of the dense layer with L1 loss against the loop "
        "reference. SPEC is package.module:attr, path/to/file.py:attr, or a module.",
        epilog="Exit 0: every check agrees; 1: a defect was found; 2: usage or contract error.",
    )
    parser.add_argument("spec", metavar="SPEC", help="the implementation to check")
    parser.add_argument(
        "--max-examples",
        type=int,
        default=100,
        metavar="N",
        help="Hypothesis examples per function (default 100)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="S", help="random seed of the search (default 0)"
    )
    parser.add_argument(
        "--dtype",
        choices=sorted(bounds.UNIT_ROUNDOFF),
        default="float32",
        help="dtype of the inputs (default float32)",
    )
    parser.add_argument(
        "--exact",
        action="store_true",
        help="integer data: results must equal the reference exactly",
    )
    parser.add_argument(
        "--tie-convention",
        choices=sorted(bounds.TIE_CONVENTIONS),
        default=None,
        help="pin dL_do at ties: seed -1, jax +1, torch 0 (default: any in [-1, 1])",
    )
    parser.add_argument(
        "--matmul-precision",
        choices=sorted(bounds.MATMUL_INPUT_ROUNDOFF),
        default="float32",
        help="declared float32 matmul precision (default float32: full)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"per-call timeout (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--functions",
        default=None,
        metavar="NAMES",
        help=f"comma-separated subset of {','.join(CHECKS)}",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="write a machine-readable report here",
    )
    parser.add_argument(
        "--repro-dir",
        type=Path,
        default=Path(DEFAULT_REPRO_DIR),
        metavar="DIR",
        help=f"where failures write reproducers (default ./{DEFAULT_REPRO_DIR})",
    )
    return parser


class _TerminalProgress:
    """``checking grad_w: 37/100`` on one rewritten line of a terminal, after a second."""

    def __init__(self, stream=sys.stderr, delay: float = 1.0) -> None:
        self.stream, self.start, self.delay, self.shown = stream, time.monotonic(), delay, False

    def __call__(self, function: str, done: int, total: int) -> None:
        if time.monotonic() - self.start < self.delay:
            return
        phase = "shrinking" if done > total else f"{done}/{total}"
        self.stream.write(f"\r  checking {function:<11} {phase:<12}")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * 40 + "\r")
            self.stream.flush()


def main(argv: list[str]) -> int:
    """Run the check; return the exit status (``messages.ExitCode``)."""
    try:
        args = _parser().parse_args(argv)
    except UsageError as err:
        print_error(err)
        return ExitCode.USAGE
    functions = None
    if args.functions:
        functions = [name.strip() for name in args.functions.split(",") if name.strip()]
    progress = _TerminalProgress() if sys.stderr.isatty() else None
    try:
        Options(args.dtype, args.exact, args.tie_convention, args.matmul_precision, args.timeout)
        if args.max_examples < 1:
            raise ValueError(f"--max-examples must be >= 1, got {args.max_examples}")
        unknown = set(functions or ()) - set(CHECKS)
        if unknown:
            raise ValueError(f"--functions: unknown {sorted(unknown)}")
        enable_float64_for(args.dtype)
        candidate = as_candidate(args.spec)
    except (ContractError, ValueError) as err:
        print_error(err)
        return ExitCode.USAGE
    try:
        report = check(
            candidate,
            max_examples=args.max_examples,
            seed=args.seed,
            dtype=args.dtype,
            exact=args.exact,
            tie_convention=args.tie_convention,
            matmul_precision=args.matmul_precision,
            timeout=args.timeout,
            functions=functions,
            repro_dir=args.repro_dir,
            progress=progress,
        )
    finally:
        if progress:
            progress.clear()
    print(report.summary())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return ExitCode.OK if report.passed else ExitCode.DEFECT
