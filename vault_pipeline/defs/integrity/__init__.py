"""Integrity: snapshot diffs proving that what landed is what the vault still holds."""
