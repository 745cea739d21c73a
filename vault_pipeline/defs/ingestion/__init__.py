"""Ingestion: raw landing, input validation and indexing of each hour x provider partition."""
