"""A detector-style consumer: any object with ``.encode`` classifies texts by similarity to labelled bundles.

Run once with ``SentenceTransformer`` and once with ``OnnxSentenceEncoder`` (same decisions expected):

    python examples/detector.py --st-model PATH_OR_ID --onnx-model PREPARED_DIR
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any, Protocol

import numpy as np

BUNDLES = {
    "billing": ["I was charged twice this month", "How do I get a refund?", "Update my credit card details"],
    "outage": ["The site is down", "I get a 502 error when I log in", "Your API has been timing out all morning"],
    "praise": ["Great product, thanks!", "Your support team was wonderful", "I love the new dashboard"],
}
TEXTS = [
    "Why was my card billed two times?",
    "Nothing loads, the service seems offline",
    "Thank you so much, this app is fantastic",
    "Can I have my money back for last month?",
    "Requests fail with gateway errors since 9am",
    "The redesign looks beautiful",
]


class Encoder(Protocol):
    def encode(self, sentences: list[str], **kwargs: Any) -> np.ndarray: ...


class BundleBasedDetector:
    """Labels a text with the bundle whose mean embedding is most similar (cosine)."""

    def __init__(self, model: Encoder, bundles: dict[str, list[str]]) -> None:
        self.model = model
        self.labels = list(bundles)
        centroids = [model.encode(texts, normalize_embeddings=True).mean(axis=0) for texts in bundles.values()]
        self.centroids = np.stack(centroids) / np.linalg.norm(centroids, axis=1, keepdims=True)

    def classify(self, texts: list[str]) -> list[str]:
        scores = self.model.encode(texts, normalize_embeddings=True) @ self.centroids.T
        return [self.labels[i] for i in scores.argmax(axis=1)]


def run(model: Encoder) -> tuple[list[str], float]:
    detector = BundleBasedDetector(model, BUNDLES)
    start = time.perf_counter()
    decisions = [detector.classify([text])[0] for text in TEXTS]  # one call per text, like a request path
    return decisions, (time.perf_counter() - start) / len(TEXTS) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--st-model", required=True, help="sentence-transformers model for the reference run")
    parser.add_argument("--onnx-model", required=True, help="folder written by `prepare`")
    args = parser.parse_args()

    from sentence_transformers import SentenceTransformer

    from fastembed_adapter import OnnxSentenceEncoder

    st_decisions, st_ms = run(SentenceTransformer(args.st_model, device="cpu"))
    onnx_decisions, onnx_ms = run(OnnxSentenceEncoder(args.onnx_model, cache_size=0))
    for text, a, b in zip(TEXTS, st_decisions, onnx_decisions, strict=True):
        print(f"{a:8s} {b:8s} {'same' if a == b else 'DIFFERENT'}  {text}")
    print(f"SentenceTransformer: {st_ms:.2f} ms/text   OnnxSentenceEncoder: {onnx_ms:.2f} ms/text")
    print(json.dumps({"same": st_decisions == onnx_decisions, "st_ms": st_ms, "onnx_ms": onnx_ms}))


if __name__ == "__main__":
    main()
