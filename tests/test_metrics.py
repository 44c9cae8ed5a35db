"""Prometheus metrics: counts and durations land in an injected registry; encoders do not collide."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from fastembed_adapter import InvalidInputError, OnnxSentenceEncoder
from tiny import FP32_FILE, TEXTS


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


@pytest.fixture()
def registry():
    return CollectorRegistry()


def test_stage_counts_and_durations(prepared_base, registry):
    encoder = OnnxSentenceEncoder(
        prepared_base("bert"), file_name=FP32_FILE, threads=1, registry=registry, model_name="tiny"
    )
    encoder.encode(TEXTS, batch_size=4)
    encoder.encode(TEXTS[:3])
    batches = -(-len(TEXTS) // 4)
    assert value(registry, "fastembed_adapter_encode_seconds_count", model="tiny") == 2
    for stage, count in (("tokenize", 1), ("inference", batches), ("pooling", batches)):  # 1 window of batches
        assert value(registry, f"fastembed_adapter_{stage}_seconds_count", model="tiny") == count
        assert value(registry, f"fastembed_adapter_{stage}_seconds_sum", model="tiny") > 0
    assert value(registry, "fastembed_adapter_texts_per_call_sum", model="tiny") == len(TEXTS) + 3
    assert value(registry, "fastembed_adapter_batch_size_sum", model="tiny") == len(TEXTS)
    assert value(registry, "fastembed_adapter_tokens_per_batch_sum", model="tiny") > len(TEXTS)
    assert value(registry, "fastembed_adapter_cache_hits_total", model="tiny") == 3
    assert value(registry, "fastembed_adapter_cache_misses_total", model="tiny") == len(TEXTS)


def test_errors_counted_by_type(prepared_base, registry):
    encoder = OnnxSentenceEncoder(prepared_base("bert"), file_name=FP32_FILE, registry=registry, model_name="tiny")
    with pytest.raises(InvalidInputError):
        encoder.encode(None)
    assert value(registry, "fastembed_adapter_errors_total", model="tiny", type="InvalidInputError") == 1


def test_two_encoders_share_a_registry(prepared_base, registry):
    a = OnnxSentenceEncoder(prepared_base("bert"), file_name=FP32_FILE, registry=registry, model_name="a")
    b = OnnxSentenceEncoder(prepared_base("mpnet"), file_name=FP32_FILE, registry=registry, model_name="b")
    a.encode(TEXTS[0])
    b.encode(TEXTS[:2])
    assert value(registry, "fastembed_adapter_texts_per_call_sum", model="a") == 1
    assert value(registry, "fastembed_adapter_texts_per_call_sum", model="b") == 2


def test_metrics_off(prepared_base, registry):
    encoder = OnnxSentenceEncoder(prepared_base("bert"), file_name=FP32_FILE, registry=registry, metrics=False)
    encoder.encode(TEXTS)
    assert value(registry, "fastembed_adapter_encode_seconds_count", model="bert") == 0
