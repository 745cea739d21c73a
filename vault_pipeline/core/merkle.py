"""Merkle trees over a partition's records: one signed root proves every record of the hour.

The ledger commits to each partition by the root of a Merkle tree whose leaves are the
records' SHA-256 checksums in log order. Because the tree follows RFC 6962 (Certificate
Transparency) with domain separation between leaves and inner nodes, anyone holding one
record, its position, the partition's record count, a short audit path (about log2(n)
hashes) and the signed root can check that the record belongs to the partition, unchanged
and at that position, with a few lines of standard Python and without trusting the vault;
see :func:`verify_proof`, which is written to be copied out of the vault as-is.
"""

from __future__ import annotations

import binascii
import hashlib
from collections.abc import Iterable, Sequence

import numpy as np

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
#: RFC 6962: the hash of an empty tree is the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

# Copying a pre-seeded hash object is about twice as fast as ``hashlib.sha256(prefix + data)``
# (the constructor's setup dominates for 33/65-byte inputs), which matters at millions of leaves.
_LEAF_SEED = hashlib.sha256(LEAF_PREFIX)
_NODE_SEED = hashlib.sha256(NODE_PREFIX)

_CHECKSUM_PREFIX = "sha256:"
_PREFIX_BYTES = np.frombuffer(_CHECKSUM_PREFIX.encode(), dtype=np.uint8)


def as_leaf(value: bytes | bytearray | memoryview | str) -> bytes:
    """A leaf value as raw bytes: a vault checksum ``sha256:<hex>`` becomes its 32-byte digest."""
    if isinstance(value, str):
        if not value.startswith(_CHECKSUM_PREFIX) or len(value) != 71:
            raise ValueError(f"not a vault checksum (expected 'sha256:<64 hex>'): {value[:80]!r}")
        digest = bytes.fromhex(value[7:])
        if len(digest) != 32:  # fromhex skips spaces, so 64 characters are not always 32 bytes
            raise ValueError(f"not a vault checksum (expected 'sha256:<64 hex>'): {value[:80]!r}")
        return digest
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a Merkle leaf is bytes or a 'sha256:<hex>' checksum, not {type(value).__name__}")


def leaf_hash(leaf: bytes | str) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || leaf)."""
    h = _LEAF_SEED.copy()
    h.update(as_leaf(leaf) if type(leaf) is not bytes else leaf)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 inner node hash: SHA-256(0x01 || left || right)."""
    h = _NODE_SEED.copy()
    h.update(left)
    h.update(right)
    return h.digest()


class MerkleBuilder:
    """Streaming RFC 6962 root: add leaves in order, ask for the root at any time.

    Memory is O(log n): the builder keeps only the roots of the perfect subtrees that the
    leaves so far decompose into (one per set bit of the count), so a million-record
    partition can be hashed while its checksums stream out of the catalog.
    """

    __slots__ = ("_stack", "_count")

    def __init__(self) -> None:
        self._stack: list[bytes] = []
        self._count = 0

    @property
    def count(self) -> int:
        return self._count

    def add(self, leaf: bytes | str) -> None:
        self.add_many((leaf,))

    def add_many(self, leaves: Iterable[bytes | str]) -> None:
        # One loop for every leaf: a method call per leaf would be a third of the cost.
        stack = self._stack
        count = self._count
        leaf_seed = _LEAF_SEED
        node_seed = _NODE_SEED
        for leaf in leaves:
            if type(leaf) is not bytes:
                leaf = as_leaf(leaf)
            h = leaf_seed.copy()
            h.update(leaf)
            digest = h.digest()
            n = count
            while n & 1:
                h = node_seed.copy()
                h.update(stack.pop())
                h.update(digest)
                digest = h.digest()
                n >>= 1
            stack.append(digest)
            count += 1
        self._count = count

    def add_subtree(self, size: int, root: bytes) -> None:
        """Append ``size`` leaves at once by the root of their perfect subtree, computed elsewhere.

        This is how a tree hashed in parts (by several processes) is put together: the result
        is bit-identical to adding the leaves one by one, provided ``size`` is a power of two
        and the leaves added so far fill whole subtrees of that size (the subtree is aligned).
        """
        if size < 1 or size & (size - 1):
            raise ValueError(f"a perfect subtree holds a power of two leaves, not {size}")
        if self._count % size:
            raise ValueError(f"a subtree of {size} leaves cannot start at leaf {self._count}: not aligned")
        if len(root) != 32:
            raise ValueError("a subtree root is a 32-byte SHA-256 digest")
        stack = self._stack
        digest = bytes(root)
        # Same merge as add(), one level up per trailing 1-bit above the subtree's height.
        n = self._count // size
        while n & 1:
            digest = node_hash(stack.pop(), digest)
            n >>= 1
        stack.append(digest)
        self._count += size

    def subtrees(self) -> list[tuple[int, bytes]]:
        """The perfect subtrees the leaves so far decompose into, left to right, as (size, root):
        what :meth:`add_subtree` takes to continue this tree in another builder."""
        sizes = [1 << bit for bit in reversed(range(self._count.bit_length())) if self._count >> bit & 1]
        return list(zip(sizes, self._stack, strict=True))

    def root(self) -> bytes:
        """The root of the leaves added so far (RFC 6962 MTH); does not end the stream."""
        if not self._stack:
            return EMPTY_ROOT
        # RFC 6962 splits at the largest power of two below n, so the tree is the perfect
        # subtrees from left to right, folded from the right.
        digest = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            digest = node_hash(left, digest)
        return digest

    def root_hex(self) -> str:
        return self.root().hex()


def digests_from_checksums(checksums: Sequence[str], *, flag_invalid: bool = False) -> tuple[bytes, list[int]]:
    """Vault checksums ``sha256:<hex>`` as their 32-byte digests, concatenated, in one pass.

    Returns the digests and the positions of checksums that are valid but not in canonical
    form (``sha256:`` + 64 lowercase hex), which a byte-for-byte comparison with a freshly
    computed checksum would reject. Invalid checksums raise ValueError exactly as
    :func:`as_leaf` does, unless ``flag_invalid``: then they are listed with the odd ones and
    stand in as 32 zero bytes (no record hashes to that), so a verifier reports the record
    instead of stopping. Converting a page at once costs a few per cent of converting each.
    """
    count = len(checksums)
    try:
        if count and set(map(len, checksums)) == {71}:
            text = "".join(checksums).encode("ascii")
            table = np.frombuffer(text, dtype=np.uint8).reshape(count, 71)
            if (table[:, :7] == _PREFIX_BYTES).all():
                hex_part = table[:, 7:].tobytes()
                digests = binascii.unhexlify(hex_part)
                # The round trip proves every piece was 64 lowercase hex: canonical throughout.
                if binascii.hexlify(digests) == hex_part:
                    return digests, []
    except (TypeError, ValueError):  # not all strings, not ASCII, not hex: sorted out below
        pass
    # Slow path: some checksum is odd (upper case, or invalid: as_leaf raises as it always did).
    parts: list[bytes] = []
    odd: list[int] = []
    for position, value in enumerate(checksums):
        try:
            leaf = as_leaf(value)
            if len(leaf) != 32:
                raise ValueError(f"a record checksum is a 32-byte SHA-256 digest, not {len(leaf)} bytes")
        except (TypeError, ValueError):
            if not flag_invalid:
                raise
            odd.append(position)
            parts.append(bytes(32))
            continue
        if not (isinstance(value, str) and value == _CHECKSUM_PREFIX + leaf.hex()):
            odd.append(position)
        parts.append(leaf)
    return b"".join(parts), odd


def checksums_from_digests(digests: bytes) -> list[str]:
    """The inverse of :func:`digests_from_checksums`: concatenated 32-byte digests back as
    canonical vault checksums (``sha256:`` + 64 lowercase hex), in order."""
    if len(digests) % 32:
        raise ValueError(f"concatenated SHA-256 digests are a multiple of 32 bytes long, not {len(digests)}")
    text = binascii.hexlify(digests).decode("ascii")
    return [_CHECKSUM_PREFIX + text[start : start + 64] for start in range(0, len(text), 64)]


def merkle_root(leaves: Iterable[bytes | str]) -> bytes:
    """RFC 6962 Merkle tree hash of ``leaves`` (raw digests or ``sha256:`` checksums) in order."""
    builder = MerkleBuilder()
    builder.add_many(leaves)
    return builder.root()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2): RFC 6962's split point."""
    return 1 << ((n - 1).bit_length() - 1)


def _range_root(leaves: Sequence[bytes | str], lo: int, hi: int) -> bytes:
    builder = MerkleBuilder()
    builder.add_many(leaves[i] for i in range(lo, hi))
    return builder.root()


def inclusion_proof(leaves: Sequence[bytes | str], index: int) -> list[bytes]:
    """RFC 6962 audit path for leaf ``index``: sibling subtree hashes from the leaf up to the root.

    Costs one pass of hashing over the leaves and O(log n) extra memory.
    """
    size = len(leaves)
    if not 0 <= index < size:
        raise IndexError(f"leaf index {index} outside a tree of {size} leaves")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            path.append(_range_root(leaves, mid, hi))
            hi = mid
        else:
            path.append(_range_root(leaves, lo, mid))
            lo = mid
    path.reverse()
    return path


def _as_digest(value: bytes | str) -> bytes:
    if isinstance(value, str):
        return bytes.fromhex(value)
    return bytes(value)


def root_from_path(leaf_digest: bytes, index: int, tree_size: int, path: Sequence[bytes]) -> bytes | None:
    """The root implied by a leaf hash and its audit path (RFC 9162 2.1.3.2), or None if inconsistent."""
    if not 0 <= index < tree_size:
        return None
    fn, sn, digest = index, tree_size - 1, leaf_digest
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            digest = node_hash(sibling, digest)
            # A right-edge node without a sibling at this level: climb until it has one.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            digest = node_hash(digest, sibling)
        fn >>= 1
        sn >>= 1
    return digest if sn == 0 else None


def verify_inclusion(
    leaf_checksum: bytes | str,
    index: int,
    tree_size: int,
    path: Sequence[bytes | str],
    root: bytes | str,
) -> bool:
    """True when the leaf (a record checksum) sits at ``index`` of the tree of ``tree_size`` with ``root``.

    Malformed input (bad hex, wrong types) is a failed proof, never an exception.
    """
    try:
        leaf = leaf_hash(as_leaf(leaf_checksum))
        siblings = [_as_digest(p) for p in path]
        if any(len(s) != 32 for s in siblings):
            return False
        computed = root_from_path(leaf, int(index), int(tree_size), siblings)
        return computed is not None and computed == _as_digest(root)
    except (TypeError, ValueError):
        return False


def verify_proof(
    record: bytes,
    proof: dict,
    *,
    public_key_pem: bytes | None = None,
    hmac_secret: bytes | None = None,
) -> bool:
    """Verify one record against the vault's signed ledger, trusting nothing the vault says.

    Self-contained on purpose (hashlib, hmac, json, base64, and ``cryptography`` for Ed25519):
    an auditor can copy this function alone. ``proof`` is the JSON the vault hands out::

        {"leaf_index": 41, "tree_size": 1000, "audit_path": ["<hex>", ...],
         "entry": {...the signed ledger entry: "merkle_root", "signature", "algorithm", ...}}

    ``public_key_pem`` is ``$VAULT_HOME/ledger.pub`` (Ed25519); ``hmac_secret`` the shared
    secret when the vault signs with HMAC-SHA256. The three steps:

    1. leaf = SHA-256(0x00 || SHA-256(record)); fold the audit path (node = SHA-256(0x01 || l || r))
       into a root, using the leaf index and tree size to know the side of each sibling;
    2. that root must equal the entry's ``merkle_root`` and the tree size its ``record_count``;
    3. the entry's signature must verify over its canonical JSON without ``signature``
       (sorted keys, no whitespace, UTF-8).
    """
    import base64
    import hashlib
    import hmac
    import json

    def h(*parts: bytes) -> bytes:
        return hashlib.sha256(b"".join(parts)).digest()

    try:
        entry = proof["entry"]
        fn, sn = int(proof["leaf_index"]), int(proof["tree_size"]) - 1
        if not 0 <= fn <= sn or sn + 1 != int(entry["record_count"]):
            return False
        r = h(b"\x00", hashlib.sha256(record).digest())
        for sibling in (bytes.fromhex(p) for p in proof["audit_path"]):
            if sn == 0:
                return False
            if fn & 1 or fn == sn:
                r = h(b"\x01", sibling, r)
                while not fn & 1 and fn != 0:
                    fn, sn = fn >> 1, sn >> 1
            else:
                r = h(b"\x01", r, sibling)
            fn, sn = fn >> 1, sn >> 1
        if sn != 0 or r.hex() != entry["merkle_root"]:
            return False

        unsigned = {k: v for k, v in entry.items() if k != "signature"}
        message = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        signature = base64.b64decode(entry["signature"], validate=True)
        if entry["algorithm"] == "hmac-sha256" and hmac_secret is not None:
            return hmac.compare_digest(hmac.new(hmac_secret, message, hashlib.sha256).digest(), signature)
        if entry["algorithm"] == "ed25519" and public_key_pem is not None:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.serialization import load_pem_public_key

            try:
                load_pem_public_key(public_key_pem).verify(signature, message)
                return True
            except InvalidSignature:
                return False
        return False
    except (KeyError, TypeError, ValueError):
        return False
