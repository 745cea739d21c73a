"""Dagster definitions of the compliance reports: what keeps the audit trail complete between runs."""
