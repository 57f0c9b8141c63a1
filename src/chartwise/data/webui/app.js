// Chartwise chart viewer: plain JS, no external assets. Record text is always inserted as text
// (never as HTML). API calls carry the bearer token when the server asks for one.
"use strict";

const state = { source: null, patient: null, token: sessionStorage.getItem("chartwise-token") || "" };
const $ = (id) => document.getElementById(id);
const SVGNS = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function status(msg) { $("status").textContent = msg || ""; }

function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (state.token) h["Authorization"] = "Bearer " + state.token;
  return h;
}

async function api(path, opts) {
  opts = opts || {};
  const init = { method: opts.method || "GET", headers: headers(opts.body ? { "Content-Type": "application/json" } : {}) };
  if (opts.body) init.body = JSON.stringify(opts.body);
  const res = await fetch(path, init);
  if (res.status === 401) {
    const t = window.prompt("This Chartwise server needs its API token (CHARTWISE_API_TOKEN):");
    if (t) { state.token = t; sessionStorage.setItem("chartwise-token", t); return api(path, opts); }
  }
  if (!res.ok) {
    let detail = res.status + " " + res.statusText;
    try { detail = (await res.json()).detail || detail; } catch (e) { /* not JSON */ }
    throw new Error(detail);
  }
  return opts.raw ? res : res.json();
}

// -- citations ------------------------------------------------------------------------------------
function citeButton(key, label) {
  const type = key.startsWith("PMID:") ? key : key.split("/")[0] + (key.includes("#") ? " span" : "");
  return el("button", { type: "button", class: "cite", title: key, dataset: { key }, "aria-label": "citation " + key },
            label || type);
}

async function showCitation(key, button) {
  document.querySelectorAll("button.cite.active").forEach((b) => b.classList.remove("active"));
  if (button) button.classList.add("active");
  $("citation-key").replaceChildren(el("code", {}, key));
  const body = $("citation-body");
  body.replaceChildren(el("p", { class: "muted" }, "loading…"));
  try {
    const q = new URLSearchParams({ key });
    if (state.source) q.set("source", state.source);
    const c = await api("/api/cite?" + q);
    const out = [el("span", { class: "kind", id: "citation-kind" }, c.kind)];
    if (c.kind === "paper") {
      const p = c.paper;
      out.push(el("strong", {}, "PMID " + p.pmid + (p.year ? " (" + p.year + ")" : "")),
               el("h3", {}, p.title || ""), el("p", { class: "paper-text" }, p.text || ""));
    } else {
      const r = c.resource || {};
      out.push(el("strong", {}, r.resourceType + "/" + r.id));
      if (c.kind === "span") {
        const s = c.span;
        out.push(el("p", { class: "muted" }, "characters " + s.start + "–" + s.end + " of the note"),
                 el("div", { class: "span-ctx" }, "…" + s.before, el("mark", {}, s.text), s.after + "…"));
      }
      out.push(el("h3", {}, "Resource JSON"), el("pre", { id: "citation-json" }, JSON.stringify(r, null, 2)));
    }
    body.replaceChildren(...out);
  } catch (err) {
    body.replaceChildren(el("p", { class: "status" }, err.message));
  }
}

document.addEventListener("click", (e) => {
  const b = e.target.closest ? e.target.closest("[data-key]") : null;
  if (!b) return;
  e.preventDefault();
  showCitation(b.dataset.key, b);
});

// -- timeline -------------------------------------------------------------------------------------
function fmt(v) {
  if (typeof v !== "number") return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : String(Math.round(v * 100) / 100);
}

function trendChart(s, width, height) {
  width = width || 420; height = height || 90;
  const pts = s.points || [];
  const padL = 40, padR = 8, padT = 8, padB = 18;
  const times = pts.map((p) => (p.date ? Date.parse(p.date) : NaN));
  const valid = times.every((t) => !isNaN(t));
  const t0 = valid ? Math.min(...times) : 0, t1 = valid ? Math.max(...times) : pts.length - 1;
  const lo = s.min.value, hi = s.max.value, span = (hi - lo) || 1;
  const x = (i) => padL + (width - padL - padR) * (pts.length === 1 ? 0.5 : ((valid ? times[i] : i) - t0) / ((t1 - t0) || 1));
  const y = (v) => height - padB - (height - padT - padB) * ((v - lo) / span);
  const chart = svg("svg", { class: "trend", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
                             "aria-label": s.label + " trend chart" });
  chart.append(svg("line", { x1: padL, x2: width - padR, y1: height - padB, y2: height - padB, stroke: "#d5dae0" }));
  chart.append(svg("text", { x: 2, y: padT + 8 }, fmt(hi)), svg("text", { x: 2, y: height - padB }, fmt(lo)));
  if (pts.length) {
    chart.append(svg("text", { x: padL, y: height - 4 }, (pts[0].date || "").slice(0, 7)));
    chart.append(svg("text", { x: width - padR, y: height - 4, "text-anchor": "end" }, (pts[pts.length - 1].date || "").slice(0, 7)));
  }
  chart.append(svg("polyline", { fill: "none", stroke: "#5b8db8", "stroke-width": 1.6,
                                 points: pts.map((p, i) => `${x(i).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ") }));
  pts.forEach((p, i) => {
    const c = svg("circle", { cx: x(i).toFixed(1), cy: y(p.value).toFixed(1), r: 3, fill: p.abnormal ? "#b3261e" : "#143c5a",
                              "data-key": p.key, tabindex: 0 },
                  svg("title", {}, `${p.date || "undated"}: ${fmt(p.value)} ${s.unit || ""}${p.abnormal ? " (out of range)" : ""}`));
    chart.append(c);
  });
  return chart;
}

function cites(keys, limit) {
  limit = limit || 6;
  const out = keys.slice(0, limit).map((k) => citeButton(k));
  if (keys.length > limit) out.push(el("span", { class: "muted" }, " +" + (keys.length - limit)));
  return out;
}

function listSection(title, rows, render) {
  return el("section", { class: "sec-" + title.toLowerCase() }, el("h2", {}, title),
            rows.length ? el("ul", {}, rows.map((r) => el("li", {}, render(r)))) : el("p", { class: "muted" }, "none in the record"));
}

function entry(e) { return [(e.date || "undated") + ": " + e.text + " ", ...cites(e.citations)]; }

function renderTimeline(t) {
  const p = t.patient;
  $("patient-head").replaceChildren(
    el("h2", {}, "Patient " + p.id),
    el("div", {}, `${p.gender || "unknown sex"}, born ${p.birth_date || "?"}` + (p.deceased ? `, deceased ${p.deceased}` : "")
       + (p.age !== null && p.age !== undefined ? `, age ${p.age}` : "")
       + `; record ${t.date_range[0] || "?"} to ${t.date_range[1] || "?"} `, citeButton(p.key)));
  const parts = [];
  parts.push(listSection("Problems", t.problems, (pr) => [pr.label + " ", el("span", { class: "muted" },
    `(${pr.status}; onset ${pr.onset || "?"}${pr.abatement ? ", resolved " + pr.abatement : ""}) `), ...cites(pr.citations)]));
  parts.push(listSection("Medications", t.medications, (m) => [m.label + " ", el("span", { class: "muted" },
    `started ${m.start || "?"}, last ordered ${m.last_order || "?"}${m.stop ? ", stopped " + m.stop : ", " + (m.status || "")} `),
    ...cites(m.citations)]));
  parts.push(listSection("Allergies", t.allergies, entry));
  for (const [title, series] of [["Labs", t.labs], ["Vitals", t.vitals]]) {
    const sec = el("section", { class: "trends", id: "trends-" + title.toLowerCase() }, el("h2", {}, title + " — trends"));
    if (!series.length) sec.append(el("p", { class: "muted" }, "none in the record"));
    for (const s of series) {
      const cls = { up: "up", down: "down" }[s.trend] || "muted";
      sec.append(el("div", { class: "series" },
        el("div", {}, s.label, el("br"), el("span", { class: "muted" }, `${s.count} results` + (s.reference ? `, ref ${s.reference}` : ""))),
        el("div", {}, "latest ", el("b", {}, fmt(s.latest.value) + (s.unit ? " " + s.unit : "")), " ", citeButton(s.latest.key),
           el("br"), el("span", { class: "muted" }, s.latest.date || ""), " ", el("span", { class: cls }, s.trend)),
        el("div", {}, trendChart(s))));
    }
    parts.push(sec);
  }
  parts.push(listSection("Immunizations", t.immunizations, entry));
  parts.push(listSection("Procedures", t.procedures, entry));
  parts.push(listSection("Imaging", t.imaging, entry));
  parts.push(listSection("Notes", t.notes, entry));
  const enc = el("section", { class: "sec-encounters" }, el("h2", {}, `Encounters (${t.encounters.length})`));
  const recent = t.encounters.slice().reverse();
  recent.forEach((g, i) => {
    const d = el("details", { class: "enc", open: i < 3 },
      el("summary", {}, `${g.date || "undated"}: ${g.title} `, g.encounter ? citeButton(g.encounter) : ""),
      el("ul", {}, g.entries.map((e) => el("li", {}, e.text + " ", ...cites(e.citations)))));
    enc.append(d);
  });
  parts.push(enc);
  $("timeline").replaceChildren(...parts);
}

async function loadTimeline() {
  if (!state.patient) { $("timeline").replaceChildren(); return; }
  status("");
  $("timeline").replaceChildren(el("p", { class: "muted" }, "loading the timeline…"));
  try {
    const q = state.source ? "?source=" + encodeURIComponent(state.source) : "";
    renderTimeline(await api(`/api/patients/${encodeURIComponent(state.patient)}/timeline${q}`));
  } catch (err) { status(err.message); $("timeline").replaceChildren(); }
}

// -- pickers --------------------------------------------------------------------------------------
async function loadPatients() {
  const pats = await api("/api/patients" + (state.source ? "?source=" + encodeURIComponent(state.source) : ""));
  const pick = $("patient-picker");
  pick.replaceChildren(...pats.map((p) => el("option", { value: p.id },
    `${p.id.slice(0, 13)}${p.id.length > 13 ? "…" : ""} · ${p.gender || "?"} · born ${p.birth_date || "?"} · ${p.resources} resources`)));
  state.patient = pats.length ? pats[0].id : null;
  await loadTimeline();
}

async function loadSources(select) {
  const sources = await api("/api/sources");
  const pick = $("source-picker");
  pick.replaceChildren(...sources.map((s) => el("option", { value: s.id, selected: s.id === select || (!select && s.default) },
    `${s.path.split("/").slice(-2).join("/")} (${s.patients} patients)`)));
  state.source = pick.value || null;
  if (state.source) await loadPatients();
  else status("No source loaded: enter a server-side path and press Load.");
}

$("source-picker").addEventListener("change", async (e) => { state.source = e.target.value; await loadPatients(); });
$("patient-picker").addEventListener("change", async (e) => { state.patient = e.target.value; await loadTimeline(); });
$("load-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const path = $("load-path").value.trim();
  if (!path) return;
  status("loading " + path + " …");
  try {
    const s = await api("/api/sources", { method: "POST", body: { path } });
    status("");
    await loadSources(s.id);
  } catch (err) { status(err.message); }
});

// -- ask ------------------------------------------------------------------------------------------
const BRACKET = /\[([^\[\]\n]{3,200})\]/g;
const KEYLIKE = /^(PMID:\s?\d+|[A-Z][A-Za-z]+\/[A-Za-z0-9\-.]{1,64}(#\d+-\d+)?)$/;

function renderCited(text, known) {
  // Text with [Type/id] citations turned into buttons; anything else stays literal text.
  const out = [];
  let last = 0;
  for (const m of text.matchAll(BRACKET)) {
    const parts = m[1].split(/[,;]\s*/).map((p) => p.trim());
    if (!parts.every((p) => KEYLIKE.test(p) || known.has(p))) continue;
    out.push(text.slice(last, m.index));
    parts.forEach((p) => out.push(citeButton(p.replace(/^PMID:\s?/, "PMID:"))));
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}

function renderAnswer(r) {
  const known = new Set((r.citations || []).map((c) => c.key));
  const box = $("answer");
  const text = el("div", { class: "text", id: "answer-text" });
  for (const para of (r.answer || "").split(/\n+/)) if (para.trim()) text.append(el("p", {}, renderCited(para, known)));
  const parts = [text];
  if ((r.unsupported || []).length) {
    parts.push(el("div", { class: "unsupported", id: "unsupported" },
      el("h3", {}, `Removed as unsupported (${r.unsupported.length})`),
      el("ul", {}, r.unsupported.map((u) => el("li", {}, el("span", { class: "stmt" }, u.statement), " ",
        el("span", { class: "why" }, "— " + u.reason)))))); 
  }
  if ((r.notices || []).length) parts.push(el("div", { class: "notices" }, r.notices.map((n) => typeof n === "string" ? n : JSON.stringify(n)).join(" · ")));
  parts.push(el("div", { class: "meta" }, `${(r.citations || []).length} citations verified · model ${r.model} · ${r.llm_calls} model calls · ${r.notice || ""}`));
  box.replaceChildren(...parts);
  box.hidden = false;
}

async function ask(task, question) {
  const body = { question };
  if (state.patient) body.patient = state.patient;
  if (state.source) body.source = state.source;
  const res = await api(`/api/${task}/stream`, { method: "POST", body, raw: true });
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "", result = null;
  const handle = (block) => {
    let event = "message", data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data += line.slice(5).trim();
    }
    if (!data) return;
    const obj = JSON.parse(data);
    if (event === "progress") {
      if (obj.line) $("progress").append(el("li", {}, obj.line));
    } else if (event === "result") {
      result = obj;
      $("progress").append(el("li", { class: "done" }, "done"));
    } else if (event === "error") {
      throw new Error(obj.detail);
    }
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) { handle(buf.slice(0, i)); buf = buf.slice(i + 2); }
  }
  if (buf.trim()) handle(buf);
  return result;
}

$("ask-task").addEventListener("change", (e) => {
  $("ask-input").required = e.target.value !== "summarize";
  $("ask-input").placeholder = e.target.value === "summarize" ? "(optional) focus of the summary" : "your question";
});

$("ask-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const task = $("ask-task").value;
  const q = $("ask-input").value.trim();
  if (!q && task !== "summarize") return;
  $("ask-button").disabled = true;
  $("progress").replaceChildren();
  $("answer").hidden = true;
  status("");
  try {
    const r = await ask(task, q || "Summarize the chart.");
    if (r) renderAnswer(r);
  } catch (err) { status(err.message); }
  finally { $("ask-button").disabled = false; }
});

(async function init() {
  try {
    const h = await api("/api/health");
    $("backend").textContent = "backend: " + h.backend;
    await loadSources(null);
  } catch (err) { status(err.message); }
})();
