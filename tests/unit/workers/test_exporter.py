"""The export of a slice: diff against the last sync, the ledger's states, failures, shards; all in process.

The ledger here is an in-memory stand-in with the Redis ledger's interface (its Lua runs in the
integration tests); destinations are in-process ones that record what they were sent.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import ClassVar, Literal

import pytest

from hub.connector import BatchPolicy, Context, ExportDestination, ExportDestinationConfig
from hub.delivery.retry import RetryPolicy
from hub.errors import PartialFailure, RejectedError, RetryableError
from hub.rows import ExportRow
from personalize_hub.jobs import Recipe
from workers import objects
from workers.exporter import Exporter
from workers.ledger import SENDING, SENT, UNCHANGED, UNKNOWN
from workers.outputs import Decorator, digest_of

FAST = RetryPolicy(base_delay_secs=0.001, max_delay_secs=0.002, max_attempts=3, max_elapsed_secs=5)


class MemoryLedger:
    """The Ledger interface over dicts: states per destination, last-sync digests, per-state counters."""

    def __init__(self):
        self.states: dict[str, dict[str, str]] = {}
        self.synced: dict[str, dict[str, str]] = {}
        self.counters: Counter[str] = Counter()
        self.pending: dict[str, dict[str, str]] = {}  # per job, like the sync digests

    def next_run(self) -> MemoryLedger:
        """The ledger of a later run of the same job: new states, the same digests and pending marks."""
        later = MemoryLedger()
        later.synced, later.pending = self.synced, self.pending
        return later

    async def lookup(self, destinations, recipients):
        return {d: ([self.states.get(d, {}).get(r) for r in recipients],
                    [self.synced.get(d, {}).get(r) for r in recipients],
                    [self.pending.get(d, {}).get(r) for r in recipients]) for d in destinations}

    async def settle(self, destination, states, synced=(), pending=()):
        ledger = self.states.setdefault(destination, {})
        marks = self.pending.setdefault(destination, {})
        for recipient, state in states:
            old = ledger.get(recipient)
            if old != state:
                ledger[recipient] = state
                self.counters[f"{destination}|{state}"] += 1
                if old:
                    self.counters[f"{destination}|{old}"] -= 1
            if state not in (SENDING, UNKNOWN):
                marks.pop(recipient, None)
        self.synced.setdefault(destination, {}).update(dict(synced))
        marks.update(dict(pending))


class RecorderConfig(ExportDestinationConfig):
    type: Literal["recorder"] = "recorder"
    api_limits: ClassVar[BatchPolicy] = BatchPolicy(max_events=3, max_wait_secs=0.0)


class Recorder(ExportDestination):
    """Records every row it is sent; `reject`, `unknown` and `flaky` users fail as their names say."""

    Config = RecorderConfig
    export_rows = frozenset({"recommendations"})

    def __init__(self, name: str, *, idempotent: bool = False, reject: frozenset[str] = frozenset(),
                 unknown: frozenset[str] = frozenset(), flaky: int = 0, accepts_only: frozenset[str] | None = None):
        super().__init__(RecorderConfig(id=name), Context())
        self.idempotent = idempotent
        self.sent: list[str] = []
        self.reject, self.unknown, self.flaky, self.accepts_only = reject, unknown, flaky, accepts_only

    def accepts_row(self, row: ExportRow) -> bool:
        return super().accepts_row(row) and (self.accepts_only is None or row.user_id in self.accepts_only)

    async def send(self, batch: Sequence[ExportRow]) -> None:
        if self.flaky:
            self.flaky -= 1
            raise RetryableError("503 from the service")
        failures = {i: RejectedError("bad_user", "refused") for i, e in enumerate(batch) if e.user_id in self.reject}
        failures |= {i: RejectedError("delivery_unknown", "timeout") for i, e in enumerate(batch)
                     if e.user_id in self.unknown}
        self.sent += [e.user_id for i, e in enumerate(batch) if i not in failures]
        if failures:
            raise PartialFailure(rejected=failures)


def output(users: Sequence[str], items=("i1", "i2")) -> bytes:
    return b"".join(json.dumps({"input": {"userId": u}, "output": {"recommendedItems": list(items),
                                                                   "scores": [0.5, 0.25]}, "error": None}).encode()
                    + b"\n" for u in users)


async def export(data: bytes, destinations, ledger, *, run_id="job-1", start=0, end=None, skip_first=False,
                 contacts=None, deadline_secs=60.0):
    exporter = Exporter(job="job", run_id=run_id, recipe=Recipe.USER_RECOMMENDATIONS,
                        decorator=Decorator(Recipe.USER_RECOMMENDATIONS, "job", run_id, None, False),
                        ledger=ledger, destinations=destinations, retry=FAST, contacts=contacts)

    async def chunks():
        yield data[start:]

    return await exporter.run(objects.line_batches(chunks(), start), start=start, end=end, skip_first=skip_first,
                              deadline=time.monotonic() + deadline_secs)


def user_digest(items=("i1", "i2")) -> str:
    return digest_of([{"itemId": i, "score": s} for i, s in zip(items, (0.5, 0.25))], None, {})


USERS = [f"u{i}" for i in range(10)]


async def test_first_run_sends_everyone_then_a_new_run_sends_nothing():
    ledger, braze, mail = MemoryLedger(), Recorder("braze", idempotent=True), Recorder("mail")
    stats = await export(output(USERS), [braze, mail], ledger)
    assert stats.finished and stats.lines == 10 and stats.next_offset == len(output(USERS))
    assert sorted(braze.sent) == sorted(mail.sent) == USERS
    assert ledger.counters["braze|sent"] == ledger.counters["mail|sent"] == 10 and ledger.counters["mail|sending"] == 0
    assert ledger.synced["mail"]["u3"] == user_digest()

    next_run = MemoryLedger()  # a ledger is per run; the last-sync digests are per job
    next_run.synced = ledger.synced
    braze2, mail2 = Recorder("braze", idempotent=True), Recorder("mail")
    await export(output(USERS), [braze2, mail2], next_run, run_id="job-2")
    assert braze2.sent == mail2.sent == []
    assert next_run.counters["mail|unchanged"] == next_run.counters["braze|unchanged"] == 10


async def test_changed_recommendations_are_sent_again():
    ledger = MemoryLedger()
    ledger.synced["mail"] = {u: user_digest() for u in USERS}
    ledger.synced["mail"]["u4"] = user_digest(("i2", "i1"))
    mail = Recorder("mail")
    await export(output(USERS), [mail], ledger)
    assert mail.sent == ["u4"] and ledger.states["mail"]["u1"] == UNCHANGED


async def test_a_redelivered_slice_sends_nothing_twice_and_in_flight_sends_are_unknown_or_resent():
    ledger = MemoryLedger()
    # What a killed worker left: u0-u3 sent, u4 in flight; for both destinations.
    for name in ("braze", "mail"):
        ledger.states[name] = {**{f"u{i}": SENT for i in range(4)}, "u4": SENDING}
    braze, mail = Recorder("braze", idempotent=True), Recorder("mail")
    await export(output(USERS), [braze, mail], ledger)
    assert sorted(braze.sent) == [f"u{i}" for i in range(4, 10)]  # an overwrite: u4 is safe to send again
    assert sorted(mail.sent) == [f"u{i}" for i in range(5, 10)]  # no idempotency key: u4 is not resent
    assert ledger.states["mail"]["u4"] == UNKNOWN and ledger.states["braze"]["u4"] == SENT
    assert ledger.synced["mail"]["u0"] == user_digest()  # sent before the crash: last sync recorded now


async def test_a_later_run_does_not_resend_what_an_earlier_run_left_unknown():
    ledger = MemoryLedger()
    mail = Recorder("mail", unknown=frozenset({"u2"}))
    await export(output(USERS), [mail], ledger)
    assert ledger.states["mail"]["u2"] == UNKNOWN and ledger.pending["mail"]["u2"].endswith(":job-1")
    # A new run id (a new ledger) with the same content: u2 may have its mail already, so it is not sent.
    later, mail2 = ledger.next_run(), Recorder("mail")
    await export(output(USERS), [mail2], later, run_id="job-2")
    assert mail2.sent == [] and later.states["mail"]["u2"] == UNKNOWN
    # New content for u2 is a new message: sent.
    mail3 = Recorder("mail")
    await export(output(["u2"], items=("i9", "i8")), [mail3], later.next_run(), run_id="job-3")
    assert mail3.sent == ["u2"] and "u2" not in ledger.pending["mail"]


class Confirming(Recorder):
    """A recorder that can say whether an earlier send arrived: it looks its message id up."""

    def __init__(self, name: str, arrived: set[str]):
        super().__init__(name)
        self.arrived, self.asked = arrived, []

    async def delivery_status(self, batch):
        self.asked += [e.message_id for e in batch]
        return [e.message_id in self.arrived for e in batch]


async def test_sends_a_crash_cut_off_are_asked_about_when_the_destination_can_tell():
    ledger = MemoryLedger()
    ledger.states["mail"] = {"u1": SENDING, "u2": SENDING}  # this run crashed mid-send
    ledger.pending["mail"] = {"u3": f"{user_digest()}:job-0", "u4": f"{user_digest()}:job-0"}  # an earlier run did
    mail = Confirming("mail", arrived={"job-1:u1", "job-0:u3"})
    await export(output(USERS), [mail], ledger, run_id="job-1")
    assert sorted(mail.asked) == ["job-0:u3", "job-0:u4", "job-1:u1", "job-1:u2"]
    assert sorted(mail.sent) == sorted(set(USERS) - {"u1", "u3"})  # what never arrived is sent, once
    assert all(ledger.states["mail"][u] == SENT for u in USERS) and ledger.pending["mail"] == {}
    assert ledger.synced["mail"]["u3"] == user_digest()


async def test_failures_are_recorded_with_reasons_and_retried_only_when_definite():
    ledger = MemoryLedger()
    mail = Recorder("mail", reject=frozenset({"u1"}), unknown=frozenset({"u2"}), flaky=1,
                    accepts_only=frozenset(USERS) - {"u3"})
    await export(output(USERS), [mail], ledger)
    states = ledger.states["mail"]
    assert states["u1"] == "failed:bad_user" and states["u2"] == UNKNOWN and states["u3"] == "failed:not_accepted"
    assert sorted(mail.sent) == sorted(set(USERS) - {"u1", "u2", "u3"})  # the 503 was retried by the runner
    assert "u1" not in ledger.synced["mail"] and "u2" not in ledger.synced["mail"]
    mail_again = Recorder("mail")
    await export(output(USERS), [mail_again], ledger)  # the same run again: settled failures stay settled
    assert mail_again.sent == []


async def test_a_user_twice_in_the_output_is_sent_once():
    mail = Recorder("mail")
    await export(output(["u1", "u2", "u1", "u1"]), [mail], MemoryLedger())
    assert sorted(mail.sent) == ["u1", "u2"]


async def test_malformed_lines_are_counted_and_quoted_not_fatal():
    data = output(["u1"]) + b'{"input": {"userId": "u2"\n' + output(["u3"]) + b'{"input":{"userId":"u4"},"error":"x"}\n'
    mail = Recorder("mail")
    stats = await export(data, [mail], MemoryLedger())
    assert mail.sent == ["u1", "u3"] and stats.lines == 4
    assert stats.errors == {"invalid_json": 1, "personalize_error": 1} and len(stats.samples) == 2


async def test_contacts_add_email_and_attributes():
    async def contacts(keys):
        return [{"email": f"{k}@shop.example", "attributes": {"tier": "gold"}} if k != "u2" else None for k in keys]

    class Capture(Recorder):
        async def send(self, batch):
            self.records = getattr(self, "records", []) + [e.record for e in batch]

    capture = Capture("mail")
    await export(output(["u1", "u2"]), [capture], MemoryLedger(), contacts=contacts)
    by_user = {r["userId"]: r for r in capture.records}
    assert by_user["u1"]["email"] == "u1@shop.example" and by_user["u1"]["attributes"] == {"tier": "gold"}
    assert "email" not in by_user["u2"] and by_user["u2"]["attributes"] == {}


@pytest.mark.parametrize("shards", [2, 3, 7])
async def test_shards_split_the_output_on_line_boundaries(shards):
    data = output(USERS)
    mail = Recorder("mail")
    ledger = MemoryLedger()
    total = 0
    for shard in range(shards):
        start, end = shard * len(data) // shards, (None if shard == shards - 1 else (shard + 1) * len(data) // shards)
        skip = start > 0
        stats = await export(data, [mail], ledger, start=start - 1 if skip else start, end=end, skip_first=skip)
        assert stats.finished
        total += stats.lines
    assert total == 10 and sorted(mail.sent) == USERS


async def test_a_slice_stops_at_its_deadline_and_says_where_to_continue():
    data = output([f"u{i}" for i in range(2500)])
    mail = Recorder("mail")
    stats = await export(data, [mail], MemoryLedger(), deadline_secs=0)
    assert not stats.finished and stats.lines == 1000  # one chunk, then the deadline
    assert data[stats.next_offset - 1:stats.next_offset] == b"\n"
    rest = await export(data, [mail], MemoryLedger(), start=stats.next_offset)
    assert rest.finished and rest.lines == 1500 and len(mail.sent) == 2500


async def test_outcomes_that_cannot_be_recorded_fail_the_slice_so_it_runs_again():
    class BrokenLedger(MemoryLedger):
        async def settle(self, destination, states, synced=(), pending=()):
            if any(state == SENT for _, state in states):
                raise ConnectionError("Redis went away")
            await super().settle(destination, states, synced, pending)

    with pytest.raises(ConnectionError):
        await export(output(USERS), [Recorder("braze", idempotent=True)], BrokenLedger())
