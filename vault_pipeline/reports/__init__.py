"""Compliance reports: the sections built from the vault's own records, and their HTML, PDF and CSV forms."""
