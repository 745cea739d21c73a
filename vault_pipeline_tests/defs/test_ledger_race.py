"""Writers racing for one provider's ledger chain: every append succeeds, the chain never forks.

The graph's runs and API promotions append to the same chain from different processes; the
loser of a sequence used to fail with LedgerConflictError. Two real processes (spawned, on a
shared local object store and SQLite catalog) now append many entries at once, part of them in
lockstep so that they certainly collide, and ``vault verify`` finds nothing afterwards. The
unit tests inject the races one at a time: a sequence lost to another writer, a loser that
never gets through, a stray object of an interrupted write, a writer killed between its row
and its object, and an entry appended between reading the checkpoint and the head.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from dataclasses import replace
from pathlib import Path

import pytest

from vault_pipeline.core.ledger import (
    GENESIS_HASH,
    KIND_PROMOTION_DECISION,
    Checkpoint,
    LedgerEntry,
    load_or_create_ledger_key,
    sign_entry,
    utc_now,
    verify_chain,
)
from vault_pipeline.defs.integrity import ledger_stage
from vault_pipeline.defs.integrity.ledger_stage import (
    APPEND_ATTEMPTS,
    BACKOFF_BASE_S,
    LedgerAppendError,
    append_entry,
    checkpoint_key,
    entry_key,
    stored_checkpoint,
)
from vault_pipeline.defs.integrity.verification import verify_vault
from vault_pipeline.storage.catalog import LedgerConflictError
from vault_pipeline.storage.local_store import LocalObjectStore
from vault_pipeline.storage.sqlite_catalog import SqliteCatalog

PROVIDER = "racer"
PER_WRITER = 60
LOCKSTEP = 20  # appends each writer starts at a barrier with the other: they read the same head


def _draft(writer: str, n: int) -> LedgerEntry:
    return LedgerEntry(provider=PROVIDER, partition=f"2026-01-01-{n % 24:02d}:00|{PROVIDER}", sequence=1,
                       previous_hash=GENESIS_HASH, created_at=utc_now(), run_id=f"{writer}-{n}",
                       kind=KIND_PROMOTION_DECISION, body={"writer": writer, "n": n})


class _CountingCatalog(SqliteCatalog):
    """The embedded catalog, counting the sequences this writer lost to the other."""

    conflicts = 0

    def append_ledger_entry(self, provider, sequence, partition, entry_json):
        try:
            super().append_ledger_entry(provider, sequence, partition, entry_json)
        except LedgerConflictError:
            self.conflicts += 1
            raise


def _writer(home: str, name: str, barrier, results) -> None:
    """One process's appends (runs in a spawned child): reports what it wrote, or its error."""
    store, catalog = LocalObjectStore(Path(home) / "objects"), _CountingCatalog(Path(home) / "catalog.db")
    signer = load_or_create_ledger_key(Path(home))
    written: list[tuple[int, str, int]] = []
    try:
        for n in range(PER_WRITER):
            if n < LOCKSTEP:
                barrier.wait(timeout=120)
            entry = append_entry(store=store, catalog=catalog, signer=signer, draft=_draft(name, n))
            written.append((entry.sequence, entry.entry_hash, n))
        results.put((name, written, catalog.conflicts, None))
    except BaseException as exc:  # noqa: BLE001 - the parent reports it
        results.put((name, written, catalog.conflicts, f"{type(exc).__name__}: {exc}"))
    finally:
        catalog.close()


def _ledger_objects(store) -> set[str]:
    return set(store.list(f"ledger/{PROVIDER}/"))


def test_two_processes_appending_to_one_chain_at_once_all_succeed_and_the_chain_never_forks(tmp_path):
    home = tmp_path / "vault"
    home.mkdir()
    signer = load_or_create_ledger_key(home)  # one key, created before both read it
    SqliteCatalog(home / "catalog.db").close()  # the schema too
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(2), context.Queue()
    writers = [context.Process(target=_writer, args=(str(home), name, barrier, results), name=f"ledger-{name}")
               for name in ("graph", "api")]
    for writer in writers:
        writer.start()
    try:
        outcomes = {}
        for _ in writers:
            name, written, conflicts, error = results.get(timeout=600)
            outcomes[name] = (written, conflicts, error)
    finally:
        for writer in writers:
            writer.join(timeout=60)
            if writer.is_alive():
                os.kill(writer.pid, signal.SIGKILL)
                writer.join()
    assert {name: error for name, (_, _, error) in outcomes.items()} == {"graph": None, "api": None}
    assert all(len(written) == PER_WRITER for written, _, _ in outcomes.values())  # every append succeeded
    assert sum(conflicts for _, conflicts, _ in outcomes.values()) > 0  # and they did race

    store, catalog = LocalObjectStore(home / "objects"), SqliteCatalog(home / "catalog.db")
    rows = list(catalog.ledger_entries(PROVIDER))
    entries = [LedgerEntry.from_json(text) for _, text in rows]
    assert [entry.sequence for entry in entries] == list(range(1, 2 * PER_WRITER + 1))
    assert verify_chain(entries, stored_checkpoint(store, catalog, PROVIDER), signer.verifier()) == []
    report = verify_vault(store=store, catalog=catalog, verifier=signer.verifier(), providers=[PROVIDER])
    assert report.findings == [] and report.entries >= 1, [f.to_dict() for f in report.findings]
    # Each writer got back the entry that is in the chain under its sequence, and no other.
    for name, (written, _, _) in outcomes.items():
        for sequence, digest, n in written:
            entry = entries[sequence - 1]
            assert (entry.entry_hash, entry.body) == (digest, {"writer": name, "n": n})
    # One immutable object per row, holding that row's bytes; nothing a loser wrote.
    assert _ledger_objects(store) == {entry_key(PROVIDER, s) for s, _ in rows} | {checkpoint_key(PROVIDER)}
    assert all(store.get(entry_key(PROVIDER, s)) == text.encode() for s, text in rows)
    # The checkpoint ended on the head, in both of its copies.
    assert stored_checkpoint(store, catalog, PROVIDER).sequence == 2 * PER_WRITER
    assert catalog.get_checkpoint(PROVIDER) == store.get(checkpoint_key(PROVIDER)).decode()
    catalog.close()


# -- the races one at a time, on each catalog backend --------------------------------------


@pytest.fixture
def chain(tmp_path, catalog):
    """A store, the catalog under test and a signer, with one entry already in the chain."""
    store, signer = LocalObjectStore(tmp_path / "objects"), load_or_create_ledger_key(tmp_path)
    append_entry(store=store, catalog=catalog, signer=signer, draft=_draft("setup", 0))
    return store, catalog, signer


def _clean(store, catalog, signer) -> None:
    entries = [LedgerEntry.from_json(text) for _, text in catalog.ledger_entries(PROVIDER)]
    assert verify_chain(entries, stored_checkpoint(store, catalog, PROVIDER), signer.verifier()) == []
    report = verify_vault(store=store, catalog=catalog, verifier=signer.verifier(), providers=[PROVIDER])
    assert report.findings == [] and report.entries >= 1, [f.to_dict() for f in report.findings]


def test_a_writer_that_loses_its_sequence_re_signs_at_the_next_one(chain, monkeypatch):
    store, catalog, signer = chain
    append = catalog.append_ledger_entry
    rival: list[LedgerEntry] = []

    def raced(provider, sequence, partition, entry_json):
        if '"writer":"ours"' in entry_json and not rival:  # another writer takes this very sequence
            rival.append(append_entry(store=store, catalog=catalog, signer=signer, draft=_draft("rival", 0)))
        append(provider, sequence, partition, entry_json)

    monkeypatch.setattr(catalog, "append_ledger_entry", raced)
    sleeps: list[float] = []
    ours = append_entry(store=store, catalog=catalog, signer=signer, draft=_draft("ours", 0), sleep=sleeps.append)
    assert rival[0].sequence == 2
    assert (ours.sequence, ours.previous_hash) == (3, rival[0].entry_hash)
    assert len(sleeps) == 1 and 0 <= sleeps[0] <= BACKOFF_BASE_S  # backed off once, with jitter
    assert store.get(entry_key(PROVIDER, 2)) == rival[0].to_json().encode()  # the winner's, untouched
    assert _ledger_objects(store) == {entry_key(PROVIDER, s) for s in (1, 2, 3)} | {checkpoint_key(PROVIDER)}
    assert stored_checkpoint(store, catalog, PROVIDER).sequence == 3
    _clean(store, catalog, signer)


def test_a_writer_that_keeps_losing_stops_with_a_clear_error_and_writes_nothing(chain, monkeypatch):
    store, catalog, signer = chain
    before = _ledger_objects(store)

    def taken(provider, sequence, partition, entry_json):
        raise LedgerConflictError(f"ledger entry {provider} #{sequence} already exists")

    monkeypatch.setattr(catalog, "append_ledger_entry", taken)
    sleeps: list[float] = []
    with pytest.raises(LedgerAppendError, match=rf"other writers took the next sequence {APPEND_ATTEMPTS} times"):
        append_entry(store=store, catalog=catalog, signer=signer, draft=_draft("ours", 0), sleep=sleeps.append)
    assert len(sleeps) == APPEND_ATTEMPTS - 1
    assert all(0 <= pause <= BACKOFF_BASE_S * 2 ** n for n, pause in enumerate(sleeps))  # exponential caps
    assert _ledger_objects(store) == before and len(list(catalog.ledger_entries(PROVIDER))) == 1
    assert issubclass(LedgerAppendError, LedgerConflictError)  # callers that caught the old error still do


def test_a_stray_object_without_a_catalog_entry_is_never_overwritten_and_is_named(chain):
    store, catalog, signer = chain
    stray = b'{"left": "by a writer of an earlier version that died between object and row"}'
    store.put(entry_key(PROVIDER, 2), stray)
    with pytest.raises(LedgerAppendError, match=r"ledger/racer/000000000002\.json exists but the catalog has no entry #2"):
        append_entry(store=store, catalog=catalog, signer=signer, draft=_draft("ours", 0), sleep=lambda _s: None)
    assert store.get(entry_key(PROVIDER, 2)) == stray
    assert [sequence for sequence, _ in catalog.ledger_entries(PROVIDER)] == [1]


def test_a_writer_killed_between_its_row_and_its_object_is_finished_by_the_next_append(chain):
    store, catalog, signer = chain
    head = LedgerEntry.from_json(list(catalog.ledger_entries(PROVIDER))[-1][1])
    orphan = sign_entry(replace(_draft("killed", 0), sequence=2, previous_hash=head.entry_hash), signer)
    catalog.append_ledger_entry(PROVIDER, 2, orphan.partition, orphan.to_json())  # ... and then -9
    assert not store.exists(entry_key(PROVIDER, 2))
    ours = append_entry(store=store, catalog=catalog, signer=signer, draft=_draft("ours", 0))
    assert (ours.sequence, ours.previous_hash) == (3, orphan.entry_hash)
    assert store.get(entry_key(PROVIDER, 2)) == orphan.to_json().encode()
    _clean(store, catalog, signer)


def test_an_entry_appended_between_reading_the_checkpoint_and_the_head_is_not_taken_for_truncation(chain,
                                                                                                  monkeypatch):
    store, catalog, signer = chain
    read = catalog.ledger_entries
    rival: list[LedgerEntry] = []

    def then_another_writer(provider, *, since_sequence=0):
        rows = list(read(provider, since_sequence=since_sequence))
        if not rival:  # right after this read, another writer appends and moves the checkpoint
            monkeypatch.setattr(catalog, "ledger_entries", read)
            rival.append(append_entry(store=store, catalog=catalog, signer=signer, draft=_draft("rival", 0)))
        return iter(rows)

    monkeypatch.setattr(catalog, "ledger_entries", then_another_writer)
    ours = append_entry(store=store, catalog=catalog, signer=signer, draft=_draft("ours", 0), sleep=lambda _s: None)
    assert (rival[0].sequence, ours.sequence) == (2, 3)
    _clean(store, catalog, signer)


def test_the_checkpoint_never_moves_back_when_a_slower_writer_finishes_last(chain, monkeypatch):
    store, catalog, signer = chain
    advance = ledger_stage._advance_checkpoint
    rival: list[LedgerEntry] = []

    def slow(store_, catalog_, signer_, entry):
        if entry.body["writer"] == "ours":  # ours has its row; before it moves the checkpoint, another
            rival.append(append_entry(store=store, catalog=catalog, signer=signer, draft=_draft("rival", 0)))
        advance(store_, catalog_, signer_, entry)  # writer appends and finishes

    monkeypatch.setattr(ledger_stage, "_advance_checkpoint", slow)
    ours = append_entry(store=store, catalog=catalog, signer=signer, draft=_draft("ours", 0))
    assert (ours.sequence, rival[0].sequence) == (2, 3)
    assert stored_checkpoint(store, catalog, PROVIDER).sequence == 3
    assert Checkpoint.from_json(catalog.get_checkpoint(PROVIDER)).sequence == 3
    _clean(store, catalog, signer)
