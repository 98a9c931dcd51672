// The Spool dashboard: queues and counts, active jobs with live progress,
// workers, dead jobs with retry. Everything comes from this server's API:
//
// 1. Every 2 s it reads /healthz, /queues and /workers, and per queue the
//    active and dead jobs (/queues/{queue}/jobs?state=…).
// 2. One EventSource on /events?queue=… (all queues, one connection) moves
//    the progress bars between reads and triggers a read when a job starts
//    or ends.
// 3. Errors of the page itself are shown in #errors (and counted in
//    body[data-errors]), so a test can check there are none.
"use strict";

(() => {
  const errors = [];
  function recordError(text) {
    errors.push(text);
    const box = document.getElementById("errors");
    if (box) {
      box.hidden = false;
      box.textContent = errors.join("\n");
    }
    document.body.dataset.errors = String(errors.length);
  }
  window.addEventListener("error", (e) => recordError("error: " + e.message));
  window.addEventListener("unhandledrejection", (e) =>
    recordError("unhandled rejection: " + ((e.reason && e.reason.message) || e.reason)));
  const consoleError = console.error.bind(console);
  console.error = (...args) => {
    recordError("console.error: " + args.join(" "));
    consoleError(...args);
  };

  const REFRESH_MS = 2000;
  const TERMINAL = new Set(["completed", "dead", "cancelled"]);
  const STATES = ["waiting", "delayed", "active", "failed", "completed", "dead", "cancelled"];
  let source = null;
  let sourceKey = "";
  let timer = null;
  let refreshing = false;

  // ---- helpers ------------------------------------------------------------

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value === undefined || value === null) continue;
      if (key === "text") node.textContent = String(value);
      else if (key.startsWith("data-")) node.setAttribute(key, String(value));
      else node[key] = value;
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }

  function ago(ms) {
    const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (s < 60) return s + "s ago";
    if (s < 3600) return Math.round(s / 60) + "m ago";
    return Math.round(s / 3600) + "h ago";
  }

  function token() {
    const input = document.getElementById("token");
    return input ? input.value.trim() : "";
  }

  function storedToken() {
    try {
      return localStorage.getItem("spool.token") || "";
    } catch (e) {
      return "";
    }
  }

  class APIError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function api(path, method = "GET") {
    const headers = { Accept: "application/json" };
    if (method !== "GET" && token()) headers.Authorization = "Bearer " + token();
    const response = await fetch(path, { method, headers, cache: "no-store" });
    const body = await response.json().catch(() => null);
    if (!response.ok) {
      const error = (body && body.error) || {};
      throw new APIError(response.status, error.code || "http_" + response.status, error.message || response.statusText);
    }
    return body;
  }

  function notice(text) {
    const box = document.getElementById("notice");
    box.hidden = !text;
    box.textContent = text || "";
  }

  // ---- reading ------------------------------------------------------------

  async function refresh() {
    if (refreshing) return;
    refreshing = true;
    try {
      const health = await api("/healthz").catch((e) => ({ status: "unavailable", error: e }));
      renderHealth(health);
      if (health.status !== "ok") return;
      const [queueList, workerList] = await Promise.all([api("/queues"), api("/workers")]);
      const queues = queueList.queues;
      const active = [];
      const dead = [];
      await Promise.all(
        queues.map(async (q) => {
          if (q.counts.active > 0) {
            const page = await api("/queues/" + encodeURIComponent(q.name) + "/jobs?state=active&limit=50");
            active.push(...page.jobs);
          }
          if (q.counts.dead > 0) {
            const page = await api("/queues/" + encodeURIComponent(q.name) + "/jobs?state=dead&limit=10");
            dead.push(...page.jobs);
          }
        }),
      );
      renderQueues(queues);
      renderActive(active);
      renderWorkers(workerList.workers);
      renderDead(dead);
      follow(queues.map((q) => q.name));
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
      document.body.dataset.ready = "1";
    } catch (e) {
      // Redis or the server went away between two reads: say so, try again.
      renderHealth({ status: "unavailable", error: e });
    } finally {
      refreshing = false;
    }
  }

  function schedule(ms = REFRESH_MS) {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      await refresh();
      schedule();
    }, ms);
  }

  // ---- rendering ----------------------------------------------------------

  function renderHealth(health) {
    const pill = document.getElementById("health");
    const ok = health.status === "ok";
    pill.dataset.ok = ok ? "1" : "0";
    pill.textContent = ok ? "Redis ok" : "Redis unavailable";
    pill.title = ok ? "" : (health.error && health.error.message) || "";
  }

  function renderQueues(queues) {
    const body = document.querySelector("#queues tbody");
    body.replaceChildren(
      ...queues.map((q) => {
        const name = el("td", {}, el("span", { text: q.name }));
        if (q.paused) name.append(el("span", { className: "paused", text: "paused" }));
        const cells = STATES.map((s) => el("td", { className: "n", "data-state": s, text: q.counts[s] }));
        const rate = q.throughput.completed_per_minute;
        const toggle = el("button", { text: q.paused ? "Resume" : "Pause", type: "button" });
        toggle.addEventListener("click", () => mutate("/queues/" + encodeURIComponent(q.name) + (q.paused ? "/resume" : "/pause")));
        return el(
          "tr",
          { "data-queue": q.name, "data-paused": q.paused ? "1" : "0" },
          name,
          ...cells,
          el("td", { className: "n", text: rate === undefined ? "–" : rate.toFixed(1) }),
          el("td", {}, toggle),
        );
      }),
    );
    document.getElementById("no-queues").hidden = queues.length > 0;
  }

  function jobElement(job) {
    const percent = job.progress ? job.progress.percent : 0;
    const bar = el("progress", { max: 100, value: percent, "data-percent": percent });
    const label = el("span", { className: "label", text: progressLabel(percent, job.progress && job.progress.message) });
    return el(
      "div",
      { className: "job", "data-job": job.id, "data-queue": job.queue, "data-state": job.state, "data-seq": job.seq },
      el(
        "div",
        { className: "head" },
        el("span", { className: "id", text: job.id }),
        el("span", { className: "muted", text: job.type }),
        el("span", { className: "muted attempt", text: "attempt " + job.attempts + "/" + job.max_attempts }),
        job.worker ? el("span", { className: "muted", text: job.worker }) : null,
        label,
      ),
      bar,
    );
  }

  function progressLabel(percent, message) {
    return Math.round(percent) + "%" + (message ? " " + message : "");
  }

  function renderActive(jobs) {
    const box = document.getElementById("active");
    const previous = new Map([...box.children].map((node) => [node.dataset.job, node]));
    jobs.sort((a, b) => a.id.localeCompare(b.id));
    box.replaceChildren(
      ...jobs.map((job) => {
        const old = previous.get(job.id);
        // Keep what a live event already showed when it is newer than this read.
        if (old && Number(old.dataset.seq) > job.seq) return old;
        const node = jobElement(job);
        if (old && old.dataset.live) node.dataset.live = old.dataset.live;
        return node;
      }),
    );
    document.getElementById("no-active").hidden = jobs.length > 0;
  }

  function renderWorkers(workers) {
    const body = document.querySelector("#workers tbody");
    body.replaceChildren(
      ...workers.map((w) =>
        el(
          "tr",
          { "data-worker": w.id },
          el("td", { className: "id", text: w.id }),
          el("td", { text: w.host }),
          el("td", { className: "n", text: w.pid }),
          el("td", { text: w.queues.join(", ") }),
          el("td", { text: w.jobs.length + "/" + w.concurrency + (w.jobs.length ? " " + w.jobs.join(", ") : "") }),
          el("td", { className: "n", text: w.processed }),
          el("td", { className: "n", text: w.failed }),
          el("td", { text: ago(w.last_seen) }),
        ),
      ),
    );
    document.getElementById("no-workers").hidden = workers.length > 0;
  }

  function renderDead(jobs) {
    const box = document.getElementById("dead");
    jobs.sort((a, b) => (b.finished_at || 0) - (a.finished_at || 0));
    box.replaceChildren(
      ...jobs.map((job) => {
        const retry = el("button", { type: "button", text: "Retry", className: "retry" });
        retry.addEventListener("click", () => mutate("/jobs/" + encodeURIComponent(job.id) + "/retry"));
        const last = job.errors.length ? job.errors[job.errors.length - 1] : null;
        const message = (last && "attempt " + last.attempt + ": " + last.error) || job.last_error || "";
        return el(
          "div",
          { className: "job", "data-job": job.id, "data-state": "dead" },
          el(
            "div",
            { className: "head" },
            el("span", { className: "id", text: job.id }),
            el("span", { className: "muted", text: job.type }),
            el("span", { className: "muted", text: job.errors.length + " error(s)" }),
            retry,
          ),
          el("pre", { className: "error", text: message }),
        );
      }),
    );
    document.getElementById("no-dead").hidden = jobs.length > 0;
  }

  async function mutate(path) {
    try {
      await api(path, "POST");
      notice("");
    } catch (e) {
      notice(e.status === 401 ? "That needs the server's token: enter it at the top right." : e.message);
    }
    schedule(0);
  }

  // ---- live events --------------------------------------------------------

  function follow(names) {
    const key = names.slice().sort().join("\n");
    if (key === sourceKey && source) return;
    if (source) source.close();
    sourceKey = key;
    source = null;
    if (!names.length) return;
    const query = names.map((n) => "queue=" + encodeURIComponent(n)).join("&");
    source = new EventSource("/events?" + query);
    for (const name of ["progress", "active", "completed", "dead", "failed", "stalled", "cancelled", "waiting", "enqueued"]) {
      source.addEventListener(name, onEvent);
    }
  }

  function onEvent(message) {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (e) {
      return;
    }
    const node = document.querySelector('#active [data-job="' + CSS.escape(event.id) + '"]');
    if (event.event === "progress" && node) {
      if (event.seq !== undefined && Number(node.dataset.seq) >= event.seq) return;
      node.dataset.seq = event.seq;
      node.dataset.live = "1";
      const bar = node.querySelector("progress");
      bar.value = event.percent;
      bar.dataset.percent = event.percent;
      node.querySelector(".label").textContent = progressLabel(event.percent, event.message);
      return;
    }
    if (node && TERMINAL.has(event.state)) {
      node.dataset.finished = event.state;
      node.dataset.state = event.state;
    }
    if (event.event !== "progress") schedule(150);
  }

  // ---- start --------------------------------------------------------------

  function start() {
    document.getElementById("token-form").addEventListener("submit", (e) => e.preventDefault());
    const input = document.getElementById("token");
    input.value = storedToken();
    input.addEventListener("change", () => {
      try {
        localStorage.setItem("spool.token", input.value);
      } catch (e) {
        notice("The token cannot be stored in this browser; it is used until the page reloads.");
      }
    });
    refresh().then(() => schedule());
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
