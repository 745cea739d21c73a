"""Promotion: verified raw records to the golden zone (masked where they hold PII), the rest to quarantine."""
