"""Every webhook source, fuzzed over ASGI: bad bodies, credentials and records never crash the hub.

The harness (strategies, one Dialect per source endpoint, the checks) is tests/fixtures/fuzz/;
tests/integration/test_fuzz_sources.py runs the same checks over real HTTP and Kafka.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from personalize_hub.config import parse_config
from personalize_hub.ingest import build_app
from personalize_hub.runtime import Hub
from tests.fixtures.fuzz.checks import (
    JsonLines,
    any_body,
    build_mixed_request,
    check_any_answer,
    check_mixed_outcome,
    credentials_for,
    mixed_plans,
)
from tests.fixtures.fuzz.sources import DIALECTS_BY_NAME, ENDPOINTS, WEBHOOK_DIALECTS, hub_config

# One hub serves every example of a test (examples are told apart by request id and record markers),
# so hypothesis's warning about function-scoped fixtures does not apply.
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                      HealthCheck.data_too_large])


@dataclass
class RunningHub:
    client: httpx.AsyncClient
    delivered: JsonLines
    dead_letter: JsonLines


@pytest.fixture
async def hub(tmp_path):
    hub = Hub(parse_config(hub_config(WEBHOOK_DIALECTS, tmp_path), {}))
    app = build_app(hub)
    await hub.start()
    # raise_app_exceptions=False: an unhandled error becomes the 500 a real server would answer,
    # which the checks then report with the request that caused it.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub", timeout=30) as client:
        yield RunningHub(client, JsonLines(tmp_path / "delivered.jsonl"), JsonLines(tmp_path / "dead-letter.jsonl"))
    await hub.stop()


@pytest.mark.parametrize("dialect_name", DIALECTS_BY_NAME)
@settings(FUZZ, max_examples=150)
@given(data=st.data())
async def test_bad_records_are_dead_lettered_and_good_ones_beside_them_delivered(hub, dialect_name, data):
    dialect = DIALECTS_BY_NAME[dialect_name]
    plan = data.draw(mixed_plans(dialect), label="plan (None = a good record)")
    request = build_mixed_request(dialect, plan, uuid.uuid4().hex)
    response = await hub.client.post(dialect.path, content=request.body, headers=request.headers)
    check_mixed_outcome(dialect, request, response.status_code, response.content,
                        hub.delivered.new(), hub.dead_letter.new())


@settings(FUZZ, max_examples=400)
@given(data=st.data())
async def test_any_request_is_answered_with_a_reason_and_never_crashes(hub, data):
    endpoint = data.draw(st.sampled_from(ENDPOINTS), label="endpoint")
    body = data.draw(any_body(endpoint.max_body_bytes), label="body")
    valid, headers = data.draw(credentials_for(endpoint), label="credentials")
    request_id = uuid.uuid4().hex
    response = await hub.client.post(endpoint.path, content=body, headers={**headers, "X-Request-Id": request_id})
    check_any_answer(endpoint, valid, response.status_code, response.content,
                     hub.delivered.new(), hub.dead_letter.new(), request_id)
    assert (await hub.client.get("/healthz")).status_code == 200
