"""numpy pooling/normalize/quantize vs sentence-transformers' Pooling, Normalize and quantize_embeddings."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pytest

from checks import FP32_MAX_ABS
from fastembed_adapter import InvalidInputError
from fastembed_adapter.layout import PoolingConfig, PoolingMode
from fastembed_adapter.modules import normalize
from fastembed_adapter.pooling import PRECISIONS, exclude_prompt, pool, quantize, quantize_matrices
from tiny import POOLING_MODES

# We follow sentence-transformers 6 where 5.x differs (weightedmean under left padding, int8 buckets).
ST6 = int(version("sentence-transformers").split(".")[0]) >= 6

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


def _pooling_class():
    try:  # sentence-transformers >= 6
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:  # 5.x
        from sentence_transformers.models import Pooling
    return Pooling


def _st_pool(modes, tokens: np.ndarray, mask: np.ndarray, include_prompt: bool = True, prompt_length=None):
    import torch

    module = _pooling_class()(DIM, pooling_mode=modes, include_prompt=include_prompt)
    # copies: ST 5 max pooling wrote -1e9 into the padding of the tensors it was given
    features = {"token_embeddings": torch.from_numpy(tokens.copy()), "attention_mask": torch.from_numpy(mask.copy())}
    if prompt_length is not None:
        features["prompt_length"] = prompt_length
    return module(features)["sentence_embedding"].numpy()


def _st_excluded_mask(mask: np.ndarray, prompt_length: int) -> np.ndarray:
    """The mask ST pools under ``include_prompt=False`` (ST 6 on a copy; ST 5 zeroed the features' own mask)."""
    import torch

    pooling = _pooling_class()
    if hasattr(pooling, "_exclude_prompt_from_mask"):
        return pooling._exclude_prompt_from_mask(torch.from_numpy(mask.copy()), prompt_length).numpy()
    features = {"token_embeddings": torch.zeros(*mask.shape, DIM), "attention_mask": torch.from_numpy(mask.copy())}
    pooling(DIM, pooling_mode="mean", include_prompt=False)({**features, "prompt_length": prompt_length})
    return features["attention_mask"].numpy()


def _st_reference(modes, tokens: np.ndarray, mask: np.ndarray, side: str) -> np.ndarray:
    """ST's pooling; on ST 5 left padding is first moved to the right (ST 6 weights weightedmean from the
    first real token, so a left-padded row pools like the same row right-padded; ST 5 did not)."""
    if ST6:
        return _st_pool(modes, tokens, mask)
    if not isinstance(modes, str):  # ST 5 took one mode per Pooling(pooling_mode=...)
        return np.concatenate([_st_reference(mode, tokens, mask, side) for mode in modes], axis=-1)
    right_tokens, right_mask = tokens, mask
    if side == "left":
        right_tokens, right_mask = np.zeros_like(tokens), np.zeros_like(mask)
        for row, n in enumerate(mask.sum(axis=1)):
            right_tokens[row, :n], right_mask[row, :n] = tokens[row, SEQ - n :], 1
            right_tokens[row, n:] = tokens[row, : SEQ - n]
    ref = _st_pool(modes, right_tokens, right_mask)
    if modes == "max":  # a row without a real token: ST 5 filled padding with -1e9, ST 6 with -inf
        ref[mask.sum(axis=1) == 0] = -np.inf
    return ref


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("mode", POOLING_MODES)
def test_single_mode_matches_st(mode, side):
    tokens, mask = _tokens(), _masks(side)
    ref = _st_reference(mode, tokens, mask, side)
    got = pool(PoolingConfig(DIM, (PoolingMode(mode),)), tokens, mask)
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=FP32_MAX_ABS, rtol=0)


@pytest.mark.parametrize("side", ["right", "left"])
def test_combined_modes_concatenate_in_order(side):
    modes = ("lasttoken", "cls", "mean", "max", "mean_sqrt_len_tokens", "weightedmean")
    tokens, mask = _tokens(1), _masks(side)
    ref = _st_reference(modes, tokens, mask, side)
    config = PoolingConfig(DIM, tuple(PoolingMode(m) for m in modes))
    got = pool(config, tokens, mask)
    assert got.shape == (BATCH, DIM * len(modes)) == ref.shape
    assert config.output_dimension == DIM * len(modes)
    np.testing.assert_allclose(got, ref, atol=FP32_MAX_ABS, rtol=0)


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("prompt_length", [0, 1, 3])
@pytest.mark.parametrize("mode", ["mean", "weightedmean"])
def test_exclude_prompt_matches_st(side, prompt_length, mode):
    tokens, mask = _tokens(2), _masks(side)
    got_mask = exclude_prompt(mask, prompt_length)
    np.testing.assert_array_equal(got_mask, _st_excluded_mask(mask, prompt_length))
    np.testing.assert_array_equal(mask, _masks(side))  # the input is not modified
    got = pool(PoolingConfig(DIM, (PoolingMode(mode),)), tokens, got_mask, original_mask=mask)
    if ST6 or mode == "mean" or side == "right":
        ref = _st_pool(mode, tokens, mask, include_prompt=False, prompt_length=prompt_length)
        np.testing.assert_allclose(got, ref, atol=FP32_MAX_ABS)
    else:  # ST 5 weighted left-padded rows by absolute position: the ST 6 weights, from the first real token
        lead = mask.argmax(axis=1)[:, None]
        weights = got_mask * (np.arange(1, SEQ + 1)[None, :] - lead)
        ref = np.einsum("bsh,bs->bh", tokens, weights) / np.maximum(weights.sum(axis=1, keepdims=True), 1e-9)
        np.testing.assert_allclose(got, ref, atol=FP32_MAX_ABS)


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
    from sentence_transformers import quantize_embeddings

    embeddings = np.random.default_rng(rows).normal(size=(rows, 20)).astype(np.float32)
    embeddings[:, 3] = 0.25  # a constant column: zero range
    if rows == 1 and precision.endswith("int8"):  # no range in one embedding: ST 6 raises, ST 5 divided by zero
        with pytest.raises(InvalidInputError, match=f"Cannot compute {precision} quantization ranges"):
            quantize(embeddings, precision)
        if ST6:
            with pytest.raises(ValueError, match=f"Cannot compute {precision} quantization ranges"):
                quantize_embeddings(embeddings, precision=precision)
        return
    got = quantize(embeddings, precision)
    if ST6 or precision == "float32":
        ref = embeddings if precision == "float32" else quantize_embeddings(embeddings, precision=precision)
        assert got.dtype == ref.dtype and got.shape == ref.shape
        np.testing.assert_array_equal(got, ref)
    elif precision.endswith("binary"):  # ST 5 packed the flattened bits: the same when the dim is a multiple of 8
        assert got.shape == (rows, 3)
        np.testing.assert_array_equal(
            quantize(embeddings[:, :16], precision), quantize_embeddings(embeddings[:, :16], precision)
        )
    else:  # ST 5: no floor/clip and a division by zero on the constant column; the other columns agree
        varying = np.arange(20) != 3
        uint8 = quantize(embeddings, "uint8")
        with np.errstate(divide="ignore", invalid="ignore"):
            ref = quantize_embeddings(embeddings, "uint8")
        np.testing.assert_array_equal(uint8[:, varying], ref[:, varying])
        np.testing.assert_array_equal(
            got, (uint8.astype(np.int16) - 128).astype(np.int8) if precision == "int8" else uint8
        )
        assert (uint8[:, 3] == 0).all()  # ST 6: a zero step counts as 1


@pytest.mark.parametrize("precision", PRECISIONS)
def test_quantize_matrices_shares_the_buckets(precision):
    from sentence_transformers import quantize_embeddings

    rng = np.random.default_rng(5)
    matrices = [rng.normal(size=(rows, 20)).astype(np.float32) for rows in (7, 1, 12)]
    got = quantize_matrices(matrices, precision)
    concatenated = quantize(np.concatenate(matrices), precision)
    np.testing.assert_array_equal(np.concatenate(got), concatenated)  # one calibration over all rows
    assert [m.shape[0] for m in got] == [7, 1, 12]
    if ST6:  # ST 5 cannot quantize a list of matrices
        for row, ref in zip(got, quantize_embeddings(matrices, precision=precision), strict=True):
            np.testing.assert_array_equal(row, ref)
    assert quantize_matrices([], precision) == []
