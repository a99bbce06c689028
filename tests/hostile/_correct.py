"""The correct numpy layer every hostile candidate starts from (forward, loss, grad_w, step)."""

import numpy as np


def forward(x, w):
    return x @ w


def loss(output, target):
    accumulator = np.promote_types(output.dtype, np.float32)
    return np.abs(output - target).sum(dtype=accumulator).astype(output.dtype)


def grad_w(x, dL_do):
    return x.T @ dL_do


def step(x, w, target, lr):
    output = x @ w
    dL_do = np.where(output > target, 1, -1).astype(output.dtype)
    dL_dw = x.T @ dL_do
    return loss(output, target), dL_do @ w.T, dL_dw, w - np.asarray(lr, w.dtype) * dL_dw
