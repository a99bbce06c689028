"""An implementation object whose attribute access raises."""


class Layer:
    @property
    def forward(self):
        raise RuntimeError("no forward for you")


layer = Layer()
