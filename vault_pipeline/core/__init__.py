"""Pure domain logic of the vault: record framing, checksums, ids, windows, snapshot diffs.

Nothing in here performs I/O or imports Dagster, so every rule of the vault can be tested
on plain bytes and values.
"""
