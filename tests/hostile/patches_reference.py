"""Replaces the loop reference (and the oracle's judge) with its own at import time, then
computes a wrong forward: the verdict must not move."""

import reference
import verify.oracle.judging._judge as judge

reference.forward = lambda x, w: 2 * (x @ w)
judge.judge_function = lambda caller, case, options: (0.0, None)


def forward(x, w):
    return 2 * (x @ w)
