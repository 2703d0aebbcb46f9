"""Dotted field paths (`product.product_id`, `context.page.url`) compiled once and resolved per event.

A path starts with a scope: `properties`, `context` and `traits` are the event's own maps; `product` is
the product an interaction is about: the entry of `properties.products` for a per-product event (e.g.
Order Completed), else `properties` itself, where Segment's single-product events keep product fields.
Numeric parts index lists (`properties.products.0.sku`). No expressions: a mapping is data, not a DSL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SCOPES = ("properties", "product", "context", "traits")

Scopes = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A compiled path: its text (for messages), scope and the keys or list indexes below it."""

    text: str
    scope: str
    parts: tuple[str | int, ...]
    single: str | None = None  # the key of a `scope.key` path: the common case, resolved without a loop


def compile_path(text: str) -> FieldPath:
    """Parse `scope.key[.key…]`; ValueError names what is wrong."""
    scope, _, rest = text.partition(".")
    if scope not in SCOPES:
        raise ValueError(f"path {text!r} must start with one of {', '.join(SCOPES)}")
    if not rest or any(part == "" for part in rest.split(".")):
        raise ValueError(f"path {text!r} needs a field after its scope, e.g. {scope}.name")
    parts = tuple(int(p) if p.isdigit() else p for p in rest.split("."))
    return FieldPath(text, scope, parts, parts[0] if len(parts) == 1 and isinstance(parts[0], str) else None)


def compile_paths(texts: Sequence[str]) -> tuple[FieldPath, ...]:
    return tuple(compile_path(text) for text in texts)


def resolve(path: FieldPath, scopes: Scopes) -> Any:
    """The value at `path`, or None when any step is missing or of the wrong shape."""
    node = scopes.get(path.scope)
    if path.single is not None:
        return node.get(path.single) if type(node) is dict else None
    for part in path.parts:
        if isinstance(node, dict):
            node = node.get(part) if isinstance(part, str) else node.get(str(part))
        elif isinstance(node, list) and isinstance(part, int):
            node = node[part] if part < len(node) else None
        else:
            return None
        if node is None:
            return None
    return node


def first_value(paths: Sequence[FieldPath], scopes: Scopes) -> tuple[FieldPath | None, Any]:
    """The first path holding a value (None, "" and [] count as absent) and that value."""
    for path in paths:
        if (key := path.single) is not None:  # resolve's common case inline: a call less per path and event
            node = scopes.get(path.scope)
            value = node.get(key) if type(node) is dict else None
        else:
            value = resolve(path, scopes)
        if value is not None and value != "" and value != []:
            return path, value
    return None, None


def describe(paths: Sequence[FieldPath]) -> str:
    """`product.product_id / product.sku`: how messages name where a value was looked for."""
    return " / ".join(path.text for path in paths) or "(no path configured)"
