"""One contract for every connector in CATALOGUE: naming, documented config, a working example, batch limits."""

from __future__ import annotations

import asyncio
import re

import pytest

from connectors import CATALOGUE
from personalize_hub import registry
from personalize_hub.config import interpolate
from hub.connector import BatchedConfig, Context, Destination, Source
from hub.delivery.retry import RetryPolicy
from hub.delivery.runner import DestinationRunner
from hub.events import Event, EventKind, SourceRef
from hub.rows import ExportRow

IDS = [registry.type_name(c) for c in CATALOGUE]


class AnyVariable(dict):
    """An environment in which every variable is set (to a value that parses as most field types)."""

    def get(self, key, default=None):
        return "1"


def example_config(cls):
    assert cls.Config.example, f"{cls.Config.__name__} needs an `example` config"
    return cls.Config.model_validate(interpolate(cls.Config.example, AnyVariable()))


@pytest.mark.parametrize("cls", CATALOGUE, ids=IDS)
def test_type_matches_module_path_and_class_names(cls):
    type_ = registry.type_name(cls)
    match = re.fullmatch(r"connectors\.(sources|destinations)\.(.+)", cls.__module__)
    assert match, f"{cls.__name__} must live under connectors.sources or connectors.destinations"
    assert match.group(2).replace(".", "_") == type_, f"type {type_!r} must equal its module path"
    assert (match.group(1) == "sources") == issubclass(cls, Source)
    assert cls.Config.__name__ == f"{cls.__name__}Config"
    assert re.fullmatch(r"[a-z][a-z0-9_]*", type_)


def test_type_names_are_unique():
    assert len(IDS) == len(set(IDS))


@pytest.mark.parametrize("cls", CATALOGUE, ids=IDS)
def test_config_is_documented(cls):
    assert (cls.__doc__ or "").strip() and (cls.Config.__doc__ or "").strip()
    undocumented = [n for n, f in cls.Config.model_fields.items() if n != "type" and not f.description]
    assert not undocumented, f"fields without description: {undocumented}"


@pytest.mark.parametrize("cls", CATALOGUE, ids=IDS)
def test_example_validates_and_builds(cls):
    config = example_config(cls)
    built = (registry.build_source if issubclass(cls, Source) else registry.build_destination)(config, Context())
    assert isinstance(built, cls)


def sample_events(n: int) -> list[Event]:
    kinds = [EventKind.INTERACTION, EventKind.ITEM, EventKind.USER]
    events = []
    for i in range(n):
        kind = kinds[i % 3]
        record = {
            EventKind.INTERACTION: {"eventId": f"e{i}", "eventType": "Product Viewed", "sentAt": 1.7e9, "itemId": f"i{i % 7}"},
            EventKind.ITEM: {"itemId": f"i{i}", "properties": "{}"},
            EventKind.USER: {"userId": f"u{i % 3}", "properties": "{}"},
        }[kind]
        events.append(Event(kind=kind, source=SourceRef(source_id="conformance", message_id=f"m{i}"),
                            timestamp=1.7e9, name="Product Viewed",
                            user_id=f"u{i % 3}", session_id=f"s{i % 3}", record=record, raw={}))
    return events


def sample_rows(n: int) -> list[ExportRow]:
    shapes = ["recommendations", "segment"]
    return [ExportRow(shape=shapes[i % 2], source=SourceRef(source_id="conformance", message_id=f"run:{i}"),
                      timestamp=1.7e9, user_id=f"u{i}" if i % 2 == 0 else None,
                      record={"userId": f"u{i}", "items": [{"itemId": "i1"}]} if i % 2 == 0 else
                      {"itemId": f"i{i}", "users": ["u1"]})
            for i in range(n)]


@pytest.mark.parametrize("cls", [c for c in CATALOGUE if issubclass(c, Destination)],
                         ids=[registry.type_name(c) for c in CATALOGUE if issubclass(c, Destination)])
async def test_batches_never_exceed_max_events(cls):
    config = example_config(cls)
    assert isinstance(config, BatchedConfig)
    policy = config.batch_policy()
    assert policy.max_events >= 1
    destination = cls(config, Context())
    sizes: list[int] = []

    async def record_send(batch):
        sizes.append(len(batch))

    destination.start = _no_op  # no service behind the example config
    destination.close = _no_op
    destination.send = record_send
    runner = DestinationRunner(destination, policy, RetryPolicy())
    await runner.start()
    n = 9 * policy.max_events + 5
    events = [e for e in sample_events(n) if destination.accepts(e)] if destination.streams_events else []
    events += [r for r in sample_rows(n) if destination.accepts_row(r)]
    assert events, "the destination takes neither events nor rows"
    futures = [await runner.submit(e) for e in events]
    await asyncio.wait_for(asyncio.gather(*futures), 30)
    await runner.close()
    assert sum(sizes) == len(events) and max(sizes, default=0) <= policy.max_events


async def _no_op():
    return None
