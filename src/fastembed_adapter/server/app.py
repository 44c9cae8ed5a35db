"""``create_app``: the Starlette application of one replica (routes, middleware, errors, lifespan)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from ..errors import FastembedAdapterError, InvalidInputError
from .engine import ModelHost
from .metrics import ServerMetrics
from .middleware import ObservabilityMiddleware
from .routes import API_PATHS, PUBLIC_PATHS, ROUTES, error_response
from .settings import ServerSettings

if TYPE_CHECKING:
    from ..colbert import OnnxColbertEncoder
    from ..encoder import OnnxSentenceEncoder

__all__ = ["create_app"]


def default_encoder_factory(
    settings: ServerSettings, registry: CollectorRegistry
) -> Callable[[], OnnxSentenceEncoder | OnnxColbertEncoder]:
    """Build the replica's encoder from ``settings``, recording into ``registry``.

    A PyLate ColBERT folder or hub repo gets an ``OnnxColbertEncoder`` (the ``/embed_multi`` and
    ``/rerank`` routes), anything else an ``OnnxSentenceEncoder``.
    """

    def build() -> OnnxSentenceEncoder | OnnxColbertEncoder:
        from ..colbert import OnnxColbertEncoder
        from ..encoder import OnnxSentenceEncoder
        from ..hub import is_colbert_model

        if is_colbert_model(settings.model):
            if settings.runtime not in (None, "onnxruntime", "auto"):
                raise InvalidInputError(f"runtime={settings.runtime!r}: ColBERT models run on ONNX Runtime only.")
            return OnnxColbertEncoder(
                settings.model,
                file_name=settings.file_name,
                threads=settings.threads,
                spinning=False,
                cache_size=settings.cache_size,
                registry=registry,
                model_name=settings.served_name,
            )
        return OnnxSentenceEncoder(
            settings.model,
            file_name=settings.file_name,
            threads=settings.threads,
            spinning=False,  # a server idles between requests; spinning threads would burn the CPU quota
            runtime=settings.runtime,
            cache_size=settings.cache_size,
            registry=registry,
            model_name=settings.served_name,
        )

    return build


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    host: ModelHost = app.state.host
    host.start()
    try:
        yield
    finally:
        await host.stop()


def create_app(
    settings: ServerSettings,
    *,
    registry: CollectorRegistry | None = None,
    encoder_factory: Callable[[], OnnxSentenceEncoder | OnnxColbertEncoder] | None = None,
) -> Starlette:
    """The ASGI app serving ``settings.model``; the model loads in the background once the app starts.

    Args:
        settings: the replica's configuration.
        registry: Prometheus registry for the service and encoder metrics (default: a new one).
        encoder_factory: builds the encoder on the worker thread (default: from ``settings``).
    """
    registry = registry if registry is not None else CollectorRegistry()
    metrics = ServerMetrics(registry)
    factory = encoder_factory or default_encoder_factory(settings, registry)
    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(
                ObservabilityMiddleware,
                metrics=metrics,
                api_key=settings.api_key,
                endpoints=API_PATHS,
                public=PUBLIC_PATHS,
            )
        ],
        exception_handlers={FastembedAdapterError: error_response, HTTPException: error_response},
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.host = ModelHost(settings, metrics, factory)
    return app
