"""Dagster definitions of the vault, one package per domain (ingestion, integrity, analytics).

Each domain keeps its stage logic in plain modules that take storage ports and its Dagster
wrappers (assets, checks) in ``assets.py``/``checks.py``, so the logic is testable without a
run and the Dagster layer stays thin.
"""
