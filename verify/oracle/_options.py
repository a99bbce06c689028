"""How a check runs: the dtype, exact mode, a pinned tie convention, the declared matmul
precision and accumulation, and the per-call timeout, validated once."""

from __future__ import annotations

import dataclasses

from .. import bounds

#: Default per-call timeout, seconds: generous for a first JAX compile of a large shape.
DEFAULT_TIMEOUT = 60.0


@dataclasses.dataclass(frozen=True)
class Options:
    """How to check: the input dtype, exact mode, a pinned tie convention
    (``bounds.TIE_CONVENTIONS``), the declared matmul precision
    (``bounds.MATMUL_INPUT_ROUNDOFF``), the per-call timeout in seconds, and the declared
    accumulation of a half-precision dtype (``bounds.ACCUMULATIONS``; None: the dtype's
    default, float32 for bfloat16 / float16 as PyTorch and JAX do, float64 for float64)."""

    dtype: str = "float32"
    exact: bool = False
    tie_convention: str | None = None
    matmul_precision: str = "float32"
    timeout: float = DEFAULT_TIMEOUT
    accumulation: str | None = None

    def __post_init__(self) -> None:
        bounds.numpy_dtype(self.dtype)  # names the accepted dtypes when wrong
        if self.tie_convention is not None and self.tie_convention not in bounds.TIE_CONVENTIONS:
            raise ValueError(
                f"tie_convention must be one of {sorted(bounds.TIE_CONVENTIONS)} or None, "
                f"got {self.tie_convention!r}"
            )
        if self.exact and self.dtype not in ("float32", "float64"):
            raise ValueError(f"exact mode needs dtype float32 or float64, got {self.dtype}")
        if self.exact and self.matmul_precision != "float32":
            raise ValueError("exact mode is bitwise: it takes no reduced matmul_precision")
        bounds.accumulation_of(self.dtype, self.accumulation)  # names the accepted ones
        self.arithmetic()  # checks matmul_precision against dtype
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout!r}")

    @property
    def tie(self) -> float | None:
        """The pinned value of dL_do at a tie, or None (any value in [-1, 1])."""
        if self.tie_convention is None:
            return None
        return bounds.TIE_CONVENTIONS[self.tie_convention]

    def arithmetic(self) -> bounds.Arithmetic:
        """The arithmetic the candidate is held to (``bounds.arithmetic``)."""
        return bounds.arithmetic(
            self.dtype,
            self.matmul_precision,  # type: ignore[arg-type]
            accumulate=bounds.accumulation_of(self.dtype, self.accumulation),
        )
