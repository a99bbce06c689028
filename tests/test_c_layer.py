"""``examples/c_layer.c`` through the worker protocol: built with the machine's C compiler, it
passes in float32 and float64; mutated copies are caught with the right verdict (a flipped sign
of grad_w, a segfault on N == 1 shrunk to its minimal input, noise on stdout)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import run_python

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "examples" / "c_layer.c"
COMPILER = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")

pytestmark = pytest.mark.skipif(COMPILER is None, reason="no C compiler (cc, gcc or clang)")


def build(tmp_path: Path, name: str, *edits: tuple[str, str], bias: bool = False) -> Path:
    """``cc -O2`` of c_layer.c with each ``(old, new)`` text replacement applied (``bias``: the
    layer with a bias, ``-DWITH_BIAS``)."""
    text = SOURCE.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    source, binary = tmp_path / f"{name}.c", tmp_path / name
    source.write_text(text)
    done = subprocess.run(
        [
            COMPILER,
            "-O2",
            "-Wall",
            "-Werror",
            *(["-DWITH_BIAS"] if bias else []),
            "-o",
            str(binary),
            str(source),
        ],  # type: ignore[list-item]
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return binary


def check(binary: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run_python(
        "-m", "verify", "check", "--command", str(binary), *options, cwd=binary.parent
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_c_layer_passes(tmp_path: Path, dtype: str) -> None:
    done = check(build(tmp_path, "c_layer"), "--dtype", dtype, "--max-examples", "25")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all 9 checks passed." in done.stdout


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_c_layer_with_a_bias_passes(tmp_path: Path, dtype: str) -> None:
    """Built with WITH_BIAS it greets with "bias": forward(x, w, b), grad_b, the six results of
    step, update of b, every one of them checked."""
    binary = build(tmp_path, "c_bias_layer", bias=True)
    done = check(binary, "--dtype", dtype, "--max-examples", "25")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "with bias" in done.stdout and "grad_b      PASS" in done.stdout
    assert "all 10 checks passed." in done.stdout


def test_a_mean_of_dL_db_in_c_is_caught(tmp_path: Path) -> None:
    binary = build(tmp_path, "mean", ("dL_db[j] = sum;", "dL_db[j] = sum / n;"), bias=True)
    done = check(binary, "--functions", "grad_b,step", "--max-examples", "20")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "grad_b      FAIL" in done.stdout and "diagnosis: mean_instead_of_sum" in done.stdout
    assert "step        FAIL" in done.stdout


def test_a_flipped_sign_of_grad_w_is_caught(tmp_path: Path) -> None:
    binary = build(tmp_path, "flipped", ("dL_dw[k * o + j] = sum;", "dL_dw[k * o + j] = -sum;"))
    done = check(binary, "--functions", "grad_w,step", "--max-examples", "20")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "grad_w      FAIL" in done.stdout and "diagnosis: sign_flip" in done.stdout
    assert "step        FAIL" in done.stdout


def test_a_segfault_on_one_row_is_crashed_with_its_minimal_input(tmp_path: Path) -> None:
    call = "forward_##T(args[0].data, args[1].data, BIAS ? args[2].data : NULL, out, n, i, o);"
    binary = build(
        tmp_path, "segfault", (call, f"if (n == 1) {{ *(volatile int *)0 = 0; }} {call}")
    )
    done = check(binary, "--functions", "forward", "--max-examples", "20")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "diagnosis: crashed" in done.stdout and "SIGSEGV" in done.stdout
    assert "minimal counterexample: forward(x: (1, 1), w: (1, 1))" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    # The reproducer crashes it again, from a fresh shell.
    script = done.stdout.split("reproduce: python ")[1].split()[0]
    again = run_python(script, cwd="/", timeout=60)
    assert again.returncode == 1 and "diagnosis: crashed" in again.stdout, again.stdout


def test_noise_on_stdout_breaks_the_protocol_and_says_so(tmp_path: Path) -> None:
    header = (
        "static void write_array(const char *dtype, int ndim, long d0, long d1, const void *data) {"
    )
    binary = build(tmp_path, "noisy", (header, header + '\n    printf("debug: here\\n");'))
    done = check(binary, "--functions", "forward", "--max-examples", "5")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "diagnosis: crashed" in done.stdout and "broke the protocol" in done.stdout


def test_a_program_that_does_not_greet_is_a_usage_error(tmp_path: Path) -> None:
    binary = build(
        tmp_path,
        "mute",
        ("printf(GREETING);", 'printf("hello world\\n"); printf(GREETING);'),
    )
    done = check(binary)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("crosscheck: error: ") and "protocol" in done.stderr
