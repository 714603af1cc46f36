// smesh dashboard: the feed, the page state and the router. Views live in views.js and
// network.js. Every string that came from a run is put in the page as text (textContent),
// never as HTML: agent outputs are untrusted.
"use strict";

const SM = (window.SM = { views: {}, state: null, source: null, follow: true });
const stats = (window.smeshStats = { firstEventAt: null, batches: 0, snapshots: 0 });
const MAX_EVENTS = 500;
const MAX_SAMPLES = 600;
const MAX_TASKS = 5000;

// -- DOM helpers ---------------------------------------------------------------------------

// h("td", {class: "x", text: "y"}, child, "text child"...): children and text are text only.
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "class") node.className = value;
    else if (key === "style") node.style.cssText = value; // CSSOM: allowed by the page's CSP
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

function fmt(x, digits = 2) {
  if (x === null || x === undefined) return "–";
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return x.toLocaleString("en");
  return x.toFixed(digits);
}

function short(value, n = 120) {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  if (text === undefined) return "";
  return text.length > n ? text.slice(0, n) + "…" : text;
}

function hue(name) {
  let x = 0;
  for (const c of String(name)) x = (x * 31 + c.charCodeAt(0)) >>> 0;
  return x % 360;
}

function kindColor(kind) {
  const known = { task: 210, claim: 35, result: 130, vote: 280, check: 170, decision: 0 };
  return `hsl(${known[kind] ?? hue(kind)}, 65%, 45%)`;
}

// the run's clock now: the last batch's, moved on by the page's clock while a live run on
// wall time is quiet (so lease countdowns and decay keep moving between batches)
function runNow() {
  const S = SM.state;
  if (!S) return 0;
  const wall = Math.abs(S.now - Date.now() / 1000) < 86400;
  if (S.finished || !wall) return S.now;
  return S.now + (performance.now() - S.nowAt) / 1000;
}

function relTime(t) {
  const S = SM.state;
  const start = S && S.start !== null ? S.start : t;
  return "+" + fmt(Math.max(0, t - start), 2) + "s";
}

// -- state ---------------------------------------------------------------------------------

function newState(run) {
  return {
    run,
    start: null,
    now: 0,
    nowAt: performance.now(),
    finished: null,
    report: null,
    meta: {},
    stats: { live: {}, counts: {}, tasks: {} },
    tasks: new Map(),
    samples: [],
    top: [],
    events: [],
    trust: { series: {}, edges: {}, verdicts: {} },
    cost: null,
    frames: 0,
    dropped: 0,
  };
}

function applySnapshot(snap) {
  const S = newState(snap.run_id);
  S.meta = snap.meta || {};
  S.finished = snap.finished;
  S.report = snap.report;
  S.now = snap.now;
  S.stats = snap.stats;
  for (const task of snap.tasks) S.tasks.set(task.id, task);
  S.samples = snap.samples || [];
  S.top = snap.top || [];
  S.trust = snap.trust;
  S.cost = snap.cost;
  S.frames = snap.frames;
  for (const ev of snap.events) addEvent(S, ev);
  if (S.samples.length) S.start = S.samples[0].t;
  SM.state = S;
  stats.snapshots += 1;
}

function addEvent(S, ev) {
  if (S.start === null) S.start = ev.t;
  S.events.push(ev);
  if (S.events.length > MAX_EVENTS) S.events.splice(0, S.events.length - MAX_EVENTS);
}

function applyBatch(msg) {
  const S = SM.state;
  if (!S) return;
  S.now = msg.now;
  S.nowAt = performance.now();
  S.stats = msg.stats;
  S.finished = msg.finished;
  if (msg.report) S.report = msg.report;
  for (const ev of msg.events) {
    switch (ev.type) {
      case "task":
        if (ev.kind === "status") applyStatus(S, ev.payload);
        else S.tasks.set(ev.task_id, ev.payload);
        if (S.tasks.size > MAX_TASKS) S.tasks.delete(S.tasks.keys().next().value);
        break;
      case "sample":
        S.samples.push({ t: ev.t, by_kind: ev.payload.by_kind });
        if (S.samples.length > MAX_SAMPLES) S.samples = S.samples.filter((_, i) => i % 2 === 0);
        if (ev.payload.top) S.top = ev.payload.top;
        if (S.start === null) S.start = ev.t;
        break;
      case "trust":
        mergeTrust(S.trust, ev.payload);
        break;
      case "cost":
        S.cost = ev.payload;
        break;
      case "dropped":
        S.dropped += ev.payload.count;
        break;
      default: // signal, action, and any type this page does not know yet
        if (ev.type === "action" && ev.kind === "frame") S.frames += 1;
        addEvent(S, ev);
    }
  }
  stats.batches += 1;
}

// compact rows for tasks that changed in a flood: [id, status, attempt, holder, updated]
function applyStatus(S, rows) {
  for (const [id, status, attempt, holder, updated] of rows) {
    const old = S.tasks.get(id);
    const base = old || { id, claims: [], votes: [], decisions: [], approvals: [], signals: {} };
    S.tasks.set(id, { ...base, status, attempt, holder, updated });
  }
}

function mergeTrust(trust, update) {
  for (const [peer, points] of Object.entries(update.points || {})) {
    const series = (trust.series[peer] = trust.series[peer] || []);
    series.push(...points);
  }
  for (const [from, to, value] of update.edges || []) {
    (trust.edges[from] = trust.edges[from] || {})[to] = value;
  }
  for (const [voter, worker, ok, no] of update.verdicts || []) {
    (trust.verdicts[voter] = trust.verdicts[voter] || {})[worker] = [ok, no];
  }
}

// -- feed ----------------------------------------------------------------------------------

function connect(run) {
  if (SM.source) SM.source.close();
  SM.state = null;
  setStatus("connecting…", "wait");
  const source = new EventSource(`/api/runs/${encodeURIComponent(run)}/feed`);
  SM.source = source;
  source.addEventListener("snapshot", (e) => {
    applySnapshot(JSON.parse(e.data));
    SM.views.network?.reset?.();
    setStatus("live", "ok");
    schedule();
  });
  source.addEventListener("batch", (e) => {
    applyBatch(JSON.parse(e.data));
    schedule();
  });
  source.onerror = () => setStatus("reconnecting…", "wait");
}

function setStatus(text, cls) {
  const node = document.getElementById("conn");
  node.textContent = text;
  node.className = "pill " + cls;
}

async function loadRuns(selectLatest) {
  const response = await fetch("/api/runs");
  if (!response.ok) return;
  const body = await response.json();
  const select = document.getElementById("run");
  const current = select.value;
  clear(select);
  for (const run of body.runs) {
    const label = `${run.run_id} · ${run.type || "agents"}${run.finished ? "" : " · running"}`;
    select.append(h("option", { value: run.run_id, text: label }));
  }
  if (!body.runs.length) return;
  if (body.default && !SM.sourceRun) SM.follow = false; // --run given: stay on it
  let want = current || body.default || body.runs[0].run_id;
  if (selectLatest && SM.follow) want = body.runs[0].run_id;
  select.value = want;
  if (!SM.state || SM.state.run !== want) {
    if (!SM.source || SM.sourceRun !== want) {
      SM.sourceRun = want;
      connect(want);
    }
  }
}

// -- rendering -----------------------------------------------------------------------------

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    render();
  });
}

function currentView() {
  const name = (location.hash || "#field").slice(1).split("/")[0];
  return SM.views[name] ? name : "field";
}

function render() {
  const S = SM.state;
  const name = currentView();
  for (const button of document.querySelectorAll("nav button")) {
    button.classList.toggle("active", button.dataset.view === name);
  }
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = section.id !== "view-" + name;
  }
  if (!S) return;
  renderHeader(S);
  SM.views[name].render(document.getElementById("view-" + name), S);
  if (S.events.length && stats.firstEventAt === null) {
    stats.firstEventAt = performance.now();
    document.body.dataset.firstEvent = "1";
  }
}

function renderHeader(S) {
  const live = Object.values(S.stats.live || {}).reduce((a, b) => a + b, 0);
  const tasks = S.stats.tasks || {};
  const total = Object.values(tasks).reduce((a, b) => a + b, 0);
  const parts = [
    `${fmt(live)} live signals`,
    `${fmt(tasks.accepted || 0)}/${fmt(total)} tasks accepted`,
    `${fmt(S.stats.events)} events`,
    S.finished ? "finished" : "running",
  ];
  if (S.dropped) parts.push(`${fmt(S.dropped)} events summarised`);
  document.getElementById("summary").textContent = parts.join(" · ");
}

// -- controls ------------------------------------------------------------------------------

async function control(taskId, verb, attempt) {
  const S = SM.state;
  const url = `/api/runs/${encodeURIComponent(S.run)}/tasks/${encodeURIComponent(taskId)}/${verb}`;
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ attempt, reason: `${verb} from the dashboard` }),
  });
  const body = await response.json().catch(() => ({}));
  toast(response.ok ? `${verb}: recorded for ${taskId}` : `${verb} failed: ${body.error || response.status}`);
}

function toast(text) {
  const node = document.getElementById("toast");
  node.textContent = text;
  node.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (node.hidden = true), 3000);
}

// -- start ---------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => (location.hash = button.dataset.view));
  }
  window.addEventListener("hashchange", () => render());
  document.getElementById("run").addEventListener("change", (e) => {
    SM.follow = false;
    SM.sourceRun = e.target.value;
    connect(e.target.value);
  });
  setInterval(() => schedule(), 1000); // countdowns and decay move on between batches
  setInterval(() => loadRuns(true), 3000);
  loadRuns(false);
});

Object.assign(SM, { h, clear, fmt, short, kindColor, runNow, relTime, control, schedule });
