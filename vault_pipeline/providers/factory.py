"""Turning a provider entry of ``vault.yaml`` into the client that fetches its records.

Ingestion asks the factory for a provider by configuration only, so adding a provider to the
file is all it takes to materialize it; the simulator module is imported only when a
simulator provider is configured.
"""

from __future__ import annotations

from typing import Any

from vault_pipeline.providers.base import Provider
from vault_pipeline.providers.config import ProviderConfig
from vault_pipeline.providers.rest import RestProvider


def build_provider(config: ProviderConfig, **kwargs: Any) -> Provider:
    """A client for ``config``; ``kwargs`` go to its constructor (tests inject clients, clocks)."""
    if config.type == "rest":
        kwargs.pop("store", None)
        return RestProvider(config, **kwargs)
    if config.type == "push":
        from vault_pipeline.providers.push import PushProvider

        return PushProvider(config, **kwargs)
    if config.type == "simulator":
        from vault_pipeline.providers.simulator import SimulatorProvider

        kwargs.pop("store", None)  # pulled providers read their source, not the vault's store
        return SimulatorProvider(config, **kwargs)
    raise ValueError(f"provider {config.name!r}: unknown provider type {config.type!r} (expected rest, simulator or push)")
