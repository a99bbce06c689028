"""The worker protocol: how the oracle and a candidate's process talk, on the worker's stdin and
stdout. Small enough for plain C with stdio (``examples/c_layer.c``); the Python worker
(``_worker``) is one client of it.

Lines are ASCII and end in ``\\n``. An *array* is a header line ``<dtype> <ndim> <d1> ... <dn>``
and then the raw bytes of its elements, little-endian, C order (``d1 * ... * dn * itemsize``
bytes; a 0-d array has ndim 0 and one element). dtypes: ``float64 float32 float16 bfloat16``
(and, in replies, ``int8 ... int64``, ``uint8 ... uint64``, ``bool``, ``complex64``,
``complex128``, which the oracle then reports as a wrong dtype). ::

    worker, once started:  crosscheck 1 <functions> [bias] [reduction=<r>]
                           e.g. crosscheck 1 forward,grad_w,step
                           (or an error reply, and exit, if it cannot load the implementation);
                           "bias": the layer has a bias b (O,): forward(x, w, b),
                           step(x, w, b, target, lr), grad_b(dL_do); "reduction=mean" (or
                           batchmean): the loss divides by N*O (or N), as does dL_do, where
                           the oracle is given no reduction itself
    oracle:                call <function> <count>          then <count> arrays: the arguments in
                                                            the contract's order; lr, where the
                                                            function takes one, is a last 0-d
                                                            float64 array (with a bias, forward
                                                            gets 3 arrays and step 5, b after w;
                                                            update gets b and dL_db too)
    worker:                ok <count>                       then <count> result arrays (step:
                                                            loss, dL_dx, dL_dw, w_new; with a
                                                            bias loss, dL_dx, dL_dw, dL_db,
                                                            w_new, b_new), then the
                                                            call's arguments as the call left them
                                                            (the oracle looks for in-place changes)
                       or  error <n>                        then n lines: the error, then (from
                                                            Python) the candidate's traceback
                       or  malformed <text>                 the result had the wrong structure
    oracle, at the end:    closes the worker's stdin; the worker exits.

In place of a result array a worker may send ``none <text>`` (the result is not an array: why),
and before any reply any number of ``note <text>`` lines (the oracle reports each distinct note
once); ``note`` lines before the greeting say what loading the implementation noted (the report
prints each). Nothing else may be written to stdout: a C worker prints its own messages to stderr.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ._invoke import Failed, Outcome, Returned

#: The first word and version of a worker's greeting.
GREETING = "crosscheck"
VERSION = 1

#: The dtypes an array may have on the wire, by name.
DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name)
    for name in (
        "float64",
        "float32",
        "float16",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "bool",
        "complex64",
        "complex128",
    )
}
#: bfloat16 comes from ml_dtypes, imported only when a bfloat16 array is sent or read: its import
#: takes half a second, which every worker of a float32 or float64 check would pay at start.
WIRE_NAMES = frozenset({*DTYPES, "bfloat16"})


def wire_dtype(name: str) -> np.dtype:
    """The dtype of ``name`` on the wire; KeyError where none may be sent."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return DTYPES[name]


#: Largest array a message may carry (elements): far above the oracle's shapes, a guard
#: against a header that would have the oracle allocate without end.
MAX_ELEMENTS = 1 << 28

#: ``read_line() -> bytes`` (one line, without ``\n``) and ``read_exact(n) -> bytes``.
ReadLine = Callable[[], bytes]
ReadExact = Callable[[int], bytes]


class ProtocolError(Exception):
    """The other side wrote something the protocol does not allow."""


#: The greeting's last word when the worker's layer has a bias.
BIAS = "bias"


#: The greeting's word that declares the loss's reduction: ``reduction=mean``.
REDUCTION = "reduction="


def greeting(functions: Sequence[str], bias: bool = False, reduction: str | None = None) -> bytes:
    """The worker's first line: the functions it provides (and ``bias`` when its layer has one,
    ``reduction=<r>`` when its loss declares a reduction other than the sum; a layer with
    neither greets as before there were either)."""
    words = [GREETING, str(VERSION), ",".join(functions)]
    words += [BIAS] * bias + [f"{REDUCTION}{reduction}"] * (reduction is not None)
    return (" ".join(words) + "\n").encode()


def greeting_bias(line: bytes) -> bool:
    """Whether a greeting (``parse_greeting``'s line) says the layer has a bias."""
    return BIAS in line.decode("ascii", "replace").split()[3:]


def greeting_reduction(line: bytes) -> str | None:
    """The reduction a greeting declares (``reduction=mean``: ``"mean"``), or None; the oracle
    checks that it is one it knows."""
    words = line.decode("ascii", "replace").split()[3:]
    return next((w.removeprefix(REDUCTION) for w in words if w.startswith(REDUCTION)), None)


def parse_greeting(line: bytes) -> list[str]:
    """The functions a greeting names, or ProtocolError."""
    words = line.decode("ascii", "replace").split()
    if len(words) < 2 or words[0] != GREETING or words[1] != str(VERSION):
        raise ProtocolError(f"expected '{GREETING} {VERSION} <functions>', got {_shown(line)}")
    return [name for name in (words[2] if len(words) > 2 else "").split(",") if name]


def encode_array(array: np.ndarray) -> bytes:
    """``<dtype> <ndim> <dims...>\\n`` and the raw little-endian C-order bytes."""
    name = array.dtype.name
    if name not in WIRE_NAMES:
        raise ProtocolError(f"dtype {name} cannot be sent; allowed: {sorted(WIRE_NAMES)}")
    data = np.ascontiguousarray(array, dtype=wire_dtype(name).newbyteorder("<"))
    header = " ".join([name, str(array.ndim), *map(str, array.shape)])
    return header.encode() + b"\n" + data.tobytes()


def encode_reason(reason: str) -> bytes:
    """A result that is not an array: ``none <why>``."""
    return b"none " + _one_line(reason).encode("ascii", "replace") + b"\n"


def read_array(read_line: ReadLine, read_exact: ReadExact) -> np.ndarray | str:
    """One array (or the reason a result is not one) from the stream."""
    line = read_line()
    if line.startswith(b"none"):
        return line[5:].decode("ascii", "replace") or "not an array"
    words = line.decode("ascii", "replace").split()
    try:
        dtype = wire_dtype(words[0])
        ndim = int(words[1])
        shape = tuple(int(d) for d in words[2:])
    except (IndexError, KeyError, ValueError):
        raise ProtocolError(f"expected '<dtype> <ndim> <dims...>', got {_shown(line)}") from None
    if ndim != len(shape) or any(d < 0 for d in shape) or math.prod(shape) > MAX_ELEMENTS:
        raise ProtocolError(f"bad array header {_shown(line)}")
    data = read_exact(math.prod(shape) * dtype.itemsize)
    return np.frombuffer(data, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)


def encode_call(function: str, arrays: Sequence[np.ndarray]) -> bytes:
    return f"call {function} {len(arrays)}\n".encode() + b"".join(map(encode_array, arrays))


def read_call(read_line: ReadLine, read_exact: ReadExact) -> tuple[str, list[np.ndarray]] | None:
    """``(function, arguments)`` of the next request, or None at the end of the stream."""
    line = read_line()
    if not line:
        return None
    words = line.decode("ascii", "replace").split()
    if len(words) != 3 or words[0] != "call" or not words[2].isdigit():
        raise ProtocolError(f"expected 'call <function> <count>', got {_shown(line)}")
    arrays = []
    for _ in range(int(words[2])):
        array = read_array(read_line, read_exact)
        if isinstance(array, str):
            raise ProtocolError("an argument must be an array, got 'none'")
        arrays.append(array)
    return words[1], arrays


def encode_outcome(outcome: Outcome) -> bytes:
    """The reply for how a call ended (``timed_out`` and ``crashed`` are the oracle's to say)."""
    if isinstance(outcome, Returned):
        notes = b"".join(encode_note(note) for note in outcome.notes)
        return notes + encode_ok(outcome.results, outcome.echoed)
    if outcome.kind == "malformed":
        return encode_malformed(outcome.detail)
    return encode_error(outcome.detail, outcome.traceback)


def read_reply(read_line: ReadLine, read_exact: ReadExact, arguments: int) -> Outcome:
    """The worker's reply to a call with ``arguments`` arguments."""
    notes = []
    line = read_line()
    while line.startswith(b"note "):
        notes.append(line[5:].decode("utf-8", "replace"))
        line = read_line()
    words = line.decode("utf-8", "replace").split(maxsplit=1)
    kind = words[0] if words else ""
    rest = words[1] if len(words) > 1 else ""
    if kind == "ok" and rest.isdigit():
        results = tuple(read_array(read_line, read_exact) for _ in range(int(rest)))
        echoed = []
        for _ in range(arguments):
            array = read_array(read_line, read_exact)
            echoed.append(None if isinstance(array, str) else array)
        return Returned(results, tuple(echoed), tuple(notes))
    if kind == "error" and rest.isdigit():
        lines = [read_line().decode("utf-8", "replace") for _ in range(int(rest))]
        message = lines[0] if lines else "(no message)"
        return Failed("raised", message, "\n".join(lines[1:]) or None)
    if kind == "malformed":
        return Failed("malformed", rest)
    raise ProtocolError(f"expected 'ok <n>', 'error <n>' or 'malformed <text>', got {_shown(line)}")


def read_error(read_line: ReadLine, first: bytes) -> str | None:
    """The message of an ``error <n>`` reply whose first line is ``first``, else None."""
    words = first.decode("utf-8", "replace").split()
    if len(words) != 2 or words[0] != "error" or not words[1].isdigit():
        return None
    lines = [read_line().decode("utf-8", "replace") for _ in range(int(words[1]))]
    return lines[0] if lines else "(no message)"


def encode_ok(results: Sequence[np.ndarray | str], echoed: Sequence[np.ndarray | None]) -> bytes:
    """``ok <n>``, the results, then the arguments as the call left them."""
    parts = [f"ok {len(results)}\n".encode()]
    parts += [encode_reason(r) if isinstance(r, str) else encode_array(r) for r in results]
    parts += [encode_reason("unreadable") if a is None else encode_array(a) for a in echoed]
    return b"".join(parts)


def encode_error(message: str, traceback: str | None = None) -> bytes:
    lines = [_one_line(message), *(traceback or "").splitlines()]
    text = "".join(line.replace("\r", " ") + "\n" for line in lines)
    return f"error {len(lines)}\n".encode() + text.encode("utf-8", "replace")


def encode_malformed(text: str) -> bytes:
    return b"malformed " + _one_line(text).encode("utf-8", "replace") + b"\n"


def encode_note(text: str) -> bytes:
    return b"note " + _one_line(text).encode("utf-8", "replace") + b"\n"


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) or "(no message)"


def _shown(line: bytes) -> str:
    text = line[:80].decode("ascii", "replace")
    return repr(text + ("..." if len(line) > 80 else ""))
