"""Data quality: Great Expectations suites, loaded from version-controlled JSON, run on frames.

Suites live in ``great_expectations/expectations/<kind>.<input|output>.json`` in the format
GX itself writes, so adding an expectation is an edit to JSON, not to code.
"""
