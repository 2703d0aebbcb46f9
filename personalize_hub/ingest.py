"""The hub's HTTP app: health, readiness, Prometheus metrics, every webhook source's routes, /recommendations."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from personalize_hub.recommendations.endpoint import mount as mount_recommendations
from personalize_hub.runtime import Hub


log = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD = 1_000_000  # net allocations between young collections (CPython's default: 700; why: lifespan)
GC_MIDDLE_THRESHOLD = 100  # young collections between middle-generation ones (CPython's default: 10)


def build_app(hub: Hub, *, bound_host: str | None = None, config_path: str | None = None,
              take_input: bool = True) -> Starlette:
    """A Starlette app whose lifespan starts and stops the hub (and its console, unless disabled).

    With `take_input=False` (`hub console`) no source runs and no webhook is mounted: delivery is opened
    only so that the console can replay the dead letter.
    """
    from personalize_hub.console import Console

    async def healthz(request: Request) -> Response:
        if hub.failed_sources:
            return JSONResponse({"status": "failing", "failed_sources": hub.failed_sources}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        # Not ready also when deliveries fail for a reason no retry fixes alone (credentials missing,
        # engine unreachable): the answer names it per destination, so nobody has to dig through logs.
        failing = {runner.name: runner.failing for runner in hub.runners if runner.failing}
        ready = hub.started and not hub.failed_sources and not failing
        body: dict[str, object] = {"ready": ready}
        if not hub.started:
            body["cause"] = "starting or stopping"
        if hub.failed_sources:
            body["failed_sources"] = hub.failed_sources
        if failing:
            body["failing_destinations"] = failing
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    routes_by_source: dict[str, list[str]] = {}
    for source in hub.webhook_sources if take_input else ():
        mounted = source.routes(hub.pipeline.emit)
        routes_by_source[source.config.id] = [getattr(route, "path", "") for route in mounted]
        routes += mounted
    console = None
    if hub.config.console.enabled:
        console = Console(hub, bound_host=bound_host or hub.config.http.host, routes_by_source=routes_by_source,
                          config_path=config_path)
        routes += console.routes()
    recommendations = mount_recommendations(hub.config, hub.context)  # None unless recommendations.enabled
    if recommendations is not None:
        routes += recommendations.routes()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await (hub.start() if take_input else hub.start_delivery())
        log_layout(hub, routes_by_source)
        if console is not None:
            await console.start()
        # Everything built so far lives as long as the process: out of the collector's reach, a full
        # collection walks only what requests allocate (tens of ms → under 1 ms), which keeps p99 short
        # (bench/recommendations_endpoint.py). Garbage is collected first so that none is pinned.
        gc.collect()
        gc.freeze()
        # Micro-batches in flight (thousands of decoded events, all containers) survive young collections
        # and, promoted, trigger full ones: at the default 700 allocations the collector took ~35% of a
        # Kafka → PutEvents hub's CPU (bench/streaming_throughput.py). Events hold no cycles; refcounting
        # frees them, so collecting less often only delays the rare cyclic garbage. The micro-batches a Kafka
        # partition keeps in flight (pipelined, up to max_batch_records) live long enough to be promoted: a
        # middle-generation collection every 10 young ones walked them again and again: with the full ones, 12%
        # of the hub's CPU (gc.callbacks, timed); every 100, 5%. Each walk costs what is alive: no longer pauses.
        # Young collections every 10,000 net allocations still walked and promoted what was in flight (~100k
        # objects; a micro-batch allocates ~16 per event in one burst): ~10% of the hub's CPU with the quota lifted.
        # Every 1,000,000, most of it is freed by refcount before a collection comes (70 → 62 µs per event); a
        # 200k-event run left 135 objects in cycles for the collector.
        previous_threshold = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD, GC_MIDDLE_THRESHOLD, previous_threshold[2])
        try:
            yield
        finally:
            gc.set_threshold(*previous_threshold)
            if console is not None:
                await console.stop()
            await hub.stop()
            if recommendations is not None:
                await recommendations.close()

    return Starlette(routes=routes, lifespan=lifespan)


def log_layout(hub: Hub, mounted: dict[str, list[str]]) -> None:
    """One startup line per source (with its routes) and per destination: what this process serves."""
    for source in hub.sources:
        where = ", ".join(mounted.get(source.config.id, [])) or "pulls (no HTTP routes)"
        log.info("source %s (%s): %s", source.config.id, getattr(source.config, "type", type(source).__name__), where)
    for destination in hub.destinations:
        log.info("destination %s (%s)", destination.config.id, destination.config.type)
    log.info("dead letter %s (%s)", hub.config.dead_letter.id, hub.config.dead_letter.type)
