"""The collector: MQTT in, validated batches out to TimescaleDB or PostgreSQL."""

__all__: list[str] = []
