"""Analytics: normalised Delta fact tables per kind, and their output validation."""
