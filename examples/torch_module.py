"""A ``torch.nn.Linear`` and ``torch.optim.SGD`` checked as they are, without writing the
contract's functions (``verify.adapters`` turns them into the seven, ``weight`` = w.T)::

    python -m verify check examples/torch_module.py:candidate

Compare ``torch_autograd.py``, the same by hand. Needs ``pip install -e ".[torch]"``.
"""

from __future__ import annotations

import torch

import verify.adapters

model = torch.nn.Linear(in_features=8, out_features=4, bias=False)
candidate = verify.adapters.torch_linear(model, torch.optim.SGD)
