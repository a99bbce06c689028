"""The Python worker: ``python -m verify.oracle.candidate._worker SPEC``, started by the oracle.

It loads the implementation SPEC names, greets with the functions it found, and then answers
``call`` requests (``_protocol``) one at a time, in its main thread, until its stdin closes.
Every call goes through ``_invoke``: the candidate's ``asarray``, the call, the results
converted to numpy here, under the oracle's timeout (which covers the whole reply, so a lazy
result that blocks when realized is timed too).

The protocol has the real stdout to itself: file descriptor 1 is pointed at stderr before the
candidate is imported (a ``print`` of the candidate's goes to stderr, which the oracle keeps the
end of for a crash report), and its stdin is /dev/null.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
from typing import BinaryIO

import numpy as np

from .._contract import signature_by_count
from ._invoke import Failed, Outcome, Returned, invoke
from ._loading import Candidate, ContractError, as_candidate
from ._protocol import (
    ProtocolError,
    encode_error,
    encode_note,
    encode_outcome,
    greeting,
    read_call,
)


def _take_standard_streams() -> tuple[BinaryIO, BinaryIO]:
    """The protocol's private copies of stdin and stdout; fd 0 becomes /dev/null, fd 1 stderr."""
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdin = open(os.devnull)  # noqa: SIM115 (the worker's whole life)
    sys.stdout = sys.stderr
    return requests, replies


def _reader(stream: BinaryIO) -> tuple:
    def read_line() -> bytes:
        return stream.readline().rstrip(b"\n")

    def read_exact(n: int) -> bytes:
        data = stream.read(n)
        if len(data) != n:
            raise ProtocolError(f"the stream ended after {len(data)} of {n} bytes")
        return data

    return read_line, read_exact


def serve(spec: str, requests: BinaryIO, replies: BinaryIO) -> int:
    """Load ``spec``, greet, answer calls until the end of ``requests``."""
    try:
        candidate = as_candidate(spec)
    except ContractError as err:
        replies.write(encode_error(str(err)))
        replies.flush()
        return 0
    # What loading noted comes first, as note lines before the greeting (``_protocol``).
    replies.write(b"".join(encode_note(note) for note in candidate.notes))
    replies.write(greeting(list(candidate.functions), candidate.bias, candidate.reduction))
    replies.flush()
    read_line, read_exact = _reader(requests)
    while True:
        request = read_call(read_line, read_exact)
        if request is None:
            return 0
        function, arrays = request
        replies.write(encode_outcome(_answer(candidate, spec, function, arrays)))
        replies.flush()


def _answer(candidate: Candidate, spec: str, function: str, arrays: list[np.ndarray]) -> Outcome:
    if function not in candidate.functions:
        return Failed("raised", f"{spec} provides no {function!r}")
    # The bias adds an argument to forward and step: the count says which one is called.
    signature = signature_by_count(function, len(arrays))
    # lr arrives as a last 0-d float64 array; the candidate gets a Python float.
    lr_array = arrays.pop() if signature.takes_lr and arrays else None
    lr = None if lr_array is None else float(lr_array)
    outcome = invoke(candidate.functions[function], signature, arrays, lr, candidate.asarray)
    if isinstance(outcome, Returned) and lr_array is not None:
        # Every argument is read back, lr too (it is a float: it cannot change).
        outcome = dataclasses.replace(outcome, echoed=(*outcome.echoed, lr_array))
    return outcome


def _end_with_the_oracle(oracle: int) -> None:
    """Once the oracle is gone (killed without a chance to stop its worker), end this worker's
    process group: nothing the candidate started outlives the run."""

    def watch() -> None:
        while os.getppid() == oracle:
            time.sleep(0.5)
        if os.getpgid(0) == os.getpid():  # the group the oracle made for this worker
            os.killpg(os.getpid(), signal.SIGKILL)
        os._exit(1)

    threading.Thread(target=watch, name="crosscheck-watch-oracle", daemon=True).start()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m verify.oracle.candidate._worker SPEC", file=sys.stderr)
        return 2
    _end_with_the_oracle(os.getppid())
    requests, replies = _take_standard_streams()
    try:
        code = serve(argv[0], requests, replies)
    except (ProtocolError, OSError, ValueError) as err:  # its streams broken or closed
        print(f"crosscheck worker: {err}", file=sys.stderr, flush=True)
        code = 2
    # Without waiting for threads the candidate left running, without atexit hooks of its own:
    # the oracle reads nothing more, and kills the worker's process group anyway.
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main(sys.argv[1:])
