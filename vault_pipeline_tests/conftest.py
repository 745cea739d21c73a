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

# The longest scenarios (a minute or more each) start first, so on several workers
# (`make test`) none of them is left running alone at the end.
LONGEST_FIRST = (
    "vault_pipeline_tests/test_readme.py",
    "vault_pipeline_tests/deploy/test_postgres_deployment.py",
    "vault_pipeline_tests/api/test_openapi_contract.py",
    "vault_pipeline_tests/api/test_consistency.py",
    "vault_pipeline_tests/api/test_graphql_runner.py",
)


def pytest_collection_modifyitems(items) -> None:
    def rank(item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order
