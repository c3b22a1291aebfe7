"""/openapi.json with the completion routes' request bodies (the routes read them raw)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from gateway.protocol import ChatCompletionRequest, CompletionRequest

BODIES: dict[str, type[BaseModel]] = {
    "/v1/chat/completions": ChatCompletionRequest,
    "/v1/completions": CompletionRequest,
}
REF = "#/components/schemas/{model}"


def describe_request_bodies(app: FastAPI) -> None:
    """Make the app's OpenAPI document name the request model of each completion route."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for path, model in BODIES.items():
            body = model.model_json_schema(ref_template=REF)
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
            media = {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}
            schema["paths"][path]["post"]["requestBody"] = {"required": True, "content": media}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
