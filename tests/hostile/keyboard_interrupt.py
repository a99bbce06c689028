"""KeyboardInterrupt raised by the candidate."""


def forward(x, w):
    raise KeyboardInterrupt
