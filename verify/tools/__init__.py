"""The command-line tools behind ``python -m verify``: the seed walk-through, the precision
audit, exact mode at size, and the multi-host launcher with its worker. Each module has a
``main(argv) -> int`` that returns a ``verify.messages.ExitCode``."""
