"""JSON read from providers and written into sealed records, with orjson.

Why not the standard library's json: it accepts more than RFC 8259. It parses the
literals NaN and Infinity, turns a number such as 1e999 into infinity (an `exp` that
never passes), accepts lone surrogates that later fail to encode, and answers deep
nesting with RecursionError rather than ValueError. orjson refuses all of these with a
ValueError (json.JSONDecodeError), needs no per-call configuration, and parses and
writes several times faster, which a login pays for five documents
(docs/benchmarks.md, part 3). Integers beyond 64 bits come back as floats, as they do
in most JSON implementations; no claim this library reads is that large.

Depth is bounded below orjson's own limits: orjson reads 1,024 levels but writes only
254, so a claim nested 300 levels would verify and then fail when the session is
sealed, and a header nested 1,000 levels breaks any second parser with RecursionError.
No provider document needs more than a few levels (the OIDC `address` claim is the
deepest standard one), so anything deeper than MAX_DEPTH is refused as not JSON.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_DEPTH = 32


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse provider JSON as RFC 8259 defines it (UTF-8, no NaN/Infinity), at most
    `max_depth` containers deep; ValueError otherwise."""
    value = orjson.loads(data)
    # Counting brackets is a C-speed bound: a document with fewer openers than the limit
    # cannot be deeper (brackets inside strings only make the shortcut rarer).
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"{") + raw.count(b"[") > max_depth and _depth(value) > max_depth:
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    return value


def _depth(value: Any) -> int:
    """Containers nested in `value` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of plain data (str keys; what `loads` returns); TypeError otherwise."""
    return orjson.dumps(value)
