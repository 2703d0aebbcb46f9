"""The JSON Lines file destination: close waits for a write still running in its thread; what `encoding` writes."""

from __future__ import annotations

import asyncio
import threading

import orjson

from connectors.destinations.file import FileDestination, FileDestinationConfig
from hub.connector import Context


async def test_close_waits_for_a_write_in_flight(tmp_path):
    path = tmp_path / "dead.jsonl"
    sink = FileDestination(FileDestinationConfig(type="file", path=path), Context())
    await sink.start()
    in_thread, release = threading.Event(), threading.Event()
    write = sink._write

    def slow_write(data: bytes) -> None:
        in_thread.set()
        release.wait(5)
        write(data)

    sink._write = slow_write  # type: ignore[method-assign]
    writing = asyncio.create_task(sink.write_records([{"n": 1}]))
    await asyncio.to_thread(in_thread.wait, 5)
    closing = asyncio.create_task(sink.close())
    await asyncio.sleep(0.05)
    release.set()
    await asyncio.gather(writing, closing)
    assert [orjson.loads(line) for line in path.read_bytes().splitlines()] == [{"n": 1}]


def _hub_context(mapping_enabled: bool) -> Context:
    from personalize_hub.config import parse_config
    from personalize_hub.runtime import provide

    context = Context()
    provide(context, parse_config({"mapping": {"enabled": mapping_enabled}}, {}))
    return context


async def test_encoding_writes_personalize_records_or_events_and_the_default_follows_the_mapping(tmp_path):
    from hub.events import Event, EventKind, SourceRef

    viewed = Event(kind=EventKind.INTERACTION, source=SourceRef(source_id="web", message_id="m1"), timestamp=1.7e9,
                   name="Product Viewed", call="track", user_id="u1", session_id="s1",
                   properties={"product_id": "p1"}, raw={"messageId": "m1"})
    record = {"userId": "u1", "sessionId": "s1", "eventId": "m1", "eventType": "Product Viewed", "sentAt": 1.7e9,
              "itemId": "p1"}
    cases = [(None, True, record), ("personalize", True, record), ("event", True, None), (None, False, None)]
    for n, (encoding, mapping_enabled, expected) in enumerate(cases):
        path = tmp_path / f"{n}.jsonl"
        destination = FileDestination(FileDestinationConfig(type="file", path=path, encoding=encoding),
                                      _hub_context(mapping_enabled))
        ((unit,),) = destination.encode([viewed])
        await destination.send([unit])
        await destination.close()
        (line,) = [orjson.loads(text) for text in path.read_bytes().splitlines()]
        if expected is not None:
            assert line == expected, (encoding, mapping_enabled)
        else:  # the hub's Event JSON, without the raw payload (that is the dead letter's)
            assert line["source"]["message_id"] == "m1" and line["properties"] == {"product_id": "p1"}
            assert "raw" not in line and "record" not in line


def test_kafka_topics_former_payload_option_still_reads():
    import pytest

    from connectors.destinations.kafka_topic import KafkaTopicConfig

    base = {"type": "kafka_topic", "bootstrap_servers": "k:9092", "topic": "t"}
    assert KafkaTopicConfig(**base, payload="record").encoding == "personalize"
    assert KafkaTopicConfig(**base, payload="event").encoding == "event"
    assert KafkaTopicConfig(**base).encoding is None  # raw, as before
    with pytest.raises(ValueError, match="set `encoding` only"):
        KafkaTopicConfig(**base, payload="raw", encoding="raw")
