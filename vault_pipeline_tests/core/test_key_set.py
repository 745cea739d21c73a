"""The key sets a lake load and the integrity diff check batches against: exact membership, first-copy semantics."""

from __future__ import annotations

import random

import numpy as np
import pyarrow as pa
import pytest

from vault_pipeline.core.key_set import KeySet, SortedKeys, buckets_of, count_repeats_in, first_copies


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


def test_sorted_keys_keep_each_distinct_key_once_at_its_first_copy():
    keys = SortedKeys(pa.array(["b", "a", "b", "c", "a"]))
    assert len(keys) == 3
    found, slot = keys.locate(pa.array(["a", "b", "c"]))
    assert found.tolist() == [True, True, True]
    assert keys.positions[slot].tolist() == [1, 0, 3]


def test_sorted_keys_find_no_key_they_do_not_hold_whatever_its_width():
    keys = SortedKeys(pa.array(["log_a", "log_c", "log_b\x00"]))
    found, slot = keys.locate(pa.array(["log_b", "log_b\x00", "log_cc", "", "log_", "zz" * 20, "log_a"]))
    assert found.tolist() == [False, True, False, False, False, False, True]
    assert keys.positions[slot[found]].tolist() == [2, 0]


def test_empty_sorted_keys_and_empty_probes_find_nothing():
    assert SortedKeys(pa.array([], pa.string())).locate(pa.array(["a"]))[0].tolist() == [False]
    assert SortedKeys(pa.array(["a"])).locate(pa.array([], pa.string()))[0].tolist() == []


@pytest.mark.parametrize("seed", [3, 4])
def test_sorted_keys_agree_with_a_python_dict_of_first_positions(seed):
    rng = random.Random(seed)
    landed = [f"log_{rng.randrange(2000):05x}" for _ in range(3000)]
    first = {}
    for position, key in enumerate(landed):
        first.setdefault(key, position)
    keys = SortedKeys(pa.chunked_array([landed[:1000], landed[1000:]]))
    probe = [f"log_{rng.randrange(4000):05x}" for _ in range(2000)]
    found, slot = keys.locate(pa.array(probe))
    assert len(keys) == len(first)
    assert found.tolist() == [key in first for key in probe]
    assert keys.positions[slot[found]].tolist() == [first[key] for key in probe if key in first]


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_lookups_by_first_bytes_agree_with_a_python_dict_for_short_long_and_nul_keys(seed):
    # Keys shorter than the eight-byte prefix, keys sharing it, keys with NUL bytes in and at the end.
    rng = random.Random(seed)
    alphabet = ["a", "b", "\x00", "é"]

    def key() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 13)))

    landed = [key() for _ in range(2000)]
    first = {}
    for position, value in enumerate(landed):
        first.setdefault(value, position)
    keys = SortedKeys(pa.array(landed, pa.string()))
    probe = [key() for _ in range(3000)]
    found, slot = keys.locate(pa.array(probe, pa.string()))
    assert found.tolist() == [value in first for value in probe]
    assert keys.positions[slot[found]].tolist() == [first[value] for value in probe if value in first]
    assert 0 < sum(found) < len(probe)


def _log_ids(rng: random.Random, count: int) -> list[str]:
    # The vault's own form; a few ending in zero bytes once packed (numpy drops trailing NULs).
    ids = [f"log_{rng.getrandbits(128):032x}" for _ in range(count)]
    return ids + ["log_" + "ab" * 15 + "00", "log_" + "ab" * 14 + "0000", "log_" + "0" * 32]


@pytest.mark.parametrize("seed", [8, 9])
def test_log_ids_are_held_as_their_16_bytes_and_found_exactly_as_strings_would_be(seed):
    rng = random.Random(seed)
    distinct = _log_ids(rng, 1500)
    landed = [rng.choice(distinct) for _ in range(3000)] + distinct[-3:]
    first = {}
    for position, value in enumerate(landed):
        first.setdefault(value, position)
    keys = SortedKeys(pa.chunked_array([landed[:1000], landed[1000:]]))
    assert keys._packed and keys._keys.dtype.itemsize == 16
    # Probes of other forms are never found: upper-case hex, a non-hex digit, short or long, no prefix.
    held = rng.choice(sorted(first))
    others = [held.upper().replace("LOG_", "log_"), held[:-1] + "g", held[:-1], held + "0", "LOG_" + held[4:],
              held[4:] + "log_", "", "log_", "x" * 37]
    probe = [rng.choice(distinct) for _ in range(500)] + _log_ids(rng, 300) + others + ["log_" + "ab" * 15 + "00"]
    found, slot = keys.locate(pa.array(probe, pa.string()))
    assert found.tolist() == [value in first for value in probe]
    assert keys.positions[slot[found]].tolist() == [first[value] for value in probe if value in first]
    # Given back as the strings they were, in string order.
    given_back = [key for part in keys.key_slices(400) for key in part]
    assert given_back == sorted(first)
    # One key of another form: the whole set stays in its fixed-width bytes, with the same answers.
    mixed = SortedKeys(pa.array(landed + ["log_not_hex"], pa.string()))
    assert not mixed._packed
    assert mixed.locate(pa.array(probe, pa.string()))[0].tolist() == found.tolist()


def test_chunked_keys_of_any_string_type_and_width_are_read_chunk_by_chunk():
    chunked = pa.chunked_array([pa.array(["aa", "b"]).slice(1), pa.array(["ccc", "aa"], pa.large_string()).cast(pa.string()),
                                pa.array(["dd"]).dictionary_encode().cast(pa.string())])
    held = KeySet(chunked)
    assert len(held) == 4
    assert held.contains(pa.array(["b", "ccc", "aa", "dd", "a", "cc"], pa.large_string())).to_pylist() == [
        True, True, True, True, False, False]
    keys = SortedKeys(pa.chunked_array([pa.array(["x", "yy"]), pa.array(["yy", "zzz"], pa.string()).slice(0)]))
    found, slot = keys.locate(pa.chunked_array([pa.array(["zzz"]), pa.array(["yy", "y"])]))
    assert found.tolist() == [True, True, False] and keys.positions[slot[found]].tolist() == [3, 1]
    assert keys.slots.tolist() == [0, 1, 1, 2]
    encoded = KeySet(pa.array(["q", "r", "q"]).dictionary_encode())
    assert len(encoded) == 2 and encoded.contains(pa.array(["q", "s"])).to_pylist() == [True, False]


def test_repeats_are_counted_over_batches_each_copy_after_the_first():
    assert count_repeats_in(iter([pa.array(["a", "b", "a"]), pa.array(["a", "c", "b", "ab"])]), 7) == 3
    assert count_repeats_in(iter([pa.chunked_array([], pa.string())]), 0) == 0
    assert count_repeats_in(iter([]), 0) == 0
    assert count_repeats_in(iter([pa.array(["a", "a\x00", "ab"])]), 3) == 0
    # A later batch with wider keys widens the array already gathered.
    batches = [pa.array(["a", "b", "a"]), pa.array([], pa.string()), pa.array(["a", "c", "b", "ab", "abc", "abc"])]
    assert count_repeats_in(iter(batches), 9) == 4
    with pytest.raises(ValueError, match="batches hold 3 rows, 9 declared"):
        count_repeats_in(iter(batches[:1]), 9)


def test_equal_keys_share_a_bucket_whatever_the_width_of_the_batch_they_come_in():
    short = buckets_of(pa.array(["log_ab", "x"]), 7)
    wide = buckets_of(pa.chunked_array([pa.array(["x", "a much longer key than the others", "log_ab"])]), 7)
    assert short.tolist() == [wide[2], wide[0]]
    assert buckets_of(pa.array([], pa.string()), 3).tolist() == []
    spread = buckets_of(pa.array([f"log_{i:032x}" for i in range(7000)]), 7)
    assert set(spread.tolist()) == set(range(7)) and np.bincount(spread).min() > 800
    with pytest.raises(ValueError, match="at least 1"):
        buckets_of(pa.array(["a"]), 0)


def test_sorted_keys_give_their_keys_back_as_strings_in_sorted_slices():
    landed = ["log_b", "a\x00", "log_a", "log_b", "é", "a"]
    keys = SortedKeys(pa.array(landed))
    given_back = [key for part in keys.key_slices(2) for key in part]
    assert sorted(given_back) == sorted(set(landed)) and given_back[-3:] == ["log_a", "log_b", "é"]
    assert keys.keys(keys.slots[[0, 4, 1]]) == ["log_b", "é", "a\x00"]
    assert list(SortedKeys(pa.array([], pa.string())).key_slices(3)) == []


def _first_usable_by_dict(keys: list[str], usable: list[bool]) -> list[bool]:
    seen: set[str] = set()
    expected = []
    for key, ok in zip(keys, usable, strict=True):
        expected.append(ok and key not in seen)
        if ok:
            seen.add(key)
    return expected


@pytest.mark.parametrize("seed", range(4))
def test_first_copies_agree_with_a_python_set_over_batches_of_any_width(seed, monkeypatch):
    import vault_pipeline.core.key_set as key_set

    monkeypatch.setattr(key_set, "_NEIGHBOURS", 7)  # many neighbour slices, including a one-row last one
    rng = random.Random(seed)
    # Short keys first, then wider ones (the held keys are widened), some with trailing NULs.
    keys = [rng.choice(["a", "b", "a\x00", "ab", "x" * rng.randint(1, 12), ""]) for _ in range(120)]
    usable = [rng.random() > 0.25 for _ in keys]
    step = rng.randint(1, 30)
    batches = [(pa.array(keys[i:i + step], pa.string()), np.array(usable[i:i + step])) for i in range(0, len(keys), step)]
    assert first_copies(batches, len(keys)).tolist() == _first_usable_by_dict(keys, usable)


def test_first_copies_of_no_rows_and_a_miscounted_stream():
    assert first_copies([], 0).tolist() == []
    assert first_copies([(pa.array([], pa.string()), np.array([], bool))], 0).tolist() == []
    one = [(pa.array(["a", "b"]), np.array([True, True]))]
    with pytest.raises(ValueError, match="more than the 1 rows"):
        first_copies(one, 1)
    with pytest.raises(ValueError, match="2 rows, 3 declared"):
        first_copies(one, 3)


@pytest.mark.parametrize("seed", range(3))
def test_sorted_keys_built_from_batches_equal_those_of_the_whole_column(seed, monkeypatch):
    """The integrity diff streams the snapshot's log_ids: the result must not depend on it."""
    import vault_pipeline.core.key_set as key_set

    monkeypatch.setattr(key_set, "_NEIGHBOURS", 5)
    rng = random.Random(seed)
    landed = [rng.choice(["a", "b", "a\x00", "ab", "x" * rng.randint(1, 9), "log_" + str(rng.randrange(40))])
              for _ in range(150)]
    step = rng.randint(1, 40)
    whole = SortedKeys(pa.array(landed))
    streamed = SortedKeys.from_batches((pa.array(landed[i:i + step]) for i in range(0, len(landed), step)), len(landed))
    assert len(streamed) == len(whole) == len(set(landed))
    assert streamed.positions.tolist() == whole.positions.tolist()
    assert streamed.slots.tolist() == whole.slots.tolist()
    assert list(streamed.key_slices(7)) == list(whole.key_slices(7))
    first = {}
    for position, key in enumerate(landed):
        first.setdefault(key, position)
    assert [landed[p] for p in streamed.positions.tolist()] == sorted(first, key=lambda k: (k + "\x01").encode())
    with pytest.raises(ValueError, match="150 rows, 151 declared"):
        SortedKeys.from_batches([pa.array(landed)], len(landed) + 1)
    assert len(SortedKeys.from_batches([], 0)) == 0
