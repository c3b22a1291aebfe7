"""Optional OpenTelemetry traces: the FastAPI server and every aiohttp miner call as spans.

Needs the `otel` extra; on when `BITGATE_OTEL=true`, or when unset and
`OTEL_EXPORTER_OTLP_ENDPOINT` is set. Spans leave over OTLP/HTTP, configured by the
standard `OTEL_*` variables.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from gateway.config import Settings

logger = logging.getLogger(__name__)


def tracing_wanted(settings: Settings) -> bool:
    """Whether the settings ask for traces."""
    if settings.otel is not None:
        return settings.otel
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def setup_tracing(
    app: FastAPI, settings: Settings, exporter: Any | None = None
) -> Callable[[], None] | None:
    """Instrument `app` and aiohttp when wanted; returns how to undo it (None: nothing done).

    `exporter` replaces the OTLP exporter (tests pass an in-memory one)."""
    if exporter is None and not tracing_wanted(settings):
        return None
    try:
        from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        logger.warning("traces asked for, but the `otel` extra is not installed: no traces")
        return None
    service = os.environ.get("OTEL_SERVICE_NAME", "bitgate")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    aiohttp_instrumentor = AioHttpClientInstrumentor()
    aiohttp_instrumentor.instrument(tracer_provider=provider)
    logger.info("OpenTelemetry traces on (service %s)", service)

    def undo() -> None:
        aiohttp_instrumentor.uninstrument()
        FastAPIInstrumentor.uninstrument_app(app)
        provider.shutdown()

    return undo
