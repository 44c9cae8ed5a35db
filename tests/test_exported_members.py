"""The public API is exactly these names, sorted."""

from __future__ import annotations

import fastembed_adapter

EXPECTED = [
    "CacheInfo",
    "CorpusError",
    "CorruptModelError",
    "FastembedAdapterError",
    "InferenceError",
    "InvalidInputError",
    "MissingExtraError",
    "ModelAccessError",
    "ModelFolderError",
    "ModelNotFoundError",
    "OnnxColbertEncoder",
    "OnnxSentenceEncoder",
    "OutputExistsError",
    "OutputWriteError",
    "UnsupportedModelError",
    "ValidationFailedError",
    "__version__",
    "start_metrics_server",
]


def test_all_is_pinned_and_sorted():
    assert fastembed_adapter.__all__ == EXPECTED
    assert sorted(fastembed_adapter.__all__) == fastembed_adapter.__all__


def test_every_exported_name_exists():
    for name in fastembed_adapter.__all__:
        assert hasattr(fastembed_adapter, name), name


def test_exception_tree():
    from fastembed_adapter import errors

    assert issubclass(errors.ModelNotFoundError, errors.ModelFolderError)
    assert issubclass(errors.ModelNotFoundError, FileNotFoundError)
    assert issubclass(errors.CorruptModelError, errors.ModelFolderError)
    assert issubclass(errors.UnsupportedModelError, errors.ModelFolderError)
    assert issubclass(errors.ModelFolderError, OSError)
    assert issubclass(errors.ModelAccessError, errors.ModelFolderError)
    assert issubclass(errors.ModelAccessError, PermissionError)
    assert issubclass(errors.InferenceError, RuntimeError)
    assert issubclass(errors.CorpusError, errors.InvalidInputError)
    assert issubclass(errors.MissingExtraError, ImportError)
    assert issubclass(errors.OutputExistsError, FileExistsError)
    assert issubclass(errors.OutputWriteError, OSError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.FastembedAdapterError)
    message = str(errors.MissingExtraError("prepare", "torch"))
    assert "pip install 'fastembed-adapter[prepare]'" in message and "torch" in message
