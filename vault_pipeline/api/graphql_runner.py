"""The production job backend: ingestion runs submitted to a Dagster webserver over GraphQL.

Each hour of a job becomes one run of the ``hourly_ingestion`` job, submitted with
``dagster-graphql``'s client to the webserver (``VAULT_DAGSTER_URL``), so it goes through the
deployment's run queue (``QueuedRunCoordinator``, honouring ``dagster/priority``) and run
launcher, and shows in the Dagster UI like any other run. A run is tagged ``vault/job_id`` and
carries the partition as Dagster's own tags: ``dagster/partition`` ("<hour>|<provider>") plus
one ``dagster/partition/<dimension>`` tag per dimension, which is what a step of a
multi-partitioned job reads its ``MultiPartitionKey`` from; ``run_tags`` adds the run queue's
own (``vault serve`` passes ``defs.run_queue.partition_run_tags``: the Delta table the run loads,
which the queue admits one run at a time). GraphQL submission cannot choose
a run id (``ExecutionMetadata`` has no ``runId``), so on this backend a job id is only the
tag, never a run id. A job's runs are found again by that tag; their records, bytes and
errors are read from the run's event log, and cached once the run has finished, since a
finished run's events no longer change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from vault_pipeline.api.runs import FAILED, JOB_TAG, PENDING, PRIORITIES, PRIORITY_TAG, SUCCEEDED, RunInfo, Runner
from vault_pipeline.defs.schedules import HOURLY_JOB

PARTITION_TAG = "dagster/partition"
DIMENSION_TAG_PREFIX = "dagster/partition/"
EVENT_PAGE = 1000

RUNS_FOR_JOB_QUERY = """
query VaultRunsForJob($tags: [ExecutionTag!]) {
  runsOrError(filter: {tags: $tags}) {
    __typename
    ... on Runs { results { runId status tags { key value } } }
    ... on InvalidPipelineRunsFilterError { message }
    ... on PythonError { message }
  }
}
"""

RUN_EVENTS_QUERY = """
query VaultRunEvents($runId: ID!, $cursor: String, $limit: Int) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      eventConnection(afterCursor: $cursor, limit: $limit) {
        cursor
        hasMore
        events {
          __typename
          ... on MaterializationEvent {
            assetKey { path }
            metadataEntries { label ... on IntMetadataEntry { intRepr } }
          }
          ... on ExecutionStepFailureEvent { error { message cause { message } } }
          ... on RunFailureEvent { message }
          ... on AssetCheckEvaluationEvent { evaluation { checkName success severity } }
        }
      }
    }
    ... on RunNotFoundError { message }
    ... on PythonError { message }
  }
}
"""


def partition_tags(partition_key: str) -> dict[str, str]:
    """Dagster's tags for one partition of the hour x provider job.

    Steps read a multi-partition key only from the per-dimension tags (``dagster/partition``
    alone would reach the assets as a plain string); the combined tag is what the UI, the
    asset partition status and our own ``runs_for_job`` show.
    """
    hour, separator, provider = partition_key.partition("|")
    if not separator or not hour or not provider:
        raise ValueError(f"partition key {partition_key!r} is not '<hour>|<provider>'")
    return {PARTITION_TAG: partition_key, f"{DIMENSION_TAG_PREFIX}hour": hour, f"{DIMENSION_TAG_PREFIX}provider": provider}


def _describe(exc: DagsterGraphQLClientError) -> str:
    """A one-line cause: the client's own messages also quote the whole query and its variables."""
    if len(exc.args) >= 2:  # (error type, message) from a GraphQL result
        detail = exc.args[1] if isinstance(exc.args[1], str) else repr(exc.args[1])
        return f"{exc.args[0]}: {_first_line(detail)}"
    text = _first_line(str(exc))
    # gql 4 wraps connection failures itself, so they reach the client's generic branch,
    # whose message says nothing; the cause does (e.g. "Connection refused").
    if (not text or text.startswith("Exception occured")) and exc.__cause__ is not None:
        text = f"{type(exc.__cause__).__name__}: {_first_line(str(exc.__cause__))}"
    return text or type(exc).__name__


def _error_text(error: dict) -> str:
    """A step failure's message, with its cause when the message alone does not say why.

    A step whose retries ran out fails with "Exceeded max_retries of 3"; the provider, window
    and reason are in the cause.
    """
    message = (error.get("message") or "").strip()
    cause = ((error.get("cause") or {}).get("message") or "").strip()
    return f"{message}: {cause}" if cause and cause not in message else message


def _first_line(text: str, limit: int = 400) -> str:
    lines = text.strip().splitlines()
    return lines[0][:limit] if lines else ""


class GraphQLRunner(Runner):
    """Submits partition runs to a Dagster webserver and reads them back over GraphQL."""

    def __init__(
        self,
        url: str,
        *,
        job_name: str = HOURLY_JOB,
        repository_location_name: str | None = None,
        repository_name: str | None = None,
        timeout_s: int = 30,
        run_tags: Callable[[str], Mapping[str, str]] | None = None,
    ) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            # Not echoed: a malformed URL may still carry a password.
            raise ValueError("the Dagster webserver URL must look like http(s)://host[:port][/prefix]")
        # Credentials in the URL are never repeated in a message: show it without them.
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self._client_args = {
            "hostname": parts.hostname,
            "port_number": parts.port,
            "use_https": parts.scheme == "https",
            "timeout": timeout_s,
            "path_prefix": parts.path.rstrip("/"),
        }
        if parts.username:
            from requests.auth import HTTPBasicAuth

            self._client_args["auth"] = HTTPBasicAuth(parts.username, parts.password or "")
        self.job_name = job_name
        self.repository_location_name = repository_location_name
        self.repository_name = repository_name
        self.run_tags = run_tags  # partition key -> extra tags for the run queue
        # gql's sync client connects its transport per call and refuses a second connection
        # while one is open, so JobService's worker and request threads each get their own.
        self._local = threading.local()
        self._origin: tuple[str, str] | None = None
        self._finished: dict[str, tuple[int, int, str | None]] = {}
        self._finished_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options) -> GraphQLRunner:
        """``http://127.0.0.1:3000`` (a path is a prefix, e.g. ``https://host/dagster``)."""
        return cls(url, **options)

    # the client ----------------------------------------------------------------------------
    @property
    def client(self) -> DagsterGraphQLClient:
        client = getattr(self._local, "client", None)
        if client is None:
            try:
                client = DagsterGraphQLClient(**self._client_args)
            except DagsterGraphQLClientError as exc:
                raise RuntimeError(f"Dagster webserver at {self.url}: {_describe(exc)}") from exc
            self._local.client = client
        return client

    def _execute(self, query: str, variables: dict, what: str) -> dict:
        try:
            return self.client._execute(query, variables)
        except DagsterGraphQLClientError as exc:
            raise RuntimeError(f"Dagster webserver at {self.url}: could not {what}: {_describe(exc)}") from exc

    # Runner --------------------------------------------------------------------------------
    def launch(self, *, job_id: str, partition_key: str, priority: str, run_id: str | None = None) -> str:
        # run_id is ignored: the webserver always mints the run id (see the module docstring).
        if priority not in PRIORITIES:
            raise ValueError(f"priority {priority!r}: use one of {', '.join(PRIORITIES)}")
        tags = {JOB_TAG: job_id, PRIORITY_TAG: str(PRIORITIES[priority]), **partition_tags(partition_key)}
        if self.run_tags is not None:
            tags = {**self.run_tags(partition_key), **tags}  # never in place of the job's own tags
        try:
            location, repository = self._job_origin()
            return self.client.submit_job_execution(
                self.job_name, repository_location_name=location, repository_name=repository, tags=tags
            )
        except DagsterGraphQLClientError as exc:
            self._origin = None  # the workspace may have been reloaded: look the job up again next time
            raise RuntimeError(
                f"Dagster webserver at {self.url}: could not launch {self.job_name} for {partition_key}: {_describe(exc)}"
            ) from exc

    def _job_origin(self) -> tuple[str, str]:
        """(code location, repository) offering the job, looked up once.

        The client would look it up on every submission, and refuses a location alone when
        several locations offer a job of that name; here a given location narrows the search.
        """
        if self.repository_location_name and self.repository_name:
            return self.repository_location_name, self.repository_name
        if self._origin is None:
            found = [
                (info.repository_location_name, info.repository_name)
                for info in self.client._get_repo_locations_and_names_with_pipeline(self.job_name)
                if self.repository_location_name in (None, info.repository_location_name)
            ]
            if not found:
                where = f" in code location {self.repository_location_name}" if self.repository_location_name else ""
                raise DagsterGraphQLClientError("JobNotFoundError", f"no job named {self.job_name}{where}")
            if len(found) > 1:
                origins = ", ".join("/".join(origin) for origin in found)
                raise DagsterGraphQLClientError(
                    "AmbiguousJob", f"{len(found)} jobs named {self.job_name} ({origins}): set the code location and repository"
                )
            self._origin = found[0]
        return self._origin

    def runs_for_job(self, job_id: str) -> list[RunInfo]:
        data = self._execute(RUNS_FOR_JOB_QUERY, {"tags": [{"key": JOB_TAG, "value": job_id}]}, f"list the runs of job {job_id}")
        result = data["runsOrError"]
        if result["__typename"] != "Runs":
            raise RuntimeError(f"Dagster webserver at {self.url}: could not list the runs of job {job_id}: {result['__typename']}: {result.get('message', '')}")
        infos = []
        for run in result["results"]:
            tags = {tag["key"]: tag["value"] for tag in run["tags"]}
            records, bytes_, error = self._details(run["runId"], run["status"])
            infos.append(RunInfo(run["runId"], tags.get(PARTITION_TAG, ""), run["status"], records, bytes_, error))
        return sorted(infos, key=lambda info: info.partition)

    def close(self) -> None:
        # Clients hold no connection between calls (gql closes the session after each one).
        with self._finished_lock:
            self._finished.clear()

    # run details ---------------------------------------------------------------------------
    def _details(self, run_id: str, status: str) -> tuple[int, int, str | None]:
        """(records indexed, bytes landed, first error) from the run's event log."""
        with self._finished_lock:
            if run_id in self._finished:
                return self._finished[run_id]
        if status in PENDING:
            return 0, 0, None  # nothing has run yet: spare the event query
        records = bytes_ = 0
        step_error = check_error = run_error = None
        cursor = None
        while True:
            data = self._execute(RUN_EVENTS_QUERY, {"runId": run_id, "cursor": cursor, "limit": EVENT_PAGE}, f"read the events of run {run_id}")
            result = data["runOrError"]
            if result["__typename"] != "Run":
                raise RuntimeError(f"Dagster webserver at {self.url}: could not read run {run_id}: {result['__typename']}: {result.get('message', '')}")
            connection = result["eventConnection"]
            for event in connection["events"]:
                kind = event["__typename"]
                if kind == "MaterializationEvent":
                    values = {entry["label"]: entry.get("intRepr") for entry in event["metadataEntries"]}
                    name = event["assetKey"]["path"][-1]
                    if name == "record_index" and values.get("records") is not None:
                        records += int(values["records"])
                    elif name == "raw_landing" and values.get("bytes") is not None:
                        bytes_ += int(values["bytes"])
                elif kind == "ExecutionStepFailureEvent" and step_error is None and event.get("error"):
                    step_error = _error_text(event["error"])
                elif kind == "AssetCheckEvaluationEvent" and check_error is None:
                    evaluation = event["evaluation"]
                    if not evaluation["success"] and evaluation["severity"] == "ERROR":
                        check_error = f"check {evaluation['checkName']} failed"
                elif kind == "RunFailureEvent" and run_error is None:
                    run_error = event["message"].strip()
            cursor = connection["cursor"]
            if not connection["hasMore"]:
                break
        # As the embedded runner: a step failure first, else a failed ERROR check; a run that
        # failed without either (launcher, code location) still says why.
        error = step_error or check_error or (run_error if status in FAILED else None)
        if status in FAILED and error is None:
            error = f"run {status.lower()}"
        details = (records, bytes_, error)
        if status in SUCCEEDED or status in FAILED:
            with self._finished_lock:
                self._finished[run_id] = details
        return details
