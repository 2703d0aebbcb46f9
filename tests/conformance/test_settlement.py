"""Settlement, for every destination through one harness: each member settles exactly once (delivered,
rejected with its reason, or retry), partial failures fail only their members, batches keep the policy."""

from __future__ import annotations

import zlib
from collections import Counter

import pytest

from connectors import CATALOGUE
from hub.connector import Context, Destination, Outcome
from hub.delivery.retry import RetryPolicy
from personalize_hub import registry
from tests.conformance.harness import ScriptedService, example_config, members_for, settle

DESTINATIONS = [c for c in CATALOGUE if issubclass(c, Destination)]
IDS = [registry.type_name(c) for c in DESTINATIONS]
BUDGET = RetryPolicy(base_delay_secs=0.001, max_delay_secs=0.002, max_attempts=3, max_elapsed_secs=20)


def build(cls) -> Destination:
    return cls(example_config(cls), Context())


def fate_of(message_id: str, attempt: int) -> str:
    """A fixed mix: some refused for good, some failing once then accepted, some failing past the budget."""
    bucket = zlib.crc32(message_id.encode()) % 10
    if bucket == 0:
        return "reject"
    if bucket == 1:
        return "retry" if attempt == 1 else "ok"
    if bucket == 2:
        return "retry"
    return "ok"


@pytest.mark.parametrize("cls", DESTINATIONS, ids=IDS)
async def test_every_member_settles_exactly_once_and_partial_failures_fail_only_their_members(cls):
    destination = build(cls)
    policy = destination.config.batch_policy()
    members = members_for(destination, max(4 * policy.max_events + 7, 60))
    service = ScriptedService(fate_of)
    settlements = await settle(destination, members, service, BUDGET)

    assert len(settlements) == len(members)
    assert {s.outcome for s in settlements} == set(Outcome)  # the mix holds every way to settle
    delivered = Counter(service.delivered)
    for member, settlement in zip(members, settlements, strict=True):
        expected = {"reject": Outcome.REJECTED, "retry": Outcome.RETRY}.get(fate_of(member.message_id, 2),
                                                                            Outcome.DELIVERED)
        assert settlement.outcome is expected, member.message_id
        assert delivered[member.message_id] == (1 if expected is Outcome.DELIVERED else 0)  # never twice
        if expected is Outcome.REJECTED:
            assert settlement.reason == "scripted_reject" and service.attempts[member.message_id] == 1
        if expected is Outcome.RETRY:
            assert service.attempts[member.message_id] == BUDGET.max_attempts  # the budget, then RETRY


@pytest.mark.parametrize("cls", DESTINATIONS, ids=IDS)
async def test_batches_never_exceed_the_batch_policy(cls):
    destination = build(cls)
    policy = destination.config.batch_policy()
    assert policy.max_events >= 1
    members = members_for(destination, 9 * policy.max_events + 5)
    sizes = {member.message_id: destination.size_of(member) for member in members}
    service = ScriptedService(lambda message_id, attempt: "ok")
    await settle(destination, members, service, BUDGET)

    assert sorted(service.delivered) == sorted(sizes)
    assert max(map(len, service.batches)) <= policy.max_events
    if policy.max_bytes is not None:
        assert max(sum(sizes[i] for i in batch) for batch in service.batches) <= policy.max_bytes
