"""verify._walkthrough: `python -m verify`, the seed notebook by all three implementations."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np

from verify.tools import walkthrough


def test_seed_data_is_the_notebooks() -> None:
    data = walkthrough.seed_data()
    np.testing.assert_array_equal(data.x, [[4, 0], [3, 3], [3, 1]])
    np.testing.assert_array_equal(data.w, [[0, 1, -1, 1], [-1, -1, -1, 1]])
    np.testing.assert_array_equal(
        data.true_value.round(2),
        [[-0.04, 0.62, -0.04, -0.21], [0.67, -0.33, 0.3, -0.26], [0.91, -0.72, 0.74, -0.05]],
    )


def test_walkthrough_agrees_and_says_so() -> None:
    out = io.StringIO()
    assert walkthrough.main(out) == 0
    text = out.getvalue()
    for quantity in walkthrough.Quantities._fields:
        assert f"\n{quantity}\n" in text
    assert "41.578510114266535" in text and "38.088094755935614" in text
    assert "tie convention" in text
    # The seed's numbers first, its verdict; then the layer with a bias and its own verdict.
    seed, _, bias = text.partition("--- the same layer with a bias")
    assert seed.rstrip().splitlines()[-1].startswith("verdict: OK")
    for quantity in walkthrough.BiasQuantities._fields:
        assert f"\n{quantity}\n" in bias
    assert text.rstrip().splitlines()[-1].startswith("verdict with a bias: OK, all three agree")


def test_compare_catches_a_wrong_gradient() -> None:
    data = walkthrough.seed_data()
    good = walkthrough.reference_quantities(data)
    bad = good._replace(dL_dw=good.dL_dw.T.reshape(good.dL_dw.shape))
    problems = walkthrough.compare({"loop reference": good, "broken": bad}, data)
    assert any("dL_dw" in p and "broken" in p for p in problems)
    assert not walkthrough.compare({"loop reference": good}, data)


def test_compare_catches_a_wrong_loss() -> None:
    data = walkthrough.seed_data()
    good = walkthrough.reference_quantities(data)
    bad = good._replace(L=good.L * (1 + 2**-40))
    problems = walkthrough.compare({"loop reference": good, "broken": bad}, data)
    assert problems == [
        f"broken: L = {bad.L!r}, but the notebook printed {walkthrough.SEED_LOSS!r}"
    ]


def test_the_bias_variant_is_the_seed_step_with_b() -> None:
    """dL_db is dL_do summed over the batch and b_updated = b - lr * dL_db, from each of the
    three; a dL_db averaged over the batch is caught."""
    data = walkthrough.seed_data()
    b = np.array(walkthrough.SEED_BIAS)
    results = walkthrough.bias_quantities(data, b)
    assert not walkthrough.compare_bias(results, data, b)
    for got in results.values():
        np.testing.assert_array_equal(got.dL_db, got.dL_do.sum(axis=0))
        np.testing.assert_array_equal(got.output, data.x @ data.w + b)  # binary fractions
    loops = results["loop reference"]
    bad = loops._replace(dL_db=loops.dL_db / 3)
    problems = walkthrough.compare_bias({"loop reference": loops, "broken": bad}, data, b)
    assert problems == ["dL_db: broken differs from the loop reference"]


def test_python_dash_m_verify_exits_zero() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "verify"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "verdict: OK" in done.stdout


def test_unknown_subcommand_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "verify", "frobnicate"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "unknown command 'frobnicate'" in done.stderr
