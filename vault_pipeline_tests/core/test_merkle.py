"""Merkle trees over record checksums: RFC 6962 roots, streaming builder, audit paths."""

from __future__ import annotations

import hashlib
import random

import pytest

from vault_pipeline.core.merkle import (
    EMPTY_ROOT,
    MerkleBuilder,
    as_leaf,
    checksums_from_digests,
    digests_from_checksums,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_inclusion,
)

# Certificate Transparency's reference vectors (RFC 6962 trees over these raw leaves).
CT_LEAVES = [bytes.fromhex(x) for x in
             ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def digests(n: int, salt: str = "r") -> list[bytes]:
    """Distinct record checksums (raw SHA-256 digests), as the vault's leaves are."""
    return [hashlib.sha256(f"{salt}{i}".encode()).digest() for i in range(n)]


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 section 2.1, written recursively straight from the text."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])).digest()


def test_empty_tree_root_is_sha256_of_nothing():
    assert merkle_root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert MerkleBuilder().root() == EMPTY_ROOT


def test_domain_separation():
    leaf = digests(1)[0]
    assert merkle_root([leaf]) == leaf_hash(leaf) == hashlib.sha256(b"\x00" + leaf).digest()
    a, b = digests(2)
    assert merkle_root([a, b]) == node_hash(leaf_hash(a), leaf_hash(b))
    # A two-leaf tree's root is not a one-leaf tree over the concatenated leaf hashes.
    assert merkle_root([a, b]) != merkle_root([leaf_hash(a) + leaf_hash(b)])


@pytest.mark.parametrize("size", range(1, 9))
def test_certificate_transparency_vectors(size):
    assert merkle_root(CT_LEAVES[:size]).hex() == CT_ROOTS[size - 1]


def test_certificate_transparency_inclusion_vector():
    path = inclusion_proof(CT_LEAVES, 0)
    assert [p.hex() for p in path] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]


@pytest.mark.parametrize("size", [*range(0, 71), 127, 128, 129, 1000, 1025])
def test_builder_matches_reference(size):
    leaves = digests(size)
    assert merkle_root(leaves) == reference_root(leaves)


def test_streaming_root_at_every_prefix_and_add_equals_add_many():
    leaves = digests(70)
    one_by_one = MerkleBuilder()
    for i, leaf in enumerate(leaves):
        one_by_one.add(leaf)
        assert one_by_one.count == i + 1
        assert one_by_one.root() == reference_root(leaves[: i + 1])
    batched = MerkleBuilder()
    batched.add_many(leaves[:33])
    batched.add_many(iter(leaves[33:]))
    assert batched.root() == one_by_one.root()


def test_builder_memory_is_logarithmic():
    builder = MerkleBuilder()
    builder.add_many(digests(5000))
    # One stored subtree root per set bit of the count.
    assert len(builder._stack) == bin(5000).count("1")


def test_checksum_strings_and_raw_digests_are_the_same_leaves():
    leaves = digests(10)
    assert merkle_root(["sha256:" + d.hex() for d in leaves]) == merkle_root(leaves)
    assert as_leaf("sha256:" + leaves[0].hex()) == leaves[0]
    for bad in ["sha1:" + "0" * 64, "sha256:" + "0" * 63, "sha256:" + "zz" * 32, "sha256:" + "00 " * 21 + "0"]:
        with pytest.raises(ValueError):
            as_leaf(bad)
    with pytest.raises(TypeError):
        as_leaf(12)


@pytest.mark.parametrize("size", range(1, 71))
def test_every_index_verifies(size):
    leaves = digests(size)
    root = merkle_root(leaves)
    for index in range(size):
        path = inclusion_proof(leaves, index)
        assert len(path) <= max(1, (size - 1).bit_length())
        assert verify_inclusion(leaves[index], index, size, path, root)
        # Hex forms (as a proof travels in JSON) verify too.
        assert verify_inclusion("sha256:" + leaves[index].hex(), index, size, [p.hex() for p in path], root.hex())


@pytest.mark.parametrize("size", range(1, 71))
def test_wrong_leaf_index_path_or_root_fails(size):
    rng = random.Random(size)
    leaves = digests(size)
    root = merkle_root(leaves)
    for index in range(size):
        path = inclusion_proof(leaves, index)
        leaf = leaves[index]
        assert not verify_inclusion(hashlib.sha256(b"other").digest(), index, size, path, root)
        if size > 1:
            assert not verify_inclusion(leaves[(index + 1) % size], index, size, path, root)
            for wrong in {(index + 1) % size, (index - 1) % size, rng.randrange(size)} - {index}:
                assert not verify_inclusion(leaf, wrong, size, path, root)
            position = rng.randrange(len(path))
            tampered = list(path)
            tampered[position] = bytes([tampered[position][0] ^ 1]) + tampered[position][1:]
            assert not verify_inclusion(leaf, index, size, tampered, root)
            assert not verify_inclusion(leaf, index, size, path[:-1], root)
            if len(path) > 1:
                assert not verify_inclusion(leaf, index, size, list(reversed(path)), root)
        assert not verify_inclusion(leaf, index, size, [*path, root], root)
        assert not verify_inclusion(leaf, index, size, path, hashlib.sha256(root).digest())
        assert not verify_inclusion(leaf, index, size, path, EMPTY_ROOT)
        assert not verify_inclusion(leaf, size, size, path, root)
        assert not verify_inclusion(leaf, -1, size, path, root)


def test_malformed_proofs_fail_without_raising():
    leaves = digests(5)
    root = merkle_root(leaves)
    path = inclusion_proof(leaves, 2)
    assert not verify_inclusion(leaves[2], 2, 5, ["not hex", *path[1:]], root)
    assert not verify_inclusion(leaves[2], 2, 5, [b"short", *path[1:]], root)
    assert not verify_inclusion("sha256:nope", 2, 5, path, root)
    assert not verify_inclusion(leaves[2], 2, 0, path, root)
    assert not verify_inclusion(leaves[2], 2, 5, path, "zz")
    assert not verify_inclusion(None, 2, 5, path, root)


def test_inclusion_proof_index_out_of_range():
    with pytest.raises(IndexError):
        inclusion_proof(digests(3), 3)
    with pytest.raises(IndexError):
        inclusion_proof([], 0)


@pytest.mark.parametrize("size", [2, 3, 7, 8, 9, 70])
def test_reordering_two_leaves_changes_the_root(size):
    leaves = digests(size)
    root = merkle_root(leaves)
    for i in range(size):
        for j in range(i + 1, size):
            swapped = list(leaves)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            assert merkle_root(swapped) != root


def test_single_leaf_proof_is_empty():
    leaf = digests(1)[0]
    assert inclusion_proof([leaf], 0) == []
    assert verify_inclusion(leaf, 0, 1, [], merkle_root([leaf]))


# -- trees hashed in parts (vault verify splits a partition between processes) -------------


def _leaves(n: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9, 31, 64, 100, 257])
@pytest.mark.parametrize("unit", [1, 2, 4, 16])
def test_a_tree_hashed_in_aligned_parts_has_the_same_root(n, unit):
    leaves = _leaves(n)
    whole = merkle_root(leaves)
    # Cut at every multiple of `unit`, hash each run in a builder of its own, then combine.
    combined = MerkleBuilder()
    for start in range(0, n, unit):
        part = MerkleBuilder()
        part.add_many(leaves[start : start + unit])
        for size, root in part.subtrees():
            combined.add_subtree(size, root)
    assert combined.root() == whole
    assert combined.count == n


def test_subtrees_describe_the_builder_and_refuse_misaligned_or_odd_parts():
    builder = MerkleBuilder()
    builder.add_many(_leaves(13))
    assert [size for size, _ in builder.subtrees()] == [8, 4, 1]
    assert MerkleBuilder().subtrees() == []
    three = MerkleBuilder()
    three.add_many(_leaves(3))
    with pytest.raises(ValueError, match="not aligned"):
        three.add_subtree(2, EMPTY_ROOT)
    with pytest.raises(ValueError, match="power of two"):
        MerkleBuilder().add_subtree(3, EMPTY_ROOT)
    with pytest.raises(ValueError, match="32-byte"):
        MerkleBuilder().add_subtree(1, b"short")


def test_checksums_convert_to_digests_in_bulk_exactly_as_one_by_one():
    checksums = ["sha256:" + leaf.hex() for leaf in _leaves(50)]
    digests, odd = digests_from_checksums(checksums)
    assert digests == b"".join(as_leaf(c) for c in checksums) and odd == []
    assert digests_from_checksums([]) == (b"", [])
    # Upper-case hex is the same digest, but not the canonical checksum a fresh hash would give.
    shouted = [*checksums[:3], "sha256:" + checksums[3][7:].upper(), *checksums[4:]]
    digests, odd = digests_from_checksums(shouted)
    assert digests == b"".join(as_leaf(c) for c in checksums) and odd == [3]


def test_digests_turn_back_into_the_canonical_checksums_they_came_from():
    checksums = ["sha256:" + leaf.hex() for leaf in _leaves(50)]
    digests, _ = digests_from_checksums(checksums)
    assert checksums_from_digests(digests) == checksums
    assert checksums_from_digests(b"") == []
    with pytest.raises(ValueError, match="multiple of 32"):
        checksums_from_digests(digests[:-1])


@pytest.mark.parametrize("bad", ["sha256:" + "g" * 64, "md5:" + "0" * 67, "sha256:" + "0" * 63, "sha256:" + "é" * 64,
                                 "sha256:" + "0" * 62 + "  "])
def test_an_invalid_checksum_is_refused_in_bulk_as_one_by_one(bad):
    good = "sha256:" + "0" * 64
    with pytest.raises(ValueError):
        as_leaf(bad)
    with pytest.raises(ValueError):
        digests_from_checksums([good, bad, good])


@pytest.mark.parametrize("bad", ["sha256:" + "g" * 64, "garbage", "", None])
def test_an_invalid_checksum_can_be_flagged_instead_of_raising(bad):
    good = "sha256:" + "1" * 64
    digests, odd = digests_from_checksums([good, bad, good], flag_invalid=True)
    assert odd == [1]
    assert digests == as_leaf(good) + bytes(32) + as_leaf(good)
