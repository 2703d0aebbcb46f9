"""The console's routes under /console: HTML pages, their live fragments, the JSON API and the SSE stream."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from personalize_hub.console.auth import COOKIE, CSRF_FIELD, Access, ConsoleAuth
from personalize_hub.console.backend import ConsoleBackend, DeadLetterQuery, ReplayBusy
from personalize_hub.console.redact import Redactor
from personalize_hub.console.ring import EventRing, Sighting, SightingFilter

MAX_EVENTS = 500  # per API answer or page; the ring may hold more
STREAM_FRAME_EVENTS = 100  # per SSE frame: ~400 events/s is more than a person reads; the newest win
STREAM_KEEPALIVE_SECS = 15.0  # an SSE comment this often keeps proxies from closing an idle stream
STREAM_COALESCE_SECS = 0.25
STREAM_MAX_SECS = 600.0  # then the browser reconnects (with Last-Event-ID): no stream lives forever  # a stream sends at most ~4 frames a second, however fast events arrive
STATIC = Path(__file__).parent / "static"

_templates = Environment(loader=PackageLoader("personalize_hub.console", "templates"),
                         autoescape=select_autoescape(["html", "j2"]))
_templates.filters["tojson_pretty"] = lambda value: json.dumps(value, indent=2, default=str, ensure_ascii=False)


def console_routes(backend: ConsoleBackend, ring: EventRing, auth: ConsoleAuth, redact: Redactor) -> list[BaseRoute]:
    """Everything under /console; each handler checks access first."""

    def sighting_dict(s: Sighting) -> dict[str, Any]:
        return {"seq": s.seq, "time": datetime.fromtimestamp(s.time).astimezone().isoformat(timespec="milliseconds"),
                "source": s.source, "name": s.name, "user_id": s.user_id, "anonymous_id": s.anonymous_id,
                "raw": redact(s.raw), "records": redact(s.records()), "outcome": s.outcome, "reason": s.reason}

    def page(request: Request, template: str, access: Access, status: int = 200, **values: Any) -> HTMLResponse:
        html = _templates.get_template(template).render(
            request=request, writable=access is Access.WRITE, csrf=auth.csrf_value if access is Access.WRITE else "",
            token_configured=auth.token is not None, **values)
        return HTMLResponse(html, status_code=status)

    def guard(handler, *, write: bool = False, html: bool = False):
        async def endpoint(request: Request) -> Response:
            if not auth.served:
                return _refuse(html, 403, "the console is off: set console.token to serve it on a non-loopback address")
            access = auth.access(request)
            if access is Access.NONE:
                if html:
                    return page(request, "login.html.j2", access, status=401, next=request.url.path, error=None)
                return JSONResponse({"error": "unauthorized", "message": "a console token is required"},
                                    status_code=401, headers={"WWW-Authenticate": 'Bearer realm="hub console"'})
            if write:
                if access is not Access.WRITE:
                    return _refuse(html, 403, "the console is read-only without console.token")
                form_value = None
                if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                    form_value = str((await request.form()).get(CSRF_FIELD, ""))
                if not auth.csrf_ok(request, form_value):
                    return _refuse(html, 403, "missing or wrong CSRF token")
            return await handler(request, access)

        return endpoint

    # -- pages ------------------------------------------------------------------------------------------

    async def overview_page(request: Request, access: Access) -> Response:
        return page(request, "overview.html.j2", access, overview=await backend.overview(), active="overview")

    async def overview_fragment(request: Request, access: Access) -> Response:
        html = _templates.get_template("overview_body.html.j2").render(overview=await backend.overview())
        return HTMLResponse(html)

    async def events_page(request: Request, access: Access) -> Response:
        where = _sighting_filter(request)
        events = [sighting_dict(s) for s in ring.newest(MAX_EVENTS, where)]
        return page(request, "events.html.j2", access, events=events, where=where, ring_size=ring.size,
                    active="events")

    async def dead_letter_page(request: Request, access: Access) -> Response:
        query = _dead_letter_query(request)
        listing = await asyncio.to_thread(backend.dead_letter, query, _limit(request, 200))
        return page(request, "dead_letter.html.j2", access, listing=listing, query=query, active="dead-letter",
                    progress=backend.replay_progress)

    async def dead_letter_record_page(request: Request, access: Access) -> Response:
        record = await asyncio.to_thread(backend.dead_letter_record, int(request.path_params["index"]))
        if record is None:
            return _refuse(True, 404, "no such dead-letter record")
        return page(request, "dead_letter_record.html.j2", access, record=record, active="dead-letter")

    async def jobs_page(request: Request, access: Access) -> Response:
        jobs, lifecycle = await asyncio.gather(asyncio.to_thread(backend.jobs), asyncio.to_thread(backend.lifecycle))
        return page(request, "jobs.html.j2", access, jobs=jobs, lifecycle=lifecycle, active="jobs")

    async def config_page(request: Request, access: Access) -> Response:
        return page(request, "config.html.j2", access, config=await asyncio.to_thread(backend.effective_config),
                    active="config")

    # -- login ----------------------------------------------------------------------------------------

    async def login(request: Request) -> Response:
        if request.method == "GET" or auth.token is None:
            return page(request, "login.html.j2", auth.access(request), next="/console/", error=None)
        if not _same_origin(request):
            return _refuse(True, 403, "login from another site")
        form = await request.form()
        target = str(form.get("next") or "/console/")
        if not target.startswith("/console"):
            target = "/console/"
        if not auth.token_matches(str(form.get("token", ""))):
            return page(request, "login.html.j2", Access.NONE, status=401, next=target, error="wrong token")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, auth.session_value, httponly=True, samesite="strict", path="/console",
                            secure=request.url.scheme == "https")
        return response

    async def logout(request: Request, access: Access) -> Response:
        response = RedirectResponse("/console/login", status_code=303)
        response.delete_cookie(COOKIE, path="/console")
        return response

    # -- API ------------------------------------------------------------------------------------------

    async def api_overview(request: Request, access: Access) -> Response:
        return JSONResponse(await backend.overview())

    async def api_events(request: Request, access: Access) -> Response:
        return JSONResponse([sighting_dict(s) for s in ring.newest(_limit(request, 100), _sighting_filter(request))])

    async def api_events_stream(request: Request, access: Access) -> Response:
        where = _sighting_filter(request)
        # A reconnecting EventSource sends the last id it saw: it continues where it stopped.
        resume = request.headers.get("last-event-id") or request.query_params.get("after")
        after = int(resume) if resume and resume.isdigit() else ring.last_seq
        ends = asyncio.get_running_loop().time() + STREAM_MAX_SECS

        async def frames():
            last = after
            while asyncio.get_running_loop().time() < ends:
                if await ring.wait_newer(last, STREAM_KEEPALIVE_SECS):
                    await asyncio.sleep(STREAM_COALESCE_SECS)
                    fresh = ring.newest(STREAM_FRAME_EVENTS, where, after_seq=last)
                    last = ring.last_seq
                    if fresh:
                        payload = json.dumps([sighting_dict(s) for s in reversed(fresh)], default=str)
                        yield f"id: {last}\nevent: events\ndata: {payload}\n\n"
                else:
                    yield ": keep-alive\n\n"
                if await request.is_disconnected():
                    return

        return StreamingResponse(frames(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def api_dead_letter(request: Request, access: Access) -> Response:
        listing = await asyncio.to_thread(backend.dead_letter, _dead_letter_query(request), _limit(request, 100))
        return JSONResponse(listing)

    async def api_dead_letter_record(request: Request, access: Access) -> Response:
        record = await asyncio.to_thread(backend.dead_letter_record, int(request.path_params["index"]))
        if record is None:
            return JSONResponse({"error": "not_found"}, status_code=404)
        return JSONResponse(record)

    async def api_replay(request: Request, access: Access) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "invalid_json", "message": "the body must be a JSON object"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "invalid_json", "message": "the body must be a JSON object"}, status_code=400)
        try:
            query = DeadLetterQuery(reason=body.get("reason"), source=body.get("source"),
                                    destination=body.get("destination"), since=_when(body.get("since")),
                                    until=_when(body.get("until")))
            indices = body.get("indices")
            chosen = {int(i) for i in indices} if indices is not None else None
        except (TypeError, ValueError) as err:
            return JSONResponse({"error": "invalid_request", "message": str(err)}, status_code=400)
        try:
            return JSONResponse(await backend.replay(query, chosen))
        except ReplayBusy as err:
            return JSONResponse({"error": "busy", "message": str(err)}, status_code=409)

    async def api_replay_progress(request: Request, access: Access) -> Response:
        return JSONResponse(backend.replay_progress)

    async def api_jobs(request: Request, access: Access) -> Response:
        return JSONResponse(await asyncio.to_thread(backend.jobs))

    async def api_lifecycle(request: Request, access: Access) -> Response:
        return JSONResponse(await asyncio.to_thread(backend.lifecycle))

    async def api_run_job(request: Request, access: Access) -> Response:
        name = request.path_params["name"]
        try:
            run_id = await asyncio.to_thread(backend.trigger, name)
        except KeyError:
            return JSONResponse({"error": "unknown_job", "message": f"no job named {name!r}"}, status_code=404)
        except Exception as err:  # noqa: BLE001 - broker down or misconfigured: say so, do not 500
            return JSONResponse({"error": "not_queued", "message": f"{type(err).__name__}: {err}"[:300]},
                                status_code=503)
        return JSONResponse({"run_id": run_id, "state": "queued"}, status_code=202)

    async def api_config(request: Request, access: Access) -> Response:
        return JSONResponse(await asyncio.to_thread(backend.effective_config))

    return [
        Mount("/console", routes=[
            Route("/", guard(overview_page, html=True)),
            Route("/overview", guard(overview_fragment, html=True)),
            Route("/events", guard(events_page, html=True)),
            Route("/dead-letter", guard(dead_letter_page, html=True)),
            Route("/dead-letter/{index:int}", guard(dead_letter_record_page, html=True)),
            Route("/jobs", guard(jobs_page, html=True)),
            Route("/config", guard(config_page, html=True)),
            Route("/login", login, methods=["GET", "POST"]),
            Route("/logout", guard(logout, write=True, html=True), methods=["POST"]),
            Route("/api/overview", guard(api_overview)),
            Route("/api/events", guard(api_events)),
            Route("/api/events/stream", guard(api_events_stream)),
            Route("/api/dead-letter", guard(api_dead_letter)),
            Route("/api/dead-letter/replay", guard(api_replay, write=True), methods=["POST"]),
            Route("/api/dead-letter/replay/progress", guard(api_replay_progress)),
            Route("/api/dead-letter/{index:int}", guard(api_dead_letter_record)),
            Route("/api/jobs", guard(api_jobs)),
            Route("/api/jobs/{name}/run", guard(api_run_job, write=True), methods=["POST"]),
            Route("/api/lifecycle", guard(api_lifecycle)),
            Route("/api/config", guard(api_config)),
            Mount("/static", app=StaticFiles(directory=STATIC), name="console-static"),
        ]),
        Route("/console", lambda request: RedirectResponse("/console/", status_code=307)),
    ]


def _refuse(html: bool, status: int, message: str) -> Response:
    if html:
        return HTMLResponse(f"<!doctype html><title>console</title><p>{message}</p>", status_code=status)
    return JSONResponse({"error": "forbidden" if status == 403 else "not_found", "message": message},
                        status_code=status)


def _same_origin(request: Request) -> bool:
    """A login form posted from another site is refused (login CSRF); browsers send Origin on POST."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def _limit(request: Request, default: int) -> int:
    try:
        return max(1, min(MAX_EVENTS, int(request.query_params.get("limit", default))))
    except ValueError:
        return default


def _sighting_filter(request: Request) -> SightingFilter:
    q = request.query_params
    return SightingFilter(source=q.get("source") or None, name=q.get("name") or None, user=q.get("user") or None,
                          outcome=q.get("outcome") or None)


def _when(value: Any) -> datetime | None:
    if not value:
        return None
    when = datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)  # dead-letter times are UTC


def _dead_letter_query(request: Request) -> DeadLetterQuery:
    q = request.query_params
    try:
        since, until = _when(q.get("since")), _when(q.get("until"))
    except ValueError:
        since = until = None
    return DeadLetterQuery(reason=q.get("reason") or None, source=q.get("source") or None,
                           destination=q.get("destination") or None, since=since, until=until)
