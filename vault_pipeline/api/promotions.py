"""Promotion requests over HTTP: ``/v1/promotions`` and ``/v1/quarantine`` (role ``admin``).

An admin asks for a partition, a provider (optionally since an hour) or one log to be
promoted; ``PromotionService`` answers at once with a tracking id and works the request in a
background thread behind a bounded queue, through the same ``promote_partition`` the asset
graph runs, so the verification, the golden layout and the signed decision entries are
identical. The request's state lives in the catalog (``put_promotion``), so any API process
can answer ``GET /v1/promotions/{id}``. Approving a quarantined record re-verifies it at once:
the approval (who, reason code, note) is stored with the item and signed into the ledger as a
``quarantine_approval`` decision, and the record reaches golden only if its own bytes verify.

A request is one of three shapes told apart by ``scope`` (a discriminated union), so the
OpenAPI document says which fields each scope needs and malformed requests never reach the
service; answers are described by response models and the shared ErrorBody.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from vault_pipeline.api.schemas import Timestamp, error_responses, utc_sort_key
from vault_pipeline.core.identity import LOG_ID_PATTERN, is_log_id
from vault_pipeline.core.ledger import KIND_PARTITION, LedgerEntry, Signer, utc_now
from vault_pipeline.core.windows import HourWindow, PartitionKeyError, split_partition_key
from vault_pipeline.defs.promotion.masking import MaskingSettings
from vault_pipeline.defs.promotion.promotion import APPROVED_STATUS, QUARANTINED, PromotionError, promote_partition
from vault_pipeline.providers.config import PROVIDER_NAME, VaultConfig
from vault_pipeline.storage.catalog import Catalog
from vault_pipeline.storage.object_store import ObjectStore

log = logging.getLogger(__name__)

QUEUED, RUNNING, COMPLETED, FAILED = "queued", "running", "completed", "failed"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# The shape of a partition key; whether its hour exists (no month 13) is checked on submit (422 invalid_partition).
PARTITION_KEY = r"^\d{4}-\d{2}-\d{2}-\d{2}:00\|" + PROVIDER_NAME.pattern.removeprefix("^")


class _Promotion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tier: str | None = Field(None, pattern=_NAME.pattern, description="policy tier; default from vault.yaml")


class PartitionPromotion(_Promotion):
    scope: Literal["partition"]
    partition: str = Field(max_length=100, pattern=PARTITION_KEY, description="YYYY-MM-DD-HH:00|provider")


class ProviderPromotion(_Promotion):
    scope: Literal["provider"]
    provider: str = Field(pattern=PROVIDER_NAME.pattern)
    since: Timestamp | None = Field(None, description="only the provider's hours from this one on")


class LogPromotion(_Promotion):
    scope: Literal["log"]
    log_id: str = Field(pattern=LOG_ID_PATTERN.pattern)


PromotionRequest = Annotated[PartitionPromotion | ProviderPromotion | LogPromotion, Field(discriminator="scope")]


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason_code: str = Field(pattern=_NAME.pattern)
    note: str | None = Field(None, max_length=1000)


class PromotionAccepted(BaseModel):
    promotion_id: str
    status: Literal["queued"]
    partitions: list[str]


class PromotionStatus(BaseModel):
    promotion_id: str
    state: Literal["queued", "running", "completed", "failed"]
    scope: Literal["partition", "provider", "log"]
    log_id: str | None = None
    log_decision: str | None = None
    log_reason: Any = None
    partitions: list[str]
    requested_by: str
    created_at: str
    updated_at: str
    counts: dict[str, int]
    golden_prefixes: list[str]
    results: list[dict[str, Any]]
    errors: list[dict[str, Any]]


class ApprovalOutcome(BaseModel):
    log_id: str
    outcome: Literal["promoted", "quarantined"]
    decision: str
    reason: Any = None
    approved_by: str
    reason_code: str
    ledger_sequence: int | None = None
    golden_prefix: str | None = None


class QuarantineMeta(BaseModel):
    has_more: bool
    limit: int
    offset: int


class QuarantinePage(BaseModel):
    data: list[dict[str, Any]]
    meta: QuarantineMeta


class PromotionRejected(ValueError):
    """The request names nothing promotable; ``status`` and ``code`` are the HTTP answer."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class PromotionQueueFull(RuntimeError):
    retry_after_s = 5


class PromotionService:
    """Runs promotion requests one at a time in a worker thread; approvals run inline.

    One lock serialises every ledger write this process makes, so a request and an approval
    never race for the same sequence number of a provider's chain; a writer in another process
    (a graph run, another API process) that takes it first is retried by ``append_entry``.
    """

    def __init__(self, *, catalog: Catalog, store: ObjectStore, signer: Callable[[], Signer],
                 config: Callable[[], VaultConfig], masking: Callable[[VaultConfig], MaskingSettings],
                 max_queue: int = 32, work_root: str | Path | None = None) -> None:
        self.catalog, self.store, self._signer, self._config, self._masking = catalog, store, signer, config, masking
        self._work_root = work_root  # None: $VAULT_HOME/work, where the graph's promotions work too
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=max_queue)
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._work, name="vault-promotions", daemon=True)
        self._worker.start()

    # requests ------------------------------------------------------------------------------
    def submit(self, request: PromotionRequest, requested_by: str) -> dict[str, Any]:
        partitions, log_id = self._resolve(request)
        promotion_id = "prm_" + uuid.uuid4().hex[:24]
        document = {
            "promotion_id": promotion_id, "state": QUEUED, "scope": request.scope, "log_id": log_id,
            "request": request.model_dump(mode="json", exclude_none=True), "partitions": partitions,
            "requested_by": requested_by, "created_at": utc_now(), "updated_at": utc_now(),
            "counts": {}, "golden_prefixes": [], "results": [], "errors": [],
        }
        self.catalog.put_promotion(promotion_id, document)
        try:
            self._queue.put_nowait(promotion_id)
        except queue.Full:
            self.catalog.put_promotion(promotion_id, document | {"state": FAILED, "errors": [{"error": "queue_full"}]})
            raise PromotionQueueFull(f"the promotion queue holds {self._queue.maxsize} requests; retry later") from None
        return document

    def get(self, promotion_id: str) -> dict[str, Any] | None:
        return self.catalog.get_promotion(promotion_id)

    def _resolve(self, request: PromotionRequest) -> tuple[list[str], str | None]:
        """The partitions a request covers, checked before it is queued (so errors are synchronous)."""
        config = self._config()
        if isinstance(request, LogPromotion):
            if not is_log_id(request.log_id):
                raise PromotionRejected(422, "invalid_request", "scope 'log' needs a log_id")
            record = self.catalog.get_record(request.log_id)
            if record is None:
                raise PromotionRejected(404, "log_not_found", "no log with that id")
            return [record.partition], record.log_id
        if isinstance(request, PartitionPromotion):
            try:
                hour, provider = split_partition_key(request.partition)
                HourWindow.for_hour_key(hour)
            except (PartitionKeyError, ValueError) as exc:
                raise PromotionRejected(422, "invalid_partition", str(exc)) from None
            self._known_provider(config, provider)
            return [request.partition], None
        self._known_provider(config, request.provider)
        since = None
        if request.since is not None:  # a Timestamp: always with its UTC offset
            since = utc_sort_key(request.since, "-%m-%d-%H:00")
        partitions = sorted({
            entry.partition for entry in (LedgerEntry.from_json(text) for _, text in self.catalog.ledger_entries(request.provider))
            if entry.kind == KIND_PARTITION and (since is None or entry.partition.split("|")[0] >= since)
        })
        if not partitions:
            raise PromotionRejected(404, "nothing_to_promote", f"provider {request.provider!r} has no verified partitions")
        return partitions, None

    @staticmethod
    def _known_provider(config: VaultConfig, provider: str) -> None:
        if provider not in config.providers:
            raise PromotionRejected(404, "unknown_provider", f"no provider {provider!r}; configured: {sorted(config.providers)}")

    # the worker ----------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            promotion_id = self._queue.get()
            if promotion_id is None:
                return
            try:
                self._run(promotion_id)
            except Exception:  # the worker must survive any one request
                log.exception("promotion %s failed", promotion_id)
            finally:
                self._queue.task_done()

    def _run(self, promotion_id: str) -> None:
        document = self.catalog.get_promotion(promotion_id)
        document.update(state=RUNNING, updated_at=utc_now())
        self.catalog.put_promotion(promotion_id, document)
        config = self._config()
        counts: Counter[str] = Counter()
        for partition in document["partitions"]:
            try:
                summary = self._promote(config, partition, document["requested_by"],
                                        document["request"].get("tier"), promotion_id,
                                        track=[document["log_id"]] if document.get("log_id") else ())
            except Exception as exc:  # noqa: BLE001 - recorded per partition, the request goes on
                code = exc.code if isinstance(exc, PromotionError) else type(exc).__name__
                document["errors"].append({"partition": partition, "error": code, "detail": str(exc)})
                continue
            counts.update(summary.counts)
            document["results"].append(summary.to_dict())
            if summary.golden_prefix not in document["golden_prefixes"]:
                document["golden_prefixes"].append(summary.golden_prefix)
            if document.get("log_id") in summary.decisions:
                document["log_decision"] = summary.decisions[document["log_id"]]
                document["log_reason"] = summary.quarantined.get(document["log_id"])
        document.update(counts=dict(counts), updated_at=utc_now(),
                        state=FAILED if document["errors"] and not document["results"] else COMPLETED)
        self.catalog.put_promotion(promotion_id, document)

    def _promote(self, config: VaultConfig, partition: str, requested_by: str, tier: str | None,
                 promotion_id: str | None, approval: dict | None = None, track=()):
        provider = split_partition_key(partition)[1]
        settings = self._masking(config)
        with self._lock:
            return promote_partition(
                store=self.store, catalog=self.catalog, signer=self._signer(), scanner=settings.scanner,
                policy=settings.policy, provider=provider, kind=config.provider(provider).kind, partition=partition,
                requested_by=requested_by, tier=tier or settings.tier, run_id=f"api:{promotion_id or 'approval'}",
                promotion_id=promotion_id, approval=approval, track=track, work_root=self._work_root,
            )

    # quarantine ----------------------------------------------------------------------------
    def approve(self, log_id: str, approved_by: str, body: ApprovalRequest) -> dict[str, Any]:
        item = self.catalog.get_quarantine(log_id) if is_log_id(log_id) else None
        if item is None:
            raise PromotionRejected(404, "not_quarantined", "no quarantined log with that id")
        approval = {"log_id": log_id, "approved_by": approved_by, "reason_code": body.reason_code,
                    "note": body.note, "approved_at": utc_now()}
        self.catalog.put_quarantine([item | {"status": APPROVED_STATUS, **approval}])
        summary = self._promote(self._config(), item["partition"], approved_by, None, None, approval, track=[log_id])
        decision = summary.decisions.get(log_id, QUARANTINED)
        return {
            "log_id": log_id, "outcome": "quarantined" if decision == QUARANTINED else "promoted",
            "decision": decision, "reason": summary.quarantined.get(log_id), "approved_by": approved_by,
            "reason_code": body.reason_code, "ledger_sequence": summary.entry_sequence,
            "golden_prefix": summary.golden_prefix if decision != QUARANTINED else None,
        }

    def list_quarantine(self, **filters: Any) -> list[dict[str, Any]]:
        return self.catalog.list_quarantine(**filters)

    def close(self, timeout: float = 10.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._worker.join(timeout)

    def wait_idle(self) -> None:
        """Block until every queued request has been worked (tests, graceful shutdown)."""
        self._queue.join()


def register_routes(app, service: PromotionService, requires: Callable, api_error: type[Exception]) -> None:
    """The promotion and quarantine endpoints, on ``create_app``'s auth and error conventions."""
    def rejected(exc: PromotionRejected) -> Exception:
        return api_error(exc.status, exc.code, exc.detail)

    @app.post("/v1/promotions", status_code=202, response_model=PromotionAccepted, summary="promote verified data",
              responses=error_responses({
                  404: "unknown_provider, log_not_found, or nothing_to_promote (no verified partition)",
                  422: "invalid_request (malformed body) or invalid_partition (no such hour)",
                  429: "queue_full: retry after Retry-After seconds",
              }))
    def request_promotion(body: PromotionRequest, request: Request, _p=requires("admin")) -> JSONResponse:
        try:
            document = service.submit(body, request.state.principal)
        except PromotionRejected as exc:
            raise rejected(exc) from None
        except PromotionQueueFull as exc:
            raise api_error(429, "queue_full", str(exc), {"Retry-After": str(exc.retry_after_s)}) from None
        return JSONResponse({"promotion_id": document["promotion_id"], "status": QUEUED,
                             "partitions": document["partitions"]}, 202)

    @app.get("/v1/promotions/{promotion_id}", response_model=PromotionStatus, summary="a promotion request's state",
             responses=error_responses({404: "promotion_not_found"}))
    def promotion_status(promotion_id: str, _p=requires("admin", "read")) -> JSONResponse:
        document = service.get(promotion_id) if re.fullmatch(r"prm_[0-9a-f]{24}", promotion_id) else None
        if document is None:
            raise api_error(404, "promotion_not_found", "no such promotion")
        keys = ("promotion_id", "state", "scope", "log_id", "log_decision", "log_reason", "partitions",
                "requested_by", "created_at", "updated_at", "counts", "golden_prefixes", "results", "errors")
        return JSONResponse({key: document.get(key) for key in keys})

    @app.post("/v1/quarantine/{log_id}/approve", response_model=ApprovalOutcome,
              summary="approve a quarantined record: re-verified, promoted only if its bytes verify",
              responses=error_responses({404: "not_quarantined",
                                         409: "verification_failed: the approval is recorded, the bytes still fail "
                                              "(detail is the outcome)"}))
    def approve_quarantined(log_id: str, body: ApprovalRequest, request: Request, _p=requires("admin")) -> JSONResponse:
        try:
            outcome = service.approve(log_id, request.state.principal, body)
        except PromotionRejected as exc:
            raise rejected(exc) from None
        if outcome["outcome"] != "promoted":
            # The approval is on record (catalog + ledger), but bytes that fail verification never reach golden.
            raise api_error(409, "verification_failed", outcome)
        return JSONResponse(outcome)

    @app.get("/v1/quarantine", response_model=QuarantinePage, summary="quarantined records")
    def list_quarantine(
        _p=requires("admin", "audit"),
        provider_id: str | None = Query(None, max_length=64),
        partition: str | None = Query(None, max_length=100),
        status: str | None = Query(None, max_length=32),
        limit: int = Query(100, ge=1, le=1000),
        offset: int = Query(0, ge=0, le=10_000_000),  # SQLite and MongoDB take 64-bit offsets, no more
    ) -> JSONResponse:
        items = service.list_quarantine(provider=provider_id, partition=partition, status=status, limit=limit + 1,
                                        offset=offset)
        return JSONResponse({"data": items[:limit], "meta": {"has_more": len(items) > limit, "limit": limit,
                                                            "offset": offset}})
