// personalize-hub console: live fragments, the event stream, replays and job runs. No dependencies.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf"]').content;

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()},
    body: JSON.stringify(body || {}),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.message || response.statusText);
  return data;
}

// Fragments that refresh themselves: <div data-refresh="/url" data-every="ms">.
function refreshFragments() {
  for (const node of document.querySelectorAll("[data-refresh]")) {
    const every = Number(node.dataset.every || 2000);
    setInterval(async () => {
      if (document.hidden) return;
      const response = await fetch(node.dataset.refresh, {credentials: "same-origin"});
      if (response.ok) node.innerHTML = await response.text();
    }, every);
  }
}

// The live debugger: Server-Sent Events, newest first, pause keeps what arrives for later.
function liveEvents() {
  const list = document.getElementById("events");
  if (!list) return;
  const template = document.getElementById("event-template");
  const state = document.getElementById("stream-state");
  const pause = document.getElementById("pause");
  const keep = 500;
  let paused = false;
  let held = [];
  const render = (e) => {
    const row = template.content.firstElementChild.cloneNode(true);
    row.classList.add(e.outcome);
    row.dataset.seq = e.seq;
    const set = (field, text) => { row.querySelector(`[data-f="${field}"]`).textContent = text; };
    set("outcome", e.outcome);
    set("time", e.time);
    set("name", e.name || "(no name)");
    set("source", e.source);
    set("who", e.user_id || e.anonymous_id || "");
    set("reason", e.reason || "");
    set("raw", JSON.stringify(e.raw, null, 2));
    set("records", JSON.stringify(e.records, null, 2));
    list.prepend(row);
  };
  const show = (events) => {
    for (const e of events) render(e);
    while (list.children.length > keep) list.lastElementChild.remove();
  };
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.setAttribute("aria-pressed", String(paused));
    pause.textContent = paused ? `Resume` : "Pause";
    if (!paused) { show(held); held = []; }
    state.textContent = paused ? "paused" : "live";
  });
  const newest = list.querySelector("[data-seq]");
  const params = new URLSearchParams(window.location.search);
  if (newest) params.set("after", newest.dataset.seq);
  const source = new EventSource(`${list.dataset.stream}?${params}`);
  source.addEventListener("open", () => { if (!paused) state.textContent = "live"; });
  source.addEventListener("error", () => { state.textContent = "reconnecting…"; });
  source.addEventListener("events", (message) => {
    const events = JSON.parse(message.data);
    if (paused) { held.push(...events); state.textContent = `paused (${held.length} new)`; }
    else show(events);
  });
}

// Replays from the dead-letter pages.
function replays() {
  const state = document.getElementById("replay-state");
  for (const button of document.querySelectorAll("[data-replay]")) {
    button.addEventListener("click", async () => {
      let body;
      if (button.dataset.replay === "selected") {
        const picked = [...document.querySelectorAll('input[name="pick"]:checked')].map((box) => Number(box.value));
        if (!picked.length) { state.textContent = "select records first"; return; }
        body = {indices: picked};
      } else if (button.dataset.replay === "one") {
        body = {indices: [Number(button.dataset.index)]};
      } else {
        body = JSON.parse(button.dataset.query);
      }
      button.disabled = true;
      state.textContent = "replaying…";
      const poll = setInterval(async () => {
        const progress = await (await fetch("/console/api/dead-letter/replay/progress", {credentials: "same-origin"})).json();
        if (progress.running) state.textContent = `replaying ${progress.done} / ${progress.total}…`;
      }, 500);
      try {
        const result = await post("/console/api/dead-letter/replay", body);
        state.textContent = `replayed ${result.replayed}: ${result.delivered} delivered, ${result.rejected} rejected` +
          (result.retry ? `, ${result.retry} to retry` : "");
      } catch (error) {
        state.textContent = `replay failed: ${error.message}`;
      } finally {
        clearInterval(poll);
        button.disabled = false;
      }
    });
  }
  const all = document.getElementById("select-all");
  if (all) all.addEventListener("change", () => {
    for (const box of document.querySelectorAll('input[name="pick"]')) box.checked = all.checked;
  });
}

function jobRuns() {
  for (const button of document.querySelectorAll("[data-run-job]")) {
    button.addEventListener("click", async () => {
      const state = button.parentElement.querySelector(".run-state");
      button.disabled = true;
      try {
        const result = await post(`/console/api/jobs/${encodeURIComponent(button.dataset.runJob)}/run`);
        state.textContent = `queued as ${result.run_id}; reload to follow it`;
      } catch (error) {
        state.textContent = `not started: ${error.message}`;
      } finally {
        button.disabled = false;
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  refreshFragments();
  liveEvents();
  replays();
  jobRuns();
});
