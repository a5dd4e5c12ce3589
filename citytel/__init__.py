"""The top of citytel: the CLI, its commands and the demo wiring; no other package imports it."""

__all__ = ["__version__"]
__version__ = "0.1.0"
