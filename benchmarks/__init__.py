"""crosscheck's benchmarks, run from a checkout (not part of the wheel): ``nox -s bench``
(``python -m benchmarks.bench``) and the GPU step benchmark (``python -m benchmarks.gpu``)."""
