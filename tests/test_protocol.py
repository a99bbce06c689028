"""The worker protocol (``verify.oracle.candidate._protocol``): every message round-trips bit for
bit, and anything the protocol does not allow is a ProtocolError, never a wrong array."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import reference
from tests.conftest import examples
from verify.oracle.candidate import _protocol as protocol
from verify.oracle.candidate._calls import StartError, WorkerCaller
from verify.oracle.candidate._invoke import Failed, Returned


def reader(data: bytes):
    stream = io.BytesIO(data)

    def read_line() -> bytes:
        return stream.readline().rstrip(b"\n")

    def read_exact(n: int) -> bytes:
        chunk = stream.read(n)
        if len(chunk) != n:
            raise protocol.ProtocolError("short")
        return chunk

    return read_line, read_exact


arrays = st.sampled_from(sorted(protocol.DTYPES)).flatmap(
    lambda name: hnp.arrays(
        protocol.DTYPES[name],
        hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=5),
        elements=hnp.from_dtype(protocol.DTYPES[name]) if name != "bfloat16" else st.just(0.5),
    )
)


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@examples(60)
@given(arrays)
def test_arrays_round_trip_bit_for_bit(array: np.ndarray) -> None:
    back = protocol.read_array(*reader(protocol.encode_array(array)))
    assert isinstance(back, np.ndarray) and same_bits(back, array)


def test_signed_zeros_and_nan_payloads_survive() -> None:
    values = np.array([-0.0, 0.0, np.nan, -np.inf], np.float32)
    values.view(np.uint32)[2] |= 0x1234  # a NaN payload
    back = protocol.read_array(*reader(protocol.encode_array(values)))
    assert same_bits(back, values)


def test_a_call_round_trips() -> None:
    x, lr = np.arange(6, dtype=np.float32).reshape(2, 3), np.asarray(0.5)
    function, arguments = protocol.read_call(*reader(protocol.encode_call("update", [x, lr])))
    assert function == "update" and same_bits(arguments[0], x) and same_bits(arguments[1], lr)
    assert protocol.read_call(*reader(b"")) is None


def test_replies_round_trip() -> None:
    result, echoed = np.ones((2, 2), np.float64), np.zeros((2, 1), np.float32)
    sent = Returned((result, "dict, which numpy.asarray cannot convert"), (echoed,), ("Warn: x",))
    got = protocol.read_reply(*reader(protocol.encode_outcome(sent)), arguments=1)
    assert isinstance(got, Returned) and got.notes == ("Warn: x",)
    assert same_bits(got.results[0], result) and got.results[1] == sent.results[1]
    assert same_bits(got.echoed[0], echoed)
    raised = Failed("raised", "TypeError: no", 'File "layer.py", line 3\n  x @ w')
    assert protocol.read_reply(*reader(protocol.encode_outcome(raised)), arguments=2) == raised
    malformed = Failed("malformed", "step must return 4 results, got dict (3)")
    assert protocol.read_reply(*reader(protocol.encode_outcome(malformed)), 0) == malformed


def test_the_greeting_names_the_functions() -> None:
    assert protocol.parse_greeting(protocol.greeting(["forward", "step"])[:-1]) == [
        "forward",
        "step",
    ]
    with pytest.raises(protocol.ProtocolError, match="crosscheck 1"):
        protocol.parse_greeting(b"hello world")


def test_a_layer_with_a_bias_says_so_in_its_greeting() -> None:
    """The greeting's last word "bias"; without one the greeting is as before there was one."""
    line = protocol.greeting(["forward", "grad_b", "step"], bias=True)
    assert line == b"crosscheck 1 forward,grad_b,step bias\n"
    assert protocol.parse_greeting(line[:-1]) == ["forward", "grad_b", "step"]
    assert protocol.greeting_bias(line[:-1])
    assert protocol.greeting(["forward"]) == b"crosscheck 1 forward\n"
    assert not protocol.greeting_bias(b"crosscheck 1 forward")


def test_a_loss_that_declares_its_reduction_says_so_in_its_greeting() -> None:
    """``reduction=mean`` after the functions (and the bias); the sum is not said: such a
    greeting is as before there were reductions. The oracle refuses one it does not know."""
    line = protocol.greeting(["loss", "step"], bias=True, reduction="mean")
    assert line == b"crosscheck 1 loss,step bias reduction=mean\n"
    assert protocol.greeting_bias(line[:-1]) and protocol.parse_greeting(line[:-1]) == [
        "loss",
        "step",
    ]
    assert protocol.greeting_reduction(line[:-1]) == "mean"
    assert protocol.greeting_reduction(b"crosscheck 1 loss reduction=batchmean") == "batchmean"
    assert protocol.greeting_reduction(b"crosscheck 1 loss bias") is None
    assert not protocol.greeting_bias(b"crosscheck 1 loss reduction=mean")
    worker = "print('crosscheck 1 loss reduction=none', flush=True); import sys; sys.stdin.read()"
    with pytest.raises(StartError, match="declares reduction 'none'; known: sum, mean"):
        WorkerCaller([sys.executable, "-c", worker], name="w", timeout=5, import_timeout=30)


def test_the_argument_count_says_which_layer_is_called() -> None:
    from verify.oracle._contract import signature_by_count

    assert signature_by_count("forward", 2).arguments == ("x", "w")
    assert signature_by_count("forward", 3).arguments == ("x", "w", "b")
    assert signature_by_count("step", 4).results == reference.StepResult._fields
    assert signature_by_count("step", 5).results == reference.BiasStepResult._fields
    assert signature_by_count("update", 3).results == ("w_new",)


@pytest.mark.parametrize(
    "data",
    [
        b"float99 1 3\n",  # unknown dtype
        b"float32 2 3\n",  # ndim says 2, one dim given
        b"float32 1 -3\n",  # negative dim
        b"float32 2 100000 100000\n",  # beyond MAX_ELEMENTS
        b"float32 1 4\n\x00\x00",  # fewer bytes than the header promises
    ],
    ids=["dtype", "ndim", "negative", "huge", "short"],
)
def test_bad_arrays_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.read_array(*reader(data))


@pytest.mark.parametrize("line", [b"hello", b"ok x", b"error", b""], ids=repr)
def test_a_reply_that_is_none_of_the_three_is_a_protocol_error(line: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.read_reply(*reader(line + b"\n"), arguments=0)
