"""vault_pipeline: a secure audit-data vault built as a Dagster asset graph.

Records from providers are kept byte-exact with SHA-256 checksums, indexed, validated with
Great Expectations, normalised into Delta Lake and proven intact by snapshot diffs.
``vault_definitions`` is what ``dagster ... -m vault_pipeline`` loads (named so it does not
shadow the ``vault_pipeline.defs`` package).
"""

from vault_pipeline.definitions import defs as vault_definitions

__all__ = ["vault_definitions"]
