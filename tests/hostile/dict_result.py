"""Results that are not arrays: a dict, a string."""


def forward(x, w):
    return {"output": x @ w}


def loss(output, target):
    return "a lot"
