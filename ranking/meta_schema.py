"""The JSON Schema 2020-12 meta-schema as one document, cheap enough to check client schemas.

The published meta-schema is seven vocabularies joined by `$dynamicRef`; jsonschema resolves
those references anew at every subschema, ~2 ms per small tool schema. Merged into one
document with plain `$ref: "#"`, the same rules check a schema about 15 times faster, and
each step is a step of the caller's budget (ranking.schema).
"""

from __future__ import annotations

from typing import Any

from jsonschema_specifications import REGISTRY

DIALECT = "https://json-schema.org/draft/2020-12/"


def _plain_refs(node: Any) -> Any:
    """`node` with every `$dynamicRef: "#meta"` (a subschema) as `$ref: "#"`."""
    if isinstance(node, dict):
        if node.get("$dynamicRef") == "#meta":
            return {"$ref": "#"}
        return {key: _plain_refs(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain_refs(item) for item in node]
    return node


def flat_meta_schema() -> dict[str, Any]:
    """The 2020-12 meta-schema's vocabularies merged into one self-contained schema."""
    main = REGISTRY[DIALECT + "schema"].contents
    properties: dict[str, Any] = {}
    defs: dict[str, Any] = {}
    for part in main["allOf"]:
        vocabulary = REGISTRY[DIALECT + part["$ref"]].contents
        properties.update(vocabulary.get("properties", {}))
        defs.update(vocabulary.get("$defs", {}))
    properties.update(main.get("properties", {}))  # the deprecated keywords it still checks
    merged = {"type": ["object", "boolean"], "properties": properties, "$defs": defs}
    return dict(_plain_refs(merged))
