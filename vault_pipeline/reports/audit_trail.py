"""The audit trail: every change of the vault's configuration and access, with who or what made it.

Whenever the effective ``vault.yaml`` or the API key ring differs from what the vault last
recorded, a signed, hash-chained entry is appended to the vault-wide ledger chain
(``VAULT_CHAIN``, through the same ``append_entry`` as partitions, so checkpoints, races and
``vault verify`` work alike) holding a *redacted* snapshot and its fingerprint (SHA-256 of the
snapshot's canonical JSON). Redaction keeps what an auditor needs and nothing a thief could use:
vault.yaml names secrets only by environment variable, and those names stay; a value that looks
like a credential (a URL's userinfo, a query parameter or mapping key named like a key, secret,
token or password, a well-known key shape such as ``sk-...``) becomes ``[redacted]``. The key
ring is recorded as names and roles only, never keys nor their hashes (a hash of a short key can
be guessed). ``audit_trail`` then lists, for a period, those changes as diffs of the redacted
snapshots, the promotion decisions and quarantine approvals of every provider chain, the lake
maintenance runs of the artifact index and the compliance reports of the vault chain.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from vault_pipeline.core.ledger import (
    GENESIS_HASH,
    KIND_COMPLIANCE_REPORT,
    KIND_CONFIG_SNAPSHOT,
    KIND_KEY_RING_SNAPSHOT,
    KIND_MAINTENANCE_RUN,
    KIND_PROMOTION_DECISION,
    VAULT_CHAIN,
    LedgerEntry,
    LedgerError,
    Signer,
    canonical_json,
    utc_now,
    verify_entry_signature,
)
from vault_pipeline.defs.integrity.ledger_stage import append_entry
from vault_pipeline.reports.moments import period, utc_moment
from vault_pipeline.storage.catalog import Catalog
from vault_pipeline.storage.object_store import ObjectStore

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
CONFIG_ACTOR = "configuration file"
#: The vault chain's "partition" per entry kind: lets the newest snapshot be found by one
#: indexed lookup. No hour partition key looks like this (those are ``YYYY-MM-DD-HH:00|name``).
VAULT_PARTITIONS = {
    KIND_CONFIG_SNAPSHOT: f"{VAULT_CHAIN}/config",
    KIND_KEY_RING_SNAPSHOT: f"{VAULT_CHAIN}/key_ring",
    KIND_COMPLIANCE_REPORT: f"{VAULT_CHAIN}/compliance_report",
    KIND_MAINTENANCE_RUN: f"{VAULT_CHAIN}/maintenance_run",
}
# Artifact kind written by defs/analytics/maintenance.py (not imported: that module is Dagster code).
MAINTENANCE_ARTIFACT = "lake_maintenance"

# A mapping key naming a secret. "_env" keys name an environment variable and are kept when
# their value is one; every other scalar under such a key is masked.
_SENSITIVE_NAME = re.compile(r"key|secret|token|passw|pwd|credential|auth|cookie|signature|private|session",
                             re.IGNORECASE)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Values that are credentials whatever their key: API key prefixes, AWS access key ids, JWTs,
# an Authorization header's value, PEM blocks.
_CREDENTIAL_VALUE = re.compile(
    r"^(?:sk|pk|rk)[-_][A-Za-z0-9_\-]{6,}|^(?:ghp|gho|ghs|ghu|github_pat|glpat|xox[abprs])[-_]"
    r"|^(?:AKIA|ASIA)[0-9A-Z]{12,}|^eyJ[\w-]+\.[\w-]+\.|^(?:bearer|basic|token)\s+\S|-----BEGIN",
    re.IGNORECASE,
)
_LEASE_TTL_S = 30.0
_LEASE_WAIT_S = 10.0


# -- redaction and fingerprints (pure) ---------------------------------------------------------


def redact(value: Any, key: str | None = None) -> Any:
    """``value`` with every credential-like scalar replaced by ``[redacted]`` (see module doc)."""
    if isinstance(value, Mapping):
        return {str(k): redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item, key) for item in value]
    if value is None or isinstance(value, bool):
        return value
    if key is not None and key.lower().endswith("_env"):
        return value if isinstance(value, str) and _ENV_NAME.match(value) else REDACTED
    if key is not None and _SENSITIVE_NAME.search(key):
        return REDACTED
    if isinstance(value, str):
        return _redact_text(value)
    return value


def _redact_text(text: str) -> str:
    if _CREDENTIAL_VALUE.search(text.strip()):
        return REDACTED
    if "://" not in text:
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return REDACTED  # an unparseable URL may hide anything
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, REDACTED if _SENSITIVE_NAME.search(k) or _CREDENTIAL_VALUE.search(v) else v)
                           for k, v in pairs], safe="[]")
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def fingerprint(snapshot: Any) -> str:
    """``sha256:<hex>`` of the snapshot's canonical JSON (sorted keys, no whitespace, UTF-8)."""
    return "sha256:" + hashlib.sha256(canonical_json(snapshot)).hexdigest()


def config_snapshot(config: Any) -> dict[str, Any]:
    """The effective configuration (every default filled in), redacted. ``config`` is a
    ``VaultConfig`` (or its plain-dict dump); where the file lives is not part of it."""
    document = config.model_dump(mode="json", exclude={"source"}) if hasattr(config, "model_dump") else dict(config)
    document.pop("source", None)
    return redact(document)


def key_ring_snapshot(principals: Iterable[tuple[str, Iterable[str]]]) -> dict[str, Any]:
    """Names and roles of the API keys, sorted; nothing derived from a key."""
    keys = sorted(({"name": str(name), "roles": sorted(str(r) for r in roles)} for name, roles in principals),
                  key=lambda item: (item["name"], item["roles"]))
    return {"keys": keys}


def key_ring_principals(keys: Any) -> list[tuple[str, list[str]]]:
    """(name, roles) of each key of an ``api.auth.KeyRing``."""
    return [(p.name, sorted(p.roles)) for p in keys.principals()]


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value}


def snapshot_diff(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Changed leaves of two redacted snapshots as ``{"path", "before", "after"}`` (a missing
    side is None and named in ``change``: added, removed or changed), sorted by path."""
    old, new = _flatten(before or {}), _flatten(after)
    changes = []
    for path in sorted(set(old) | set(new)):
        if path in old and path in new and old[path] == new[path]:
            continue
        change = "added" if path not in old else "removed" if path not in new else "changed"
        changes.append({"path": path, "change": change, "before": old.get(path), "after": new.get(path)})
    return changes


def config_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any]:
    old, new = set((before or {}).get("providers") or {}), set(after.get("providers") or {})
    return {"providers_added": sorted(new - old), "providers_removed": sorted(old - new),
            "diff": snapshot_diff(before, after)}


def key_ring_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> dict[str, Any]:
    def roles(snapshot):
        by_name: dict[str, list[list[str]]] = {}
        for item in (snapshot or {}).get("keys") or []:
            by_name.setdefault(item["name"], []).append(item["roles"])
        return by_name

    old, new = roles(before), roles(after)
    counts_old, counts_new = Counter({n: len(r) for n, r in old.items()}), Counter({n: len(r) for n, r in new.items()})
    return {
        "keys_added": sorted(set(new) - set(old)),
        "keys_removed": sorted(set(old) - set(new)),
        "role_changes": [{"name": name, "before": old[name], "after": new[name]}
                         for name in sorted(set(old) & set(new)) if sorted(old[name]) != sorted(new[name])],
        # a name held by more or fewer keys than before: a key of that name was rotated in or out
        "key_count_changes": [{"name": name, "before": counts_old[name], "after": counts_new[name]}
                              for name in sorted(set(old) & set(new)) if counts_old[name] != counts_new[name]],
    }


# -- recording -----------------------------------------------------------------------------------


def newest_vault_entry(catalog: Catalog, kind: str) -> LedgerEntry | None:
    texts = catalog.ledger_entries_for_partition(VAULT_PARTITIONS[kind])
    for text in reversed(texts):
        try:
            entry = LedgerEntry.from_json(text)
        except LedgerError:
            continue  # `vault verify` reports it; the one before still tells what was recorded
        if entry.provider == VAULT_CHAIN and entry.kind == kind:
            return entry
    return None


@contextmanager
def _recording_lease(catalog: Catalog, kind: str) -> Iterator[None]:
    """One recorder of a kind at a time across processes (the sensor, `vault run`, `vault serve`),
    so a change seen by two of them at once is recorded once. Not having it after a while is no
    reason to lose the change: then it is recorded anyway (at worst twice)."""
    name, holder = f"audit:{kind}", f"audit-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + _LEASE_WAIT_S
    held = catalog.acquire_lease(name, holder, _LEASE_TTL_S)
    while not held and time.monotonic() < deadline:
        time.sleep(0.05)
        held = catalog.acquire_lease(name, holder, _LEASE_TTL_S)
    try:
        yield
    finally:
        if held:
            catalog.release_lease(name, holder)


def record_snapshot(*, store: ObjectStore, catalog: Catalog, signer: Signer, kind: str, snapshot: dict[str, Any],
                    run_id: str, actor: str, source: str = "") -> LedgerEntry | None:
    """Append a signed ``kind`` entry for ``snapshot`` (already redacted) unless the newest one
    of that kind has the same fingerprint; returns the new entry, or None when nothing changed."""
    if kind not in (KIND_CONFIG_SNAPSHOT, KIND_KEY_RING_SNAPSHOT):
        raise ValueError(f"{kind!r} is not a snapshot kind")
    digest = fingerprint(snapshot)
    with _recording_lease(catalog, kind):
        newest = newest_vault_entry(catalog, kind)
        # A newest entry whose signature fails is not trusted to say what was recorded: record again
        # (and `vault verify` reports the tampered entry).
        if newest is not None and newest.body.get("fingerprint") == digest and \
                verify_entry_signature(newest, signer.verifier()):
            return None
        draft = LedgerEntry(
            provider=VAULT_CHAIN, partition=VAULT_PARTITIONS[kind], sequence=1, previous_hash=GENESIS_HASH,
            created_at=utc_now(), run_id=run_id, kind=kind,
            body={"fingerprint": digest, "snapshot": snapshot, "actor": actor, "source": source,
                  "previous_fingerprint": newest.body.get("fingerprint") if newest else None},
        )
        return append_entry(store=store, catalog=catalog, signer=signer, draft=draft)


def record_config(*, store: ObjectStore, catalog: Catalog, signer: Signer, config: Any, run_id: str) -> LedgerEntry | None:
    """Record the effective ``vault.yaml`` (a VaultConfig) if it changed since last recorded."""
    return record_snapshot(store=store, catalog=catalog, signer=signer, kind=KIND_CONFIG_SNAPSHOT,
                           snapshot=config_snapshot(config), run_id=run_id, actor=CONFIG_ACTOR,
                           source=str(getattr(config, "source", "") or ""))


def record_key_ring(*, store: ObjectStore, catalog: Catalog, signer: Signer, keys: Any, run_id: str,
                    source: str) -> LedgerEntry | None:
    """Record the API key ring (names and roles) if it changed; ``source`` says where it came
    from (``VAULT_API_KEYS`` or the generated local admin key), never what it holds."""
    return record_snapshot(store=store, catalog=catalog, signer=signer, kind=KIND_KEY_RING_SNAPSHOT,
                           snapshot=key_ring_snapshot(key_ring_principals(keys)), run_id=run_id,
                           actor=source, source=source)


def record_vault_settings(vault: Any, *, run_id: str, keys: Any = None, key_source: str = "") -> list[LedgerEntry]:
    """Record the configuration (and ``keys``, when given) of a ``VaultResource``; never raises:
    a command must not fail because its audit entry could not be written (logged instead)."""
    written: list[LedgerEntry] = []
    try:
        store, catalog, signer = vault.object_store(), vault.catalog(), vault.ledger_signer()
        entry = record_config(store=store, catalog=catalog, signer=signer, config=vault.vault_config(), run_id=run_id)
        written += [entry] if entry else []
        if keys is not None:
            entry = record_key_ring(store=store, catalog=catalog, signer=signer, keys=keys, run_id=run_id,
                                    source=key_source)
            written += [entry] if entry else []
    except Exception as exc:  # noqa: BLE001 - the audit entry is best effort for the command
        # The type only: a storage error may quote a connection string.
        log.warning("could not record the configuration in the ledger (%s)", type(exc).__name__)
    return written


# -- the trail ----------------------------------------------------------------------------------


def _ledger_ref(entry: LedgerEntry) -> dict[str, Any]:
    return {"provider": entry.provider, "sequence": entry.sequence, "entry_hash": entry.entry_hash}


def _in(moment: datetime, low: datetime, high: datetime) -> bool:
    return low <= moment < high


def _vault_events(catalog: Catalog, low: datetime, high: datetime) -> list[dict[str, Any]]:
    events = []
    previous: dict[str, dict[str, Any] | None] = {KIND_CONFIG_SNAPSHOT: None, KIND_KEY_RING_SNAPSHOT: None}
    # The whole vault chain, oldest first: a change in the period is diffed against the snapshot
    # before it even when that one is older than the period. The chain holds changes only.
    for _sequence, text in catalog.ledger_entries(VAULT_CHAIN):
        try:
            entry = LedgerEntry.from_json(text)
        except LedgerError:
            continue
        moment = utc_moment(entry.created_at)
        body = entry.body
        if entry.kind in previous:
            before, previous[entry.kind] = previous[entry.kind], body.get("snapshot") or {}
            if not _in(moment, low, high):
                continue
            changes = (config_changes if entry.kind == KIND_CONFIG_SNAPSHOT else key_ring_changes)(
                before, previous[entry.kind])
            events.append({
                "at": entry.created_at, "kind": "config_change" if entry.kind == KIND_CONFIG_SNAPSHOT
                else "key_ring_change", "actor": body.get("actor") or CONFIG_ACTOR, "run_id": entry.run_id,
                "initial": before is None, "fingerprint": body.get("fingerprint"),
                "previous_fingerprint": body.get("previous_fingerprint"), "source": body.get("source"),
                "changes": changes, "ledger": _ledger_ref(entry),
            })
        elif _in(moment, low, high):
            events.append({
                "at": entry.created_at, "kind": entry.kind,
                "actor": body.get("actor") or body.get("requested_by") or entry.run_id, "run_id": entry.run_id,
                "detail": dict(body), "ledger": _ledger_ref(entry),
            })
    return events


_DECISION_MARK = '"kind":"promotion_decision"'


def _promotion_events(catalog: Catalog, low: datetime, high: datetime) -> list[dict[str, Any]]:
    events = []
    for provider in catalog.ledger_providers():
        if provider == VAULT_CHAIN:
            continue
        for _sequence, text in catalog.ledger_entries(provider):
            # Entries are canonical JSON (sorted keys, no whitespace): skip the partition entries,
            # the bulk of a chain, without parsing them.
            if _DECISION_MARK not in text:
                continue
            try:
                entry = LedgerEntry.from_json(text)
            except LedgerError:
                continue
            if entry.kind != KIND_PROMOTION_DECISION or not _in(utc_moment(entry.created_at), low, high):
                continue
            body = entry.body
            approval = body.get("approval") or None
            events.append({
                "at": entry.created_at,
                "kind": "quarantine_approval" if approval else "promotion",
                "actor": (approval or {}).get("approved_by") or body.get("requested_by") or entry.run_id,
                "run_id": entry.run_id, "provider": provider, "partition": entry.partition,
                "detail": {"counts": body.get("counts"), "tier": body.get("tier"),
                           "masking_policy": body.get("masking_policy"), "promotion_id": body.get("promotion_id"),
                           "requested_by": body.get("requested_by"), "approval": approval,
                           "manifest_key": body.get("manifest_key"), "decisions": entry.record_count},
                "ledger": _ledger_ref(entry),
            })
    return events


def _maintenance_events(catalog: Catalog, low: datetime, high: datetime) -> list[dict[str, Any]]:
    """Maintenance artifacts sit in the partition of the UTC day they ran: read those days only."""
    events = []
    day = low.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < high:
        offset = 0
        while True:
            page = catalog.search_artifacts(kind=MAINTENANCE_ARTIFACT, partition=day.strftime("%Y-%m-%d"),
                                            limit=1000, offset=offset)
            offset += len(page)
            for artifact in page:
                try:
                    moment = utc_moment(artifact.created_at)
                except ValueError:
                    continue
                if _in(moment, low, high):
                    events.append({
                        "at": artifact.created_at, "kind": "maintenance_run", "actor": artifact.run_id,
                        "run_id": artifact.run_id, "location": artifact.location,
                        "detail": dict(artifact.metadata), "artifact_id": artifact.artifact_id, "ledger": None,
                    })
            if len(page) < 1000:
                break
        day += timedelta(days=1)
    return events


def audit_trail(catalog: Catalog, start: datetime | str, end: datetime | str) -> list[dict[str, Any]]:
    """Every configuration and key-ring change, promotion, quarantine approval, maintenance run and
    compliance report in [start, end), oldest first. Each event: ``at``, ``kind`` (config_change,
    key_ring_change, promotion, quarantine_approval, maintenance_run, compliance_report), ``actor``,
    ``run_id``, ``ledger`` ({provider, sequence, entry_hash}, None when it is no ledger entry) and
    what changed (``changes`` for configuration and key ring, ``detail`` otherwise)."""
    low, high = period(start, end)
    events = _vault_events(catalog, low, high) + _promotion_events(catalog, low, high) + \
        _maintenance_events(catalog, low, high)
    events.sort(key=lambda e: (utc_moment(e["at"]), (e["ledger"] or {}).get("provider", ""),
                               (e["ledger"] or {}).get("sequence", 0)))
    return events


def record_serve_start(keys: Any) -> list[LedgerEntry]:
    """What `vault serve` records when it starts: vault.yaml and the API's key ring, on the
    deployment's storage (``VAULT_ENV``); best effort like :func:`record_vault_settings`."""
    import os

    from vault_pipeline.defs.resources import vault_resource

    source = "VAULT_API_KEYS" if os.environ.get("VAULT_API_KEYS", "").strip() else "generated local admin key"
    try:
        vault = vault_resource()
    except Exception as exc:  # noqa: BLE001 - as record_vault_settings
        log.warning("could not record the configuration in the ledger (%s)", type(exc).__name__)
        return []
    return record_vault_settings(vault, run_id="cli:vault serve", keys=keys, key_source=source)
