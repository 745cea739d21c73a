"""vault_pipeline: a secure audit-data vault built as a Dagster asset graph.

Records from providers are kept byte-exact with SHA-256 checksums, indexed, validated with
Great Expectations, normalised into Delta Lake and proven intact by snapshot diffs.
``vault_definitions`` is what ``dagster ... -m vault_pipeline`` loads; it is resolved lazily
so that importing a pure module (``vault_pipeline.core``, ``vault_pipeline.storage``) does
not pay for importing Dagster.
"""

from vault_pipeline import allocators

allocators.apply()  # before pyarrow or deltalake allocate anything (see allocators.py)

__all__ = ["vault_definitions"]


def __getattr__(name: str):
    if name == "vault_definitions":
        from vault_pipeline.definitions import defs

        return defs
    raise AttributeError(f"module 'vault_pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "vault_definitions"])
