"""Shared pytest configuration: fixture modules for the whole suite are registered here."""

pytest_plugins = [
    "vault_pipeline_tests.fixtures.aws",
    "vault_pipeline_tests.fixtures.catalogs",
    "vault_pipeline_tests.fixtures.vault",
    "vault_pipeline_tests.fixtures.api",
    "vault_pipeline_tests.fixtures.browser",
    "vault_pipeline_tests.fixtures.rest_client",
    "vault_pipeline_tests.fixtures.dashboard",
    "vault_pipeline_tests.fixtures.cli",
]
