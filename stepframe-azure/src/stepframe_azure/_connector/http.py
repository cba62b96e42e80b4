"""What the connector's own HTTP calls share (the ACR exchange, verify's reads)."""

from __future__ import annotations

from typing import Any

__all__ = ["json_body"]


def json_body(answer: Any) -> dict[str, Any]:
    """A requests answer's JSON object, or ``{}`` when its body is not one (an HTML error
    page from a proxy, an empty 401)."""
    try:
        found = answer.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
