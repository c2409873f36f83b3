"""Prefect flows: wiring only. Each task is one IO step or one call into journey_mining."""
