"""Subcommands of ``citytel``; each module has ``register(app)``."""
