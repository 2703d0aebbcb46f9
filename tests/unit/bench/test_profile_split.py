"""bench/_profile_split.py: each py-spy sample goes to the innermost frame somebody owns."""

from __future__ import annotations

from bench._profile_split import EVENT_LOOP, report, split

LOOP = "Runner.run (asyncio/runners.py:118)"


def test_samples_go_to_the_innermost_owned_frame(tmp_path):
    profile = tmp_path / "hub.raw"
    profile.write_text("\n".join([
        f"{LOOP};IdentityStage.apply (hub/identity/stage.py:60);RecordCache.get_many (hub/identity/store.py:90) 6",
        f"{LOOP};Flow._run (connectors/sources/kafka_partitions.py:10);Fetcher.getmany (aiokafka/consumer/fetcher.py:5) 3",
        f"{LOOP} 4",  # the loop's own C, seen from its only Python frame
        f"{LOOP};PersonalizeEvents.send (connectors/destinations/personalize/events.py:1);"
        "_Connection.send (connectors/http1.py:80);write (libc.so.6) 2",  # --native: the syscall, not the hub
        f"{LOOP};decode (connectors/formats/segment.py:9);json_decode (msgspec/_core.cpython-311.so) 1",
        f"{LOOP};helper (other_lib/util.py:3) 1",
    ]) + "\n")
    assert split(profile) == {
        "hub: identity": 6, "aiokafka": 3, EVENT_LOOP: 4, "syscalls": 2, "msgspec (C)": 1,
        "other Python (stdlib, other libraries)": 1,
    }
    text = report(profile, us_per_event=17.0)
    assert "the hub's own code: 35% = 6.0 µs/event" in text
    assert "what it runs on: 65% = 11.0 µs/event" in text
