"""Runs a Great Expectations (1.x) suite on a pandas frame and says which records failed.

The vault uses GX's own ValidationDefinition machinery on an ephemeral context (so running a
check never rewrites the version-controlled project), with result_format COMPLETE keyed by
``log_id``, and turns GX's result into what the asset checks report: pass rate, the
expectations that failed, and for each failing record the reasons.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")  # no phoning home from a vault

import pandas as pd  # noqa: E402
from great_expectations.data_context.types.base import ProgressBarsConfig  # noqa: E402
from great_expectations.execution_engine import pandas_execution_engine as _pandas_engine  # noqa: E402
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration  # noqa: E402

import great_expectations as gx  # noqa: E402

# GX fingerprints every pandas batch it is handed (an MD5 of ``hash_pandas_object`` of the whole
# frame) unless the frame's shallow ``memory_usage()`` reaches HASH_THRESHOLD, which frames of
# string columns never do. The fingerprint only goes into the result's batch markers, which the
# vault never reads, and it was ~36 % of a suite's run over audit records (300k rows in 100k
# frames: 0.89 -> 0.57 s). Every frame skips it, as GX's own largest ones do.
if hasattr(_pandas_engine, "HASH_THRESHOLD"):
    _pandas_engine.HASH_THRESHOLD = 0

ID_COLUMN = "log_id"
_COLUMN_ARGUMENTS = ("column", "column_A", "column_B")


class SuiteError(ValueError):
    """A suite file is missing or not a valid GX suite; the message names the file."""


@dataclass(slots=True)
class ExpectationOutcome:
    type: str
    column: str | None
    success: bool
    unexpected_count: int
    error: str | None = None

    def describe(self) -> str:
        where = f"{self.column}: " if self.column else ""
        return f"{where}{self.type}"


@dataclass(slots=True)
class SuiteOutcome:
    suite: str
    evaluated: int
    expectations: list[ExpectationOutcome]
    failing: dict[str, list[str]] = field(default_factory=dict)  # log_id -> failed expectations

    @property
    def passed_records(self) -> int:
        return self.evaluated - len(self.failing)

    @property
    def pass_rate(self) -> float:
        return 1.0 if self.evaluated == 0 else self.passed_records / self.evaluated

    @property
    def errors(self) -> list[str]:
        return [f"{e.describe()}: {e.error}" for e in self.expectations if e.error]

    def merge(self, other: "SuiteOutcome") -> None:
        """Fold the outcome of another chunk of the same partition into this one."""
        self.evaluated += other.evaluated
        for mine, theirs in zip(self.expectations, other.expectations, strict=True):
            mine.success = mine.success and theirs.success
            mine.unexpected_count += theirs.unexpected_count
            mine.error = mine.error or theirs.error
        for log_id, reasons in other.failing.items():
            self.failing.setdefault(log_id, []).extend(reasons)


def suites_dir() -> Path:
    """``great_expectations/expectations`` of the project (override: VAULT_GX_DIR)."""
    root = os.environ.get("VAULT_GX_DIR")
    if root:
        return Path(root) / "expectations"
    return Path(__file__).resolve().parents[2] / "great_expectations" / "expectations"


def load_suite_document(name: str, directory: Path | None = None) -> dict[str, Any]:
    path = (directory or suites_dir()) / f"{name}.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SuiteError(f"expectation suite {name!r} not found at {path}") from None
    except json.JSONDecodeError as exc:
        raise SuiteError(f"expectation suite {path} is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or not isinstance(document.get("expectations"), list):
        raise SuiteError(f"expectation suite {path} has no 'expectations' list")
    return document


class SuiteRunner:
    """One GX context per process; suites are loaded once and validated many times."""

    _lock = threading.Lock()

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = self._context.data_sources.add_pandas("vault_frames").add_dataframe_asset("records")
        self._batch = asset.add_batch_definition_whole_dataframe("partition")
        self._definitions: dict[str, Any] = {}

    def columns(self, name: str) -> frozenset[str] | None:
        """The columns the suite's expectations name, with ``log_id`` (it keys the failing
        records): a frame of only these validates as the whole rows would. None when an
        expectation names no column (a table-level one, e.g. on the set of columns) or has a
        row_condition (its expression may name any column): those need the whole rows."""
        named = {ID_COLUMN}
        for entry in load_suite_document(name, self.directory)["expectations"]:
            kwargs = entry.get("kwargs") or {}
            columns = [kwargs[key] for key in _COLUMN_ARGUMENTS if isinstance(kwargs.get(key), str)]
            columns += [column for column in kwargs.get("column_list") or [] if isinstance(column, str)]
            if not columns or kwargs.get("row_condition"):  # a condition may name any column
                return None
            named.update(columns)
        return frozenset(named)

    def _definition(self, name: str):
        if name not in self._definitions:
            document = load_suite_document(name, self.directory)
            suite = gx.ExpectationSuite(name=name, meta=document.get("meta") or {})
            for index, entry in enumerate(document["expectations"]):
                try:
                    suite.add_expectation_configuration(
                        ExpectationConfiguration(type=entry["type"], kwargs=entry.get("kwargs", {}), meta=entry.get("meta"))
                    )
                except Exception as exc:  # GX raises several types for a bad entry
                    path = (self.directory or suites_dir()) / f"{name}.json"
                    raise SuiteError(f"expectation suite {path}, expectation #{index}: {exc}") from None
            suite = self._context.suites.add(suite)
            self._definitions[name] = self._context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{name}.validation", data=self._batch, suite=suite)
            )
        return self._definitions[name]

    def run(self, name: str, frame: pd.DataFrame) -> SuiteOutcome:
        with self._lock:  # a GX context is not thread-safe
            definition = self._definition(name)
            result = definition.run(
                batch_parameters={"dataframe": frame},
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ID_COLUMN]},
            )
        outcome = SuiteOutcome(suite=name, evaluated=len(frame), expectations=[])
        for item in result.results:
            config = item.expectation_config
            details = item.result or {}
            error = None
            if item.exception_info and item.exception_info.get("raised_exception"):
                error = item.exception_info.get("exception_message")
            else:
                for info in (item.exception_info or {}).values():
                    if isinstance(info, dict) and info.get("raised_exception"):
                        error = info.get("exception_message")
            expectation = ExpectationOutcome(
                type=config.type,
                column=config.kwargs.get("column") or _pair(config.kwargs),
                success=bool(item.success) and error is None,
                unexpected_count=int(details.get("unexpected_count") or 0),
                error=error,
            )
            outcome.expectations.append(expectation)
            for index_entry in details.get("unexpected_index_list") or []:
                log_id = index_entry.get(ID_COLUMN) if isinstance(index_entry, dict) else None
                if log_id is not None:
                    outcome.failing.setdefault(str(log_id), []).append(expectation.describe())
        return outcome


def _pair(kwargs: dict) -> str | None:
    """The columns a column-pair expectation compares, as ``A>=B``-style text for its description."""
    if "column_A" in kwargs and "column_B" in kwargs:
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    return None
