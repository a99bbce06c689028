"""Layers with the bugs real framework code has, written the way users write them (PyTorch
modules and optimizers, optax transformations, Equinox modules): each must get its own
diagnosis from the oracle (``tests/test_framework_diagnoses.py``)."""
