"""Storage ports and their adapters: where the vault keeps bytes, index entries and tables.

Each port (ObjectStore, Catalog, Lake) has one adapter per backend; the deployment picks
adapters from ``VAULT_ENV`` (see ``vault_pipeline.defs.resources``). Nothing above this layer
knows which backend it is talking to.
"""
