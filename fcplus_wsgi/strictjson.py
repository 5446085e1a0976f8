"""JSON read from providers and written into sealed records, with orjson.

Why not the standard library's json: it accepts more than RFC 8259. It parses the
literals NaN and Infinity, turns a number such as 1e999 into infinity (an `exp` that
never passes), accepts lone surrogates that later fail to encode, and answers deep
nesting with RecursionError rather than ValueError. orjson refuses all of these with a
ValueError (json.JSONDecodeError), needs no per-call configuration, and parses and
writes several times faster, which a login pays for five documents
(docs/benchmarks.md, part 3). Integers beyond 64 bits come back as floats, as they do
in most JSON implementations; no claim this library reads is that large.
"""

from __future__ import annotations

from typing import Any

import orjson


def loads(data: str | bytes) -> Any:
    """Parse provider JSON as RFC 8259 defines it (UTF-8, no NaN/Infinity); ValueError otherwise."""
    return orjson.loads(data)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON of plain data (str keys; what `loads` returns); TypeError otherwise."""
    return orjson.dumps(value)
