"""Scenarios for compliance reports: the sections built from the vault's records, and their HTML, PDF and CSV forms."""
