"""``python -m verify exact [--size 2048] [--bias]``: ``verify.step`` at size^3, bit for bit, timed.

The first call compiles at this size; the second is checked and timed (``verify.check_exact``
against ``reference.fast``). Exit 0 bit for bit, 1 a mismatch (the first element is named).
``--bias``: the step of the layer with a bias, ``verify.step(x, w, b, target, lr)``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..messages import ExitCode, Parser, UsageError, print_error
from ..strategies import exact_inputs


def main(argv: Sequence[str]) -> int:
    parser = Parser(prog="python -m verify exact", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="N = I = O (default 2048)")
    parser.add_argument("--seed", type=int, default=0, help="data seed (default 0)")
    parser.add_argument(
        "--bias", action="store_true", help="the layer with a bias b (O,): six results"
    )
    try:
        args = parser.parse_args(list(argv))
        case = exact_inputs((args.size,) * 3, seed=args.seed)
    except (UsageError, ValueError) as err:
        print_error(f"--size: {err}" if isinstance(err, ValueError) else err)
        return ExitCode.USAGE

    import jax

    jax.config.update("jax_enable_x64", True)
    import verify

    options = {"bias": args.bias, "seed": args.seed}
    verify.check_exact(verify.step, inputs=case, **options)  # the first call compiles
    report = verify.check_exact(verify.step, inputs=case, **options)
    verdict = "bit for bit" if report.ok else f"MISMATCH: {report.first}"
    print(
        f"exact mode {report.shape}: {verdict}; verify.step {report.step_seconds:.2f} s, "
        f"reference.fast {report.reference_seconds:.2f} s"
    )
    return ExitCode.OK if report.ok else ExitCode.DEFECT
