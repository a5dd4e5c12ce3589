"""The ground: settings, logging set-up, errors, URLs and the private Mosquitto.

Every other package may import these modules; they import none of ours but each other.
The package itself imports nothing, so ``import core.broker`` stays light.
"""

__all__ = ["broker", "broker_auth", "errors", "logs", "settings", "urls"]
