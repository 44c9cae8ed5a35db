"""The LRU embedding cache: hits equal misses, copies, bounds, keys, order, thread safety."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from checks import FP32_MAX_ABS
from fastembed_adapter import InvalidInputError, OnnxSentenceEncoder
from fastembed_adapter.cache import EmbeddingCache
from tiny import FP32_FILE, TEXTS


@pytest.fixture()
def encoder(prepared_base):
    return OnnxSentenceEncoder(prepared_base("bert"), file_name=FP32_FILE, threads=1, metrics=False)


@pytest.fixture()
def uncached(prepared_base):
    return OnnxSentenceEncoder(prepared_base("bert"), file_name=FP32_FILE, threads=1, metrics=False, cache_size=0)


def test_hit_equals_miss_and_counts(encoder, uncached):
    first = encoder.encode(TEXTS)
    assert encoder.cache_info().misses == len(TEXTS) and encoder.cache_info().hits == 0
    second = encoder.encode(TEXTS)
    assert encoder.cache_info().hits == len(TEXTS)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(second, uncached.encode(TEXTS), atol=FP32_MAX_ABS)


def test_mixed_batch_encodes_only_misses_and_keeps_order(encoder, uncached):
    encoder.encode(TEXTS[:3])
    mixed = [TEXTS[5], TEXTS[0], TEXTS[6], TEXTS[2]]
    got = encoder.encode(mixed)
    info = encoder.cache_info()
    assert (info.hits, info.misses) == (2, 5)
    np.testing.assert_allclose(got, uncached.encode(mixed), atol=FP32_MAX_ABS)


def test_results_are_copies(encoder):
    first = encoder.encode(TEXTS[0])
    kept = first.copy()
    first[:] = 0
    np.testing.assert_array_equal(encoder.encode(TEXTS[0]), kept)


def test_post_processing_applies_after_lookup(encoder, uncached):
    encoder.encode(TEXTS)
    for kwargs in ({"normalize_embeddings": True}, {"truncate_dim": 8}, {"precision": "ubinary"}):
        np.testing.assert_allclose(encoder.encode(TEXTS, **kwargs), uncached.encode(TEXTS, **kwargs), atol=FP32_MAX_ABS)
    assert encoder.cache_info().misses == len(TEXTS)


def test_every_key_field_changes_the_entry(encoder, uncached):
    encoder.encode(TEXTS[0])
    with_prompt = encoder.encode(TEXTS[0], prompt="query: ")
    assert not np.allclose(with_prompt, encoder.encode(TEXTS[0]), atol=1e-4)
    np.testing.assert_allclose(with_prompt, uncached.encode(TEXTS[0], prompt="query: "), atol=FP32_MAX_ABS)
    long_text = " ".join(TEXTS * 3)
    full = encoder.encode(long_text)
    encoder.max_seq_length = 8
    uncached.max_seq_length = 8
    np.testing.assert_allclose(encoder.encode(long_text), uncached.encode(long_text), atol=FP32_MAX_ABS)
    assert not np.allclose(encoder.encode(long_text), full, atol=1e-4)


def test_token_embeddings_bypass_the_cache(encoder):
    encoder.encode(TEXTS[:2], output_value="token_embeddings")
    assert encoder.cache_info().size == 0


def test_disabled_and_clear(encoder, uncached):
    uncached.encode(TEXTS)
    assert uncached.cache_info().size == 0
    encoder.encode(TEXTS)
    encoder.clear_cache()
    info = encoder.cache_info()
    assert (info.size, info.hits, info.misses) == (0, 0, 0)


def test_entry_bound_evicts_least_recently_used():
    cache = EmbeddingCache(maxsize=2)
    cache.put_many([("a", np.ones(4)), ("b", np.ones(4))])
    assert cache.get_many(["a"])[0] is not None  # a is now most recently used
    cache.put_many([("c", np.ones(4))])
    assert [value is not None for value in cache.get_many(["a", "b", "c"])] == [True, False, True]


def test_byte_bound():
    cache = EmbeddingCache(maxsize=100, max_bytes=64)
    cache.put_many([(i, np.ones(4, dtype=np.float32)) for i in range(10)])  # 16 bytes each
    info = cache.info()
    assert info.size == 4 and info.bytes <= 64


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True])
def test_bad_cache_size(prepared_base, bad):
    with pytest.raises(InvalidInputError, match="cache_size"):
        OnnxSentenceEncoder(prepared_base("bert"), file_name=FP32_FILE, cache_size=bad)


def test_threads_share_one_encoder(encoder, uncached):
    expected = uncached.encode(TEXTS)
    jobs = [TEXTS[i:] + TEXTS[:i] for i in range(len(TEXTS))] * 3
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(encoder.encode, jobs))
    for i, got in enumerate(results):
        shift = i % len(TEXTS)
        np.testing.assert_allclose(got, np.roll(expected, -shift, axis=0), atol=FP32_MAX_ABS)


def test_get_or_compute_computes_only_the_misses_and_counts_them():
    cache = EmbeddingCache(maxsize=8)
    asked: list[list[int]] = []

    def compute(missing: list[int]) -> list[np.ndarray]:
        asked.append(missing)
        return [np.full(2, float(i), dtype=np.float32) for i in missing]

    values, hits, misses = cache.get_or_compute(["a", "b"], compute)
    assert (hits, misses) == (0, 2) and asked == [[0, 1]]
    values, hits, misses = cache.get_or_compute(["b", "c", "a"], compute)
    assert (hits, misses) == (2, 1) and asked[-1] == [1]
    np.testing.assert_array_equal(np.stack(values), [[1, 1], [1, 1], [0, 0]])  # b (was 1), c (computed at 1), a
    off = EmbeddingCache(maxsize=0)
    values, hits, misses = off.get_or_compute(["a"], compute)
    assert (hits, misses) == (0, 0) and len(values) == 1
