"""numpy pooling/normalize/quantize vs sentence-transformers' Pooling, Normalize and quantize_embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import FP32_MAX_ABS, POOLING_MODES
from fastembed_adapter.layout import PoolingConfig, PoolingMode
from fastembed_adapter.modules import normalize
from fastembed_adapter.pooling import PRECISIONS, exclude_prompt, pool, quantize

BATCH, SEQ, DIM = 5, 7, 16
LENGTHS = [7, 1, 4, 0, 3]  # one row with no real token at all


def _masks(side: str) -> np.ndarray:
    mask = np.zeros((BATCH, SEQ), dtype=np.int64)
    for row, n in enumerate(LENGTHS):
        if n:
            mask[row, :n] = 1 if side == "right" else 0
            if side == "left":
                mask[row, SEQ - n :] = 1
    return mask


def _tokens(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(BATCH, SEQ, DIM)).astype(np.float32)


def _st_pool(modes, tokens: np.ndarray, mask: np.ndarray, include_prompt: bool = True, prompt_length=None):
    import torch
    from sentence_transformers.sentence_transformer.modules import Pooling

    module = Pooling(DIM, pooling_mode=modes, include_prompt=include_prompt)
    features = {"token_embeddings": torch.from_numpy(tokens), "attention_mask": torch.from_numpy(mask)}
    if prompt_length is not None:
        features["prompt_length"] = prompt_length
    out = module(features)
    return out["sentence_embedding"].numpy(), out["attention_mask"].numpy()


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("mode", POOLING_MODES)
def test_single_mode_matches_st(mode, side):
    tokens, mask = _tokens(), _masks(side)
    ref, _ = _st_pool(mode, tokens, mask)
    got = pool(PoolingConfig(DIM, (PoolingMode(mode),)), tokens, mask)
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=FP32_MAX_ABS, rtol=0)


@pytest.mark.parametrize("side", ["right", "left"])
def test_combined_modes_concatenate_in_order(side):
    modes = ("lasttoken", "cls", "mean", "max", "mean_sqrt_len_tokens", "weightedmean")
    tokens, mask = _tokens(1), _masks(side)
    ref, _ = _st_pool(modes, tokens, mask)
    config = PoolingConfig(DIM, tuple(PoolingMode(m) for m in modes))
    got = pool(config, tokens, mask)
    assert got.shape == (BATCH, DIM * len(modes)) == ref.shape
    assert config.output_dimension == DIM * len(modes)
    np.testing.assert_allclose(got, ref, atol=FP32_MAX_ABS, rtol=0)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("prompt_length", [0, 1, 3])
def test_exclude_prompt_matches_st(side, prompt_length):
    tokens, mask = _tokens(2), _masks(side)
    ref, ref_mask = _st_pool("mean", tokens, mask, include_prompt=False, prompt_length=prompt_length)
    got_mask = exclude_prompt(mask, prompt_length)
    np.testing.assert_array_equal(got_mask, ref_mask)
    np.testing.assert_array_equal(mask, _masks(side))  # the input is not modified
    np.testing.assert_allclose(pool(PoolingConfig(DIM, (PoolingMode.MEAN,)), tokens, got_mask), ref, atol=FP32_MAX_ABS)


def test_pooling_ignores_padding_values():
    tokens, mask = _tokens(3), _masks("right")
    noisy = tokens.copy()
    noisy[mask == 0] = 1e6
    for mode in PoolingMode:
        if mode is PoolingMode.MAX:
            continue  # an all-padding row is -inf in both, checked above
        config = PoolingConfig(DIM, (mode,))
        rows = np.array(LENGTHS) > 0
        np.testing.assert_allclose(pool(config, noisy, mask)[rows], pool(config, tokens, mask)[rows], atol=1e-5)


def test_normalize_matches_torch():
    import torch

    vectors = np.random.default_rng(4).normal(size=(6, DIM)).astype(np.float32)
    vectors[2] = 0.0  # zero vector stays zero (eps)
    vectors[3] *= 1e-8
    ref = torch.nn.functional.normalize(torch.from_numpy(vectors), p=2, dim=1).numpy()
    got = normalize(vectors)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("rows", [1, 3, 150])
def test_quantize_matches_st(precision, rows):
    from sentence_transformers.util.quantization import quantize_embeddings

    embeddings = np.random.default_rng(rows).normal(size=(rows, 20)).astype(np.float32)
    embeddings[:, 3] = 0.25  # a constant column: zero range
    got = quantize(embeddings, precision)
    ref = embeddings if precision == "float32" else quantize_embeddings(embeddings, precision=precision)
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)
