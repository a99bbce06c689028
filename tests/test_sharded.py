"""verify.sharded_step on 1, 2, 4 and 8 devices (data parallel, model parallel, 2-D meshes)
against the single-device loop reference: bit for bit in exact mode, within the error model in
float mode (the cross-device psum reorders the sums over N and O; the bound holds for any order).

Needs 8 devices for the full matrix: ``nox -s tests`` (and ``nox -s multidevice``) runs this
file with ``JAX_NUM_CPU_DEVICES=8`` in a pytest of its own (the count is fixed when JAX starts its
backend). In a plain ``pytest`` of one device the 1-device cases run, the others skip with that
reason, and ``test_multidevice_suite_in_subprocess`` runs the 8-device exact cases in a child
process.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import jax
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
import verify
from tests.conftest import examples, few_shapes
from tests.helpers import assert_bitwise, assert_step_within, assert_within, describe_call
from verify import bounds
from verify.strategies import (
    BiasLayerInputs,
    LayerInputs,
    exact_layer_inputs,
    layer_inputs,
)

#: (data, model) mesh shapes, by kind; every device count 1, 2, 4, 8 appears.
MESHES = {
    "single-1x1": (1, 1),
    "dp-2x1": (2, 1),
    "dp-4x1": (4, 1),
    "dp-8x1": (8, 1),
    "mp-1x2": (1, 2),
    "mp-1x4": (1, 4),
    "mp-1x8": (1, 8),
    "2d-2x2": (2, 2),
    "2d-4x2": (4, 2),
    "2d-2x4": (2, 4),
}

#: Small sides, most not divisible by 2, 4 or 8, so padding is exercised on every mesh.
SHARD_DIMS = (1, 2, 3, 5, 8, 13, 16)
#: A few shapes, every side taking each of SHARD_DIMS in one: each distinct shape compiles the
#: sharded step once per mesh (and dtype), so every test of a mesh meets the same few.
SHAPES = few_shapes(SHARD_DIMS, max_size=1024)

REPO = Path(__file__).resolve().parent.parent


@functools.cache
def mesh_for(data: int, model: int) -> jax.sharding.Mesh:
    return verify.step_mesh(data, model)


def needs_devices(data: int, model: int) -> None:
    available = jax.device_count()
    if data * model > available:
        pytest.skip(
            f"needs {data * model} devices, this process has {available}: "
            "run `nox -s tests` or `nox -s multidevice` (JAX_NUM_CPU_DEVICES=8)"
        )


mesh_params = pytest.mark.parametrize(("data", "model"), list(MESHES.values()), ids=list(MESHES))


def call_of(case: LayerInputs, data: int, model: int) -> str:
    shapes = describe_call("sharded_step", x=case.x, w=case.w, target=case.target)
    return f"{shapes} lr={case.lr} mesh={data}x{model}"


@mesh_params
def test_a_bias_split_over_O_is_bitwise_in_exact_mode(data: int, model: int) -> None:
    """b (O,) sharded with w over the model axis, dL_db psummed over the data axis: every one
    of the six results equals the loops' bit for bit (integer b, targets moved with it)."""
    needs_devices(data, model)
    mesh = mesh_for(data, model)

    @examples(10)
    @given(case=exact_layer_inputs(dtype=np.float32, shapes=SHAPES), seed=st.integers(0, 99))
    def check(case: LayerInputs, seed: int) -> None:
        b = np.random.default_rng(seed).integers(-4, 5, size=case.w.shape[1]).astype(np.float32)
        target = case.target + b
        got = verify.sharded_step(case.x, case.w, b, target, case.lr, mesh=mesh)
        expected = reference.step(case.x, case.w, b, target, case.lr)
        call = call_of(case, data, model) + " with b"
        for name in reference.BiasStepResult._fields:
            assert_bitwise(name, getattr(got, name), getattr(expected, name), call)

    check()


@mesh_params
def test_a_bias_in_float_mode_is_within_the_error_model(data: int, model: int) -> None:
    needs_devices(data, model)
    mesh = mesh_for(data, model)

    @examples(8)
    @given(case=layer_inputs(dtype=np.float32, shapes=SHAPES, bias=True))
    def check(case: BiasLayerInputs) -> None:
        got = verify.sharded_step(case.x, case.w, case.b, case.target, case.lr, mesh=mesh)
        arith = bounds.arithmetic(case.x.dtype)
        assert_step_within(got, case, arith, call_of(case, data, model) + " with b")

    check()


@mesh_params
def test_exact_mode_bitwise_equal_to_loop_reference(data: int, model: int) -> None:
    needs_devices(data, model)
    mesh = mesh_for(data, model)

    @examples(15)
    @given(case=exact_layer_inputs(dtype=np.float32, shapes=SHAPES))
    def check(case: LayerInputs) -> None:
        got = verify.sharded_step(case.x, case.w, case.target, case.lr, mesh=mesh)
        expected = reference.step(case.x, case.w, case.target, case.lr)
        call = call_of(case, data, model)
        for name in ("loss", "dL_dx", "dL_dw", "w_new"):
            value = getattr(got, name)
            assert value.dtype == np.float32, f"{name}.dtype = {value.dtype}, but should be float32"
            assert_bitwise(name, value, getattr(expected, name), call)

    check()


@mesh_params
def test_float_mode_within_error_model(data: int, model: int) -> None:
    needs_devices(data, model)
    mesh = mesh_for(data, model)

    @examples(10)
    @given(
        case=st.sampled_from([np.float32, np.float64]).flatmap(
            lambda dtype: layer_inputs(dtype=dtype, shapes=SHAPES)
        )
    )
    def check(case: LayerInputs) -> None:
        got = verify.sharded_step(case.x, case.w, case.target, case.lr, mesh=mesh)
        arith = bounds.arithmetic(case.x.dtype)
        assert_step_within(got, case, arith, call_of(case, data, model))

    check()


@mesh_params
def test_bfloat16_sums_across_devices_in_float32(data: int, model: int) -> None:
    """Partial bf16 gradients are summed in float32 and rounded once: the single-device bound."""
    needs_devices(data, model)
    rng = np.random.default_rng(data * 10 + model)
    x = rng.standard_normal((13, 16)).astype(ml_dtypes.bfloat16)
    w = rng.standard_normal((16, 5)).astype(ml_dtypes.bfloat16)
    target = (x.astype(np.float64) @ w.astype(np.float64) + 0.5).astype(ml_dtypes.bfloat16)
    got = verify.sharded_step(x, w, target, 0.5, mesh=mesh_for(data, model))
    arith = bounds.arithmetic("bfloat16")
    expected = bounds.step_bounds(x, w, target, 0.5, arith, matmul=reference.forward)
    call = f"sharded_step(x: (13, 16), w: (16, 5)) bfloat16 mesh={data}x{model}"
    for name in ("loss", "dL_dx", "dL_dw", "w_new"):
        value = getattr(got, name)
        assert value.dtype == ml_dtypes.bfloat16, f"{name}.dtype = {value.dtype} [{call}]"
        assert_within(name, value, getattr(expected, name), call)


@mesh_params
def test_padding_is_exact_at_ties_and_with_zero_rows(data: int, model: int) -> None:
    """Ties (-1) and zero rows near the padding: padded entries of dL_do must be 0, not -1."""
    needs_devices(data, model)
    x = np.array([[4, 0], [3, 3], [3, 1], [0, 0], [1, -2]], np.float32)  # N = 5
    w = np.array([[0, 1, -1, 1, 2, 0, 1], [-1, -1, -1, 1, 0, 3, -2]], np.float32)  # O = 7
    target = (x.astype(np.float64) @ w).astype(np.float32)
    target[::2] += 0.5  # every other row is a tie: dL_do = -1 there, as the notebook
    got = verify.sharded_step(x, w, target, 0.5, mesh=mesh_for(data, model))
    single = verify.step(x, w, target, 0.5)
    call = f"sharded_step(x: (5, 2), w: (2, 7)) mesh={data}x{model}"
    for name in ("loss", "dL_dx", "dL_dw", "w_new"):
        assert_bitwise(name, getattr(got, name), getattr(single, name), call)
        assert_bitwise(
            name, getattr(got, name), getattr(reference.step(x, w, target, 0.5), name), call
        )


def test_outputs_are_sharded_as_documented() -> None:
    needs_devices(4, 2)
    mesh = mesh_for(4, 2)
    x, w = np.ones((8, 3), np.float32), np.ones((3, 4), np.float32)
    got = verify.sharded_step(x, w, np.zeros((8, 4), np.float32), 1.0, mesh=mesh)
    spec = jax.sharding.PartitionSpec
    assert got.dL_dx.sharding.is_equivalent_to(
        jax.sharding.NamedSharding(mesh, spec("data", None)), 2
    ), got.dL_dx.sharding
    for name in ("dL_dw", "w_new"):
        sharding = getattr(got, name).sharding
        assert sharding.is_equivalent_to(
            jax.sharding.NamedSharding(mesh, spec(None, "model")), 2
        ), (name, sharding)


@pytest.mark.parametrize(
    ("shape_x", "shape_w", "message"),
    [
        ((5, 2), (2, 4), "x has shape (5, 2): N = 5 is not divisible by the 2 devices"),
        ((4, 2), (2, 3), "w has shape (2, 3): O = 3 is not divisible by the 2 devices"),
    ],
    ids=["N", "O"],
)
def test_pad_false_rejects_indivisible_shapes(shape_x, shape_w, message) -> None:
    needs_devices(2, 2)
    x, w = np.ones(shape_x, np.float32), np.ones(shape_w, np.float32)
    target = np.zeros((shape_x[0], shape_w[1]), np.float32)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        verify.sharded_step(x, w, target, 1.0, mesh=mesh_for(2, 2), pad=False)


def test_pad_false_accepts_divisible_shapes() -> None:
    needs_devices(2, 2)
    x, w = np.ones((4, 3), np.float32), np.ones((3, 2), np.float32)
    got = verify.sharded_step(
        x, w, np.zeros((4, 2), np.float32), 1.0, mesh=mesh_for(2, 2), pad=False
    )
    assert float(got.loss) == 4 * 2 * 3


def test_axis_none_replicates_that_dimension() -> None:
    needs_devices(2, 1)
    mesh = mesh_for(2, 1)
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    w = np.array([[1, -1], [2, 0.5]], np.float32)
    target = np.full((3, 2), 0.25, np.float32)
    single = verify.step(x, w, target, 0.5)
    for kwargs in (
        {"data_axis": None},
        {"model_axis": None},
        {"data_axis": None, "model_axis": None},
    ):
        got = verify.sharded_step(x, w, target, 0.5, mesh=mesh, **kwargs)
        for name in ("loss", "dL_dx", "dL_dw", "w_new"):
            assert_bitwise(name, getattr(got, name), getattr(single, name), str(kwargs))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"data_axis": "batch"}, "data_axis='batch' is not an axis of the mesh"),
        ({"model_axis": "data"}, "data_axis and model_axis must differ"),
        ({"mesh": "4x2"}, "mesh must be a jax.sharding.Mesh"),
    ],
    ids=["unknown-axis", "same-axis", "not-a-mesh"],
)
def test_bad_mesh_arguments_are_named(kwargs, message) -> None:
    arguments = {"mesh": mesh_for(1, 1), **kwargs}
    x, w = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    with pytest.raises((ValueError, TypeError), match=message):
        verify.sharded_step(x, w, np.zeros((2, 4), np.float32), 1.0, **arguments)


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (((2, 3), (4, 4), (2, 4)), r"w has shape \(4, 4\), but should be \(I, O\) = \(3, O\)"),
        (((2, 3), (3, 4), (2, 5)), r"target has shape \(2, 5\), but should be \(N, O\) = \(2, 4\)"),
        (((2, 3, 1), (3, 4), (2, 4)), r"x must be a 2-D array \(N, I\), got shape \(2, 3, 1\)"),
    ],
    ids=["w", "target", "x-rank"],
)
def test_bad_shapes_are_named(shapes, message) -> None:
    x, w, target = (np.ones(shape, np.float32) for shape in shapes)
    with pytest.raises(ValueError, match=message):
        verify.sharded_step(x, w, target, 1.0, mesh=mesh_for(1, 1))


def test_a_bias_of_the_wrong_shape_is_named() -> None:
    x, w, target = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32), np.ones((2, 4))
    with pytest.raises(ValueError, match=r"b has shape \(3,\), but w has shape \(3, 4\)"):
        verify.sharded_step(x, w, np.ones(3), target, 1.0, mesh=mesh_for(1, 1))
    with pytest.raises(TypeError, match=r"takes \(x, w, target, lr\) or \(x, w, b, target, lr\)"):
        verify.sharded_step(x, w, target, mesh=mesh_for(1, 1))


def test_step_mesh_says_how_to_get_more_cpu_devices() -> None:
    too_many = jax.device_count() + 1
    with pytest.raises(ValueError, match=f"needs {too_many} devices.*JAX_NUM_CPU_DEVICES"):
        verify.step_mesh(too_many, 1)
    with pytest.raises(ValueError, match="model must be a positive int"):
        verify.step_mesh(1, 0)


@pytest.mark.slow
@pytest.mark.skipif(
    jax.device_count() >= 8 or os.environ.get("CROSSCHECK_NO_SUBPROCESS") == "1",
    reason="this process has the devices itself (or subprocess runs are switched off)",
)
def test_multidevice_suite_in_subprocess() -> None:
    """The 8-device exact-mode cases, in a child process started with 8 forced CPU devices.

    Only the three 8-device meshes (DP 8x1, MP 1x8, 2-D 4x2), to keep the main suite fast; the
    full matrix is ``nox -s multidevice``.
    """
    env = {**os.environ, "JAX_NUM_CPU_DEVICES": "8", "CROSSCHECK_NO_SUBPROCESS": "1"}
    env["JAX_PLATFORMS"] = "cpu"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(Path(__file__).relative_to(REPO)),
        "-k",
        "(exact_mode or padding) and (8x1 or 1x8 or 4x2) or sharded_as_documented",
    ]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
    assert done.returncode == 0, f"multidevice subprocess failed:\n{tail}"
    assert "skipped" not in done.stdout.splitlines()[-1], f"cases skipped in the child:\n{tail}"
