"""Promotion alerts: a spike of quarantined records or digest mismatches for a provider.

Every materialization of ``golden_promotion`` records ``count_clean``, ``count_masked`` and
``count_quarantined`` (defs/promotion/assets.py); the quarantine items in the catalog carry
each record's reason, of which ``checksum_mismatch`` (the bytes no longer hash to the indexed
digest) and ``ledger_mismatch`` (the index no longer reproduces the signed Merkle root) are
digest mismatches. For each new promotion (a storage-id cursor over the materializations;
the first tick starts at the newest) the provider's promotions of the trailing
``alerts.promotion.window_minutes`` are added up and compared with ``max_quarantine_rate``
(given ``min_records``) and ``max_digest_mismatches`` (core/alert_rules.py). One alert per
provider, metric and window-long slice of time (its dedup key), however long the spike lasts.
"""

import dagster as dg

from vault_pipeline.core.alert_rules import PromotionSample, Spike, SpikeThresholds, spikes, window_bucket, window_of
from vault_pipeline.core.alerts import PROMOTION, AlertEvent
from vault_pipeline.defs.operations.alerting import always_on_sensor, asset_link, now_utc, raise_and_deliver, stamp
from vault_pipeline.defs.resources import VaultResource
from vault_pipeline.storage.catalog import Catalog

PROMOTION_SENSOR = "promotion_alerts"
PROMOTION_ASSET = dg.AssetKey("golden_promotion")
DIGEST_MISMATCHES = ("checksum_mismatch", "ledger_mismatch")  # defs/promotion/decisions.py reasons
BATCH = 200
WINDOW_LIMIT = 1000  # promotions looked at per window (a backfill promotes many hours at once)


def _count(metadata: dict, name: str) -> int:
    value = metadata.get(name)
    value = getattr(value, "value", value)
    return int(value) if isinstance(value, (int, float)) else 0


def digest_mismatches(catalog: Catalog, partition: str) -> int:
    items = catalog.list_quarantine(partition=partition, limit=100_000)
    return sum(1 for item in items if item.get("reason") in DIGEST_MISMATCHES and item.get("status") != "released")


def sample_of(record, catalog: Catalog, cache: dict[str, int]) -> PromotionSample:
    metadata = dict(record.asset_materialization.metadata)
    partition = record.partition_key or ""
    if partition not in cache:
        cache[partition] = digest_mismatches(catalog, partition) if partition else 0
    quarantined = _count(metadata, "count_quarantined")
    return PromotionSample(at=record.timestamp, partition=partition, quarantined=quarantined,
                           records=_count(metadata, "count_clean") + _count(metadata, "count_masked") + quarantined,
                           digest_mismatches=cache[partition])


def spike_event(provider: str, spike: Spike, window_minutes: int) -> AlertEvent:
    if spike.metric == "quarantine_rate":
        title = f"promotion: {spike.value:.1%} of {provider}'s records quarantined in {window_minutes} min"
        text = (f"{spike.quarantined} of {spike.records} records promoted for {provider} in the last {window_minutes} "
                f"minutes were quarantined ({spike.value:.2%}, threshold {spike.threshold:.2%}).")
    else:
        title = f"promotion: {int(spike.value)} digest mismatches for {provider} in {window_minutes} min"
        text = (f"{int(spike.value)} records of {provider} promoted in the last {window_minutes} minutes no longer "
                f"match their digests (checksum or ledger mismatch; threshold {int(spike.threshold)}): stored bytes "
                "or the index changed after they were sealed. Run `vault verify` and look at /v1/quarantine.")
    listed = ", ".join(spike.partitions[-5:])
    return AlertEvent(
        kind=PROMOTION, severity="critical" if spike.metric == "digest_mismatches" else "error", title=title,
        text=f"{text} Partitions: {listed}.",
        dedup_key=f"{PROMOTION}:{provider}:{spike.metric}:{window_bucket(spike.window_end, window_minutes * 60)}",
        created_at=stamp(now_utc()),
        fields={"provider": provider, "metric": spike.metric, "value": spike.value, "threshold": spike.threshold,
                "records": spike.records, "quarantined": spike.quarantined,
                "digest_mismatches": spike.digest_mismatches, "window_minutes": window_minutes,
                "partition": spike.partitions[-1] if spike.partitions else None},
        link=asset_link(PROMOTION_ASSET.path[-1], spike.partitions[-1] if spike.partitions else None),
    )


def build_promotion_sensor() -> dg.SensorDefinition:
    @always_on_sensor(
        PROMOTION_SENSOR, 60,
        "Raises a promotion alert when quarantines or digest mismatches of a provider spike over "
        "alerts.promotion.window_minutes.",
    )
    def promotion_alerts(context: dg.SensorEvaluationContext, vault: VaultResource):
        instance = context.instance
        if context.cursor is None:
            newest = instance.fetch_materializations(PROMOTION_ASSET, limit=1).records
            context.update_cursor(str(newest[0].storage_id if newest else 0))
            return dg.SkipReason("started: promotions from now on are watched")
        new = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=PROMOTION_ASSET, after_storage_id=int(context.cursor)), limit=BATCH,
            ascending=True).records
        if not new:
            return dg.SkipReason("no new promotions")
        rules = vault.vault_config().alerts.promotion
        events = []
        if rules.enabled:
            thresholds = SpikeThresholds(window_s=rules.window_minutes * 60, max_quarantine_rate=rules.max_quarantine_rate,
                                         min_records=rules.min_records, max_digest_mismatches=rules.max_digest_mismatches)
            earliest = min(r.timestamp for r in new) - thresholds.window_s
            recent = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=PROMOTION_ASSET, after_timestamp=earliest,
                                      before_storage_id=new[-1].storage_id + 1),
                limit=WINDOW_LIMIT).records
            catalog, cache = vault.catalog(), {}
            samples: dict[str, list[PromotionSample]] = {}
            for record in recent:
                provider = (record.partition_key or "").rpartition("|")[2]
                samples.setdefault(provider, []).append(sample_of(record, catalog, cache))
            raised: set[str] = set()
            for record in new:
                provider = (record.partition_key or "").rpartition("|")[2]
                window = window_of(samples.get(provider, []), record.timestamp, thresholds.window_s)
                for spike in spikes(window, thresholds, record.timestamp):
                    event = spike_event(provider, spike, rules.window_minutes)
                    if event.dedup_key not in raised:
                        raised.add(event.dedup_key)
                        events.append(event)
        added = raise_and_deliver(context, vault, events) if events else 0
        context.update_cursor(str(new[-1].storage_id))
        return dg.SkipReason(f"{len(new)} promotions read, {len(events)} spikes ({added} new deliveries)")

    return promotion_alerts
