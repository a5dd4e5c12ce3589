"""Shared plumbing of citytel: settings, logging set-up, the private broker, the CLI."""

__all__ = ["__version__"]
__version__ = "0.1.0"
