"""The tamper-evident ledger: a signed hash chain of what every partition committed to.

For each provider the vault appends one signed entry per landed partition (and, in later
stages, per promotion decision). A partition entry names the Merkle root over the
partition's record checksums in log order, the record count and every stored object with its
checksum; each entry carries the hash of the one before it, and a separately stored, signed
checkpoint names the newest entry. An auditor holding the public key (or the shared HMAC
secret) can then tell, without trusting the vault, whether a byte, a record, an object, a
catalog entry or a ledger entry was altered, inserted, reordered or removed, including the
newest entries, whose removal only the checkpoint can reveal.

This module is the ledger's one import point and holds no logic of its own: it re-exports
the names of the modules that do the work, one concern each. ``core/ledger_entries.py`` is the
stored form of entries and checkpoints (kinds, canonical JSON, strict parsing);
``core/ledger_signing.py`` signs them and checks signatures; ``core/ledger_append.py`` builds
the next entry of a chain and what it commits to; ``core/ledger_verify.py`` finds everything
wrong with a chain, a partition's records or its objects; ``core/ledger_proofs.py`` hands out
inclusion proofs of single records. Keys and signatures (``VAULT_LEDGER_KEY``,
``$VAULT_HOME/ledger.key``) are in ``core/ledger_keys.py``; their names are re-exported here as
the ledger's key API.
"""

from __future__ import annotations

from vault_pipeline.core.ledger_append import (  # noqa: F401 - re-exported: building the next entry
    PartitionDigest,
    decision_entry,
    digest_document,
    digest_from_document,
    next_position,
    partition_entry,
)
from vault_pipeline.core.ledger_entries import (  # noqa: F401 - re-exported: the stored form
    FORMAT_VERSION,
    GENESIS_HASH,
    KIND_COMPLIANCE_REPORT,
    KIND_CONFIG_SNAPSHOT,
    KIND_KEY_RING_SNAPSHOT,
    KIND_MAINTENANCE_RUN,
    KIND_PARTITION,
    KIND_PROMOTION_DECISION,
    KINDS,
    VAULT_CHAIN,
    VAULT_KINDS,
    Checkpoint,
    LedgerEntry,
    LedgerError,
    canonical_json,
    entry_hash,
    utc_now,
)
from vault_pipeline.core.ledger_keys import (  # noqa: F401 - re-exported: the ledger's key API
    ED25519,
    HMAC_SHA256,
    KEY_ENV,
    KEY_FILE,
    PUBLIC_KEY_FILE,
    Ed25519Signer,
    Ed25519Verifier,
    HmacSigner,
    HmacVerifier,
    LedgerKeyError,
    Signer,
    Verifier,
    load_or_create_ledger_key,
    load_public_verifier,
    signer_from_spec,
)
from vault_pipeline.core.ledger_proofs import record_proof  # noqa: F401 - re-exported: inclusion proofs
from vault_pipeline.core.ledger_signing import (  # noqa: F401 - re-exported: signing and its checks
    make_checkpoint,
    sign_entry,
    verify_checkpoint_signature,
    verify_entry_signature,
)
from vault_pipeline.core.ledger_verify import (  # noqa: F401 - re-exported: verification and its findings
    CHAIN_BROKEN,
    CHECKPOINT_INVALID,
    CHECKPOINT_MISMATCH,
    CHECKPOINT_MISSING,
    ENTRY_DUPLICATED,
    ENTRY_MISPLACED,
    ENTRY_MISSING,
    ENTRY_UNREADABLE,
    FINDING_TYPES,
    LEDGER_TRUNCATED,
    OBJECT_ALTERED,
    OBJECT_MISSING,
    RECORD_ALTERED,
    RECORD_DELETED,
    RECORD_INSERTED,
    RECORDS_REORDERED,
    SIGNATURE_INVALID,
    Finding,
    entries_from_dicts,
    verify_chain,
    verify_partition_digest,
    verify_partition_objects,
    verify_partition_records,
)

# Not the ledger's API: kept importable from here because the ledger's tests reach the Merkle
# leaf conversion as ``ledger.as_leaf``, from when the ledger built its trees in this module.
from vault_pipeline.core.merkle import as_leaf  # noqa: F401
