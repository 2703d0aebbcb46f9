"""Fetches Avro writer schemas by id from a Confluent-compatible Schema Registry, cached for good."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

import httpx
from fastavro.types import Schema

from connectors.formats import avro
from hub.errors import RejectedError, RetryableError

# Confluent Schema Registry REST API: GET /schemas/ids/{id} answers {"schema": "<schema as a JSON string>",
# "schemaType": ...}; schemaType is omitted for AVRO; an unknown id is 404 with error_code 40403.
_SCHEMA_NOT_FOUND = 40403
_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class SchemaRegistry:
    """Schema ids → parsed Avro schemas. A registered schema never changes under its id, so every
    schema is fetched once per process; concurrent requests for one id share one fetch.
    """

    def __init__(
        self,
        url: str,
        *,
        auth: tuple[str, str] | None = None,
        timeout_secs: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"), auth=auth, timeout=timeout_secs, transport=transport,
            headers={"Accept": _CONTENT_TYPE},
        )
        self._schemas: dict[int, Schema] = {}
        self._fetching: dict[int, asyncio.Task[Schema]] = {}
        self.fetches = 0  # HTTP requests made; the cache's effect is visible in tests and metrics

    def cached(self, schema_id: int) -> Schema | None:
        return self._schemas.get(schema_id)

    async def prefetch(self, schema_ids: Iterable[int]) -> dict[int, RejectedError]:
        """Fetch every id not cached yet; returns the ids that can never resolve (unknown, not Avro).

        Raises RetryableError when the registry cannot be reached: nothing should be dead-lettered
        because of an outage, the caller backs off and tries again.
        """
        missing = {i for i in schema_ids if i not in self._schemas}
        results = await asyncio.gather(*(self.schema(i) for i in missing), return_exceptions=True)
        failures: dict[int, RejectedError] = {}
        for schema_id, result in zip(missing, results, strict=True):
            if isinstance(result, RejectedError):
                failures[schema_id] = result
            elif isinstance(result, BaseException):
                raise result
        return failures

    async def schema(self, schema_id: int) -> Schema:
        found = self._schemas.get(schema_id)
        if found is not None:
            return found
        task = self._fetching.get(schema_id)
        if task is None:
            task = self._fetching[schema_id] = asyncio.create_task(self._fetch(schema_id))
            task.add_done_callback(lambda _: self._fetching.pop(schema_id, None))
        return await asyncio.shield(task)

    async def _fetch(self, schema_id: int) -> Schema:
        self.fetches += 1
        try:
            response = await self._client.get(f"/schemas/ids/{schema_id}")
        except httpx.HTTPError as err:
            raise RetryableError(f"schema registry unreachable: {err!r}") from err
        # Only the registry's own "schema not found" condemns a message; any other 404 (a wrong URL
        # path, a proxy) is a configuration problem, and dead-lettering the whole topic would hide it.
        if response.status_code == 404 and _error_code(response) == _SCHEMA_NOT_FOUND:
            raise RejectedError("unknown_schema", f"schema id {schema_id}: not in the schema registry")
        if response.status_code != 200:
            # 401/403 and 5xx are the registry's or the config's problem, not the message's: retry.
            raise RetryableError(f"schema registry answered {response.status_code} for schema id {schema_id}")
        try:
            body = response.json()
            schema_type = body.get("schemaType", "AVRO")
            text = body["schema"]
        except (ValueError, KeyError, AttributeError):
            raise RetryableError(f"schema registry answered an unreadable body for schema id {schema_id}") from None
        if schema_type != "AVRO":
            raise RejectedError("unsupported_schema", f"schema id {schema_id}: {schema_type}, not AVRO")
        parsed = avro.parse_schema(text)
        self._schemas[schema_id] = parsed
        return parsed

    async def close(self) -> None:
        await self._client.aclose()


def _error_code(response: httpx.Response) -> int | None:
    try:
        return json.loads(response.content).get("error_code")
    except (ValueError, AttributeError):
        return None
