"use strict";
// The run console: polls /console/api/runs every second; a trace opens from the list
// or from the page's hash (#trace=<id>). Text goes in with textContent only.

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren();
  if (!rows.length) {
    const tr = document.createElement("tr");
    cell(tr, empty, "muted").colSpan = columns;
    tbody.appendChild(tr);
  }
  return tbody;
}

function showRuns(runs) {
  const tbody = fill(document.getElementById("runs"), runs, "none", 8);
  for (const run of runs) {
    const tr = document.createElement("tr");
    tr.className = "run";
    cell(tr, run.agent);
    cell(tr, run.tenant);
    cell(tr, run.state);
    cell(tr, run.step);
    cell(tr, run.elapsed_s.toFixed(1) + " s");
    cell(tr, String(run.prompt_tokens + run.completion_tokens));
    cell(tr, String(run.depth));
    cell(tr, run.trace_id || "");
    tbody.appendChild(tr);
  }
}

function showTraces(traces, tracing) {
  document.getElementById("tracing-off").hidden = tracing;
  const tbody = fill(document.getElementById("traces"), traces, "none yet", 5);
  for (const t of traces) {
    const tr = document.createElement("tr");
    tr.className = "trace";
    tr.dataset.trace = t.trace_id;
    cell(tr, t.root);
    cell(tr, t.duration_ms.toFixed(1) + " ms");
    cell(tr, t.status, t.status);
    cell(tr, t.kept || "");
    cell(tr, String(t.spans) + (t.cut ? " (cut)" : ""));
    tr.addEventListener("click", () => { location.hash = "trace=" + t.trace_id; });
    tbody.appendChild(tr);
  }
}

function showCounters(counters) {
  for (const [name, value] of Object.entries(counters)) {
    const el = document.getElementById("c-" + name);
    if (el) el.textContent = name === "cost_usd" ? value.toFixed(4) : String(Math.round(value));
  }
}

async function poll() {
  try {
    const response = await fetch("/console/api/runs", { cache: "no-store" });
    if (response.ok) {
      const data = await response.json();
      showRuns(data.runs);
      showTraces(data.traces, data.tracing);
      showCounters(data.counters);
    }
  } catch (error) {
    // the server restarts or is gone: try again on the next tick
  }
}

function depthOf(span, byId) {
  let depth = 0;
  for (let parent = byId[span.parent_id]; parent && depth < 50; parent = byId[parent.parent_id]) depth++;
  return depth;
}

async function openTrace(traceId) {
  const response = await fetch("/console/api/traces/" + encodeURIComponent(traceId), { cache: "no-store" });
  const waterfall = document.getElementById("waterfall");
  waterfall.replaceChildren();
  waterfall.className = "";
  if (!response.ok) {
    waterfall.textContent = "This trace is no longer held.";
    return;
  }
  const trace = await response.json();
  document.getElementById("trace-title").textContent = "Trace " + trace.trace_id + " (" + trace.root + ")";
  const spans = trace.spans.slice().sort((a, b) => a.start - b.start);
  const start = Math.min(...spans.map((s) => s.start));
  const total = Math.max(...spans.map((s) => s.start - start + s.duration_ms / 1000), 1e-6);
  const byId = Object.fromEntries(spans.map((s) => [s.span_id, s]));
  for (const span of spans) {
    const row = document.createElement("div");
    row.className = "bar-row span";
    const name = document.createElement("div");
    name.className = "bar-name";
    name.style.paddingLeft = depthOf(span, byId) * 12 + "px";
    name.textContent = span.name;
    const track = document.createElement("div");
    track.className = "bar-track";
    const bar = document.createElement("div");
    bar.className = "bar " + span.status;
    bar.style.left = ((span.start - start) / total) * 100 + "%";
    bar.style.width = ((span.duration_ms / 1000) / total) * 100 + "%";
    bar.title = span.duration_ms.toFixed(2) + " ms";
    track.appendChild(bar);
    row.append(name, track);
    row.addEventListener("click", () => {
      document.getElementById("span-detail").textContent = JSON.stringify(
        { name: span.name, kind: span.kind, status: span.status, duration_ms: span.duration_ms,
          attributes: span.attributes, events: span.events }, null, 2);
    });
    waterfall.appendChild(row);
  }
  document.getElementById("logs").textContent =
    trace.logs.map((line) => JSON.stringify(line)).join("\n") || "no log lines carry this trace id";
  for (const tr of document.querySelectorAll("tr.trace")) {
    tr.classList.toggle("selected", tr.dataset.trace === traceId);
  }
}

function fromHash() {
  const match = /trace=([0-9a-f]{32})/.exec(location.hash);
  if (match) openTrace(match[1]);
}

window.addEventListener("hashchange", fromHash);
poll();
fromHash();
setInterval(poll, 1000);
