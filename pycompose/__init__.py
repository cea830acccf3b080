"""pycompose: run Compose stacks on a built-in container runtime."""

__version__ = "0.1.0"
