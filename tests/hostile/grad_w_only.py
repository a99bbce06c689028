"""Provides grad_w alone: ``--functions forward`` names a check it has nothing for."""

from tests.hostile._correct import grad_w

__all__ = ["grad_w"]
