"""Encoding, for every streaming destination and each encoding it offers: one result per routed event, every
refusal a Rejection with a reason code for that input, and through the pipeline each input settles exactly
once: delivered, or dead-lettered once with its reason (before anything of it is sent)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from connectors import CATALOGUE
from hub.connector import Context, Destination, Outcome
from hub.delivery.dead_letter import DeadLetter
from hub.delivery.runner import DestinationRunner
from hub.events import Rejection
from hub.pipeline import Pipeline
from personalize_hub import registry
from tests.conformance.harness import ScriptedService, example_config, sample_events
from tests.conformance.test_settlement import BUDGET
from tests.unit.hub.fakes import ListSink

STREAMING = [c for c in CATALOGUE if issubclass(c, Destination) and c.streams_events]
CASES = [(cls, encoding) for cls in STREAMING
         for encoding in ([None, "personalize"] if "encoding" in cls.Config.model_fields else [None])]
IDS = [registry.type_name(cls) + (f"-{encoding}" if encoding else "") for cls, encoding in CASES]
REASON = re.compile(r"[a-z]+(_[a-z]+)*")


def build(cls, encoding: str | None) -> Destination:
    config = example_config(cls)
    if encoding is not None:
        config = config.model_copy(update={"encoding": encoding})
    return cls(config, Context())


@pytest.mark.parametrize("cls, encoding", CASES, ids=IDS)
async def test_encoding_refuses_per_event_with_a_reason_and_each_input_settles_once(cls, encoding):
    destination = build(cls, encoding)
    events = [e for e in sample_events(60, broken_every=5) if destination.accepts(e)]
    assert events, "the samples hold events this destination takes"

    results = destination.encode(events)
    assert len(results) == len(events)  # one result per routed event, in order
    refused: set[str] = set()
    for event, result in zip(events, results, strict=True):
        for part in [result] if isinstance(result, Rejection) else result:
            if isinstance(part, Rejection):
                assert REASON.fullmatch(part.reason) and part.message, part
                assert part.source.message_id.split(":")[0] == event.message_id  # its input, or a part of it
                refused.add(event.message_id)
            else:
                assert part.source.message_id.split(":")[0] == event.message_id

    destination = build(cls, encoding)  # fresh encoder state for the run through the pipeline
    service = ScriptedService(lambda message_id, attempt: "ok")
    destination.start = destination.close = _no_op  # type: ignore[method-assign] - no service behind it
    destination.send = service.send  # type: ignore[method-assign]
    runner = DestinationRunner(destination, destination.config.batch_policy(), BUDGET)
    await runner.start()
    sink = ListSink()
    report = await Pipeline([], [runner], DeadLetter(sink, BUDGET)).emit(events)
    await runner.close()

    assert len(report.outcomes) == len(events)
    dead = Counter(record["source"]["message_id"].split(":")[0] for record in sink.records)
    sent = {message_id.split(":")[0] for message_id in service.delivered}
    for event, outcome in zip(events, report.outcomes, strict=True):
        if event.message_id in refused:
            assert outcome is Outcome.REJECTED and dead[event.message_id] == 1
            assert event.message_id not in sent  # refused while encoding: nothing of it was sent
        else:
            assert outcome is Outcome.DELIVERED and dead[event.message_id] == 0
    assert all(REASON.fullmatch(record["reason"]) for record in sink.records)
    if encoding == "personalize" or registry.type_name(cls).startswith("personalize"):
        assert refused  # the samples' broken events lack the ids a Personalize record needs


async def _no_op() -> None:
    return None
