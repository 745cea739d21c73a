"""The key set a lake load checks each batch against: exact membership, first-copy semantics."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from vault_pipeline.core.key_set import KeySet


def keys(*values: str) -> pa.Array:
    return pa.array(list(values), pa.string())


def test_keys_that_differ_only_by_trailing_nul_bytes_or_length_stay_apart():
    held = KeySet(keys("a", "a\x00", "ab", "log_0123"))
    assert len(held) == 4
    assert held.contains(keys("a", "a\x00", "a\x00\x00", "ab", "abc", "log_0123", "log_01234", "", "é")).to_pylist() == [
        True, True, False, True, False, True, False, False, False]


def test_a_longer_key_added_later_widens_the_set_without_false_matches():
    held = KeySet(keys("short", "log_aaaa"))
    held.add_new(keys("a key much longer than every other key", "é"))
    assert held.contains(keys("a key much longer than every other key", "a key much longer than every other ke",
                              "short", "shor", "é")).to_pylist() == [True, False, True, False, True]


def test_add_new_marks_only_the_first_copy_of_a_key_new():
    held = KeySet(keys("b"))
    assert held.add_new(keys("a", "b", "a", "c", "c")).to_pylist() == [True, False, False, True, False]
    assert held.add_new(keys("c", "d")).to_pylist() == [False, True]
    assert len(held) == 4


def test_an_empty_set_holds_nothing_and_empty_batches_are_harmless():
    held = KeySet()
    assert len(held) == 0
    assert held.contains(keys("x")).to_pylist() == [False]
    assert held.add_new(keys()).to_pylist() == []
    assert held.contains(pa.chunked_array([keys("x"), keys()])).to_pylist() == [False]


def test_null_keys_are_refused():
    with pytest.raises(ValueError, match="null keys"):
        KeySet(pa.array(["a", None], pa.string()))


def test_sliced_arrays_are_read_from_their_own_offset():
    whole = keys("zero", "one", "two", "three")
    held = KeySet(whole.slice(2, 2))
    assert held.contains(whole).to_pylist() == [False, False, True, True]


@pytest.mark.parametrize("seed", range(5))
def test_a_stream_of_batches_agrees_with_a_python_set(seed):
    rng = random.Random(seed)
    held, reference = KeySet(), set()
    for _ in range(150):
        batch = [rng.choice([f"k{rng.randint(0, 2000)}", "x" * rng.randint(0, 4) + chr(rng.randint(0, 2)),
                             f"log_{rng.getrandbits(32):08x}"]) for _ in range(rng.randint(0, 80))]
        assert held.contains(keys(*batch)).to_pylist() == [key in reference for key in batch]
        expected, seen = [], set()
        for key in batch:
            expected.append(key not in reference and key not in seen)
            seen.add(key)
        assert held.add_new(keys(*batch)).to_pylist() == expected
        reference |= seen
        assert len(held) == len(reference)
