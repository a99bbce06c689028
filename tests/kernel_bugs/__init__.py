"""Kernels with the bugs kernel authors make at block edges (``tests/test_kernels.py``)."""
