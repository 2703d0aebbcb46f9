"""The one JSON decoder for payloads from outside (webhook bodies, Kafka values): integers stay exact."""

from __future__ import annotations

from typing import Any

import msgspec

# orjson, like JavaScript, turns an integer beyond 64 bits into a float: the item id
# 123456789012345678901234567890 became 123456789012345677877719597056, silently. msgspec keeps Python's
# exact int (and refuses one over ~4,300 digits with a reason), so a numeric id survives as its decimal string.
_decoder = msgspec.json.Decoder()

InvalidJson = msgspec.DecodeError


def decode_json(data: bytes | str) -> Any:
    """Parse a JSON document; InvalidJson (with msgspec's position and reason) when it is not one."""
    try:
        return _decoder.decode(data)
    except RecursionError:  # msgspec's nesting limit is the interpreter's; orjson's was 1,024 levels
        raise InvalidJson("nested too deeply") from None
