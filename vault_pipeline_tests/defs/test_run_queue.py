"""Runs tell the deployment's run queue which Delta table they load (``vault/lake_table``).

The queue of deploy/dagster.yaml admits one run per value of that tag at a time; the tag is
the fact table of the provider's kind, set by the hourly schedule and (for ``vault serve``'s
GraphQL backend) by ``partition_run_tags``. The deployment test sees it on real runs in Postgres.
"""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
import yaml

from vault_pipeline.definitions import build_definitions
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.defs.run_queue import LAKE_TABLE_TAG, lake_table_tags, partition_run_tags
from vault_pipeline.defs.schedules import HOURLY_SCHEDULE
from vault_pipeline.providers.config import ConfigError, load_config

UNUSED = {"vault": VaultResource(home="/nonexistent")}  # definitions only; nothing runs
PROVIDERS = {
    "cloudtrail": {"type": "simulator", "kind": "audit_event"},
    "okta": {"type": "simulator", "kind": "audit_event"},
    "llm_gateway": {"type": "simulator", "kind": "generation_event"},
    "ci": {"type": "simulator", "kind": "test_result"},
}


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "vault.yaml"
    path.write_text(yaml.safe_dump({"providers": PROVIDERS}))
    return path


def test_scheduled_runs_name_the_fact_table_they_load(config_path: Path) -> None:
    definitions = build_definitions(load_config(config_path), resources=UNUSED)
    schedule = definitions.resolve_schedule_def(HOURLY_SCHEDULE)
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 3, 4, 10, 10, tzinfo=UTC),
                                        repository_def=definitions.get_repository_def())
    requests = {r.tags["vault/provider"]: r for r in schedule.evaluate_tick(context).run_requests}
    assert {provider: r.tags[LAKE_TABLE_TAG] for provider, r in requests.items()} == {
        "cloudtrail": "audit_events", "okta": "audit_events", "llm_gateway": "generation_events", "ci": "test_results"}
    # The schedule's own tags are still there.
    assert requests["ci"].tags["vault/hour"] == "2026-03-04-09:00"


def test_api_runs_are_tagged_from_vault_yaml_as_it_is_now(config_path: Path) -> None:
    def config():
        return load_config(config_path)

    assert partition_run_tags("2026-01-01-00:00|okta", config) == {"vault/lake_table": "audit_events"}
    assert partition_run_tags("2026-01-01-00:00|llm_gateway", config) == {"vault/lake_table": "generation_events"}
    assert lake_table_tags(config(), "ci") == {"vault/lake_table": "test_results"}


def test_a_partition_key_or_provider_that_names_nothing_is_refused_by_name(config_path: Path) -> None:
    def config():
        return load_config(config_path)

    with pytest.raises(ValueError, match=r"'2026-01-01-00:00' is not '<hour>\|<provider>'"):
        partition_run_tags("2026-01-01-00:00", config)
    with pytest.raises(ConfigError, match="unknown provider 'nobody'.*configured providers: ci, cloudtrail"):
        partition_run_tags("2026-01-01-00:00|nobody", config)
