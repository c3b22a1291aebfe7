"""OpenTelemetry: nothing happens unless asked; asked, the request and each miner call are spans."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.config import Settings
from gateway.runtime.telemetry import setup_tracing, tracing_wanted
from tests.support import profiles

CHAT = {"model": "sim", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


def test_tracing_is_a_no_op_when_not_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    settings = Settings(metagraph=Path("m.json"))
    assert not tracing_wanted(settings)
    app = create_app(settings)
    # Outermost first: the key from the headers, then a slot and the body.
    assert [m.cls.__name__ for m in app.user_middleware] == ["AccessMiddleware", "InFlightGate"]
    assert setup_tracing(app, settings) is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing_wanted(settings)
    assert not tracing_wanted(Settings(metagraph=Path("m.json"), otel=False))


def test_the_request_and_every_miner_call_become_spans(sim_pool: Callable[..., Any]) -> None:
    pytest.importorskip("opentelemetry.instrumentation.fastapi")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind

    _, metagraph = sim_pool(profiles("good", "wrong", "off_topic"))
    settings = Settings(metagraph=metagraph, embedding_model=False)
    app = create_app(settings)
    exporter = InMemorySpanExporter()
    undo = setup_tracing(app, settings, exporter=exporter)
    assert undo is not None
    try:
        with TestClient(app) as client:
            assert client.post("/v1/chat/completions", json=CHAT).status_code == 200
    finally:
        undo()
    spans = exporter.get_finished_spans()
    server = [s for s in spans if s.kind == SpanKind.SERVER]
    # The gateway's own reads of the miners' /v1/models (their context) are not request calls.
    calls = [
        s
        for s in spans
        if s.kind == SpanKind.CLIENT
        and not any("/v1/models" in str(v) for v in (s.attributes or {}).values())
    ]
    assert any("/v1/chat/completions" in s.name for s in server)
    assert len(calls) == 3
    assert {s.context.trace_id for s in calls} == {server[0].context.trace_id}
