"""journey-mining: infer B2B customer journeys from CRM, web and email touchpoints.

Data flows one way: sources -> staging -> journeys -> mining -> reports.

    from journey_mining import run_all, Config
    run_all("warehouse/journeys.duckdb", "exports/", Config())   # every step, no Prefect

Modules, in the order data flows through them: `sources`, `ingest` (load exports),
`warehouse` (the SQL models), `stages`, `stage_inference`, `journeys`, `eventlog`,
`discovery`, `mining`, `conformance`, `reengagement`, `survival`, `churn`, `reports`,
`steps` (the declared step list and `run_all`). Importing the package does nothing:
no settings are built, no files are read, and modules load when first used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

__all__ = [
    "Config", "STEPS", "checks", "churn", "config", "conformance", "discovery", "errors",
    "eventlog", "exports", "generator", "ingest", "journeys", "load_config", "mining",
    "reengagement", "reports", "run_all", "sources", "stage_inference", "stages", "steps",
    "survival", "warehouse",
]

_FROM = {"run_all": "steps", "STEPS": "steps", "Config": "config", "load_config": "config"}


def __getattr__(name: str):
    """Load a module, or `run_all` / `STEPS` / `Config` / `load_config`, when first used."""
    if name in _FROM:
        return getattr(importlib.import_module(f"journey_mining.{_FROM[name]}"), name)
    if name in __all__:
        return importlib.import_module(f"journey_mining.{name}")
    raise AttributeError(f"module 'journey_mining' has no attribute '{name}'")
