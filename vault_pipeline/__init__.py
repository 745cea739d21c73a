"""vault_pipeline: a secure audit-data vault built as a Dagster asset graph.

Records from providers are kept byte-exact with SHA-256 checksums, indexed, validated with
Great Expectations, normalised into Delta Lake and proven intact by snapshot diffs. ``defs``
is what ``dagster ... -m vault_pipeline`` loads.
"""

from vault_pipeline.definitions import defs

__all__ = ["defs"]
