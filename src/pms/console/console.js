// confdr's web console (docs/console.md): no framework, no CDN. Reads
// /api/status and /api/restores every 2 s; a switch asks /api/preview
// first and shows what will move, then POSTs with the CSRF token of
// /api/status. Everything shown is set as text, never as HTML.
"use strict";

const REFRESH_MS = 2000;
const CHART_BUCKETS = 180; // of the hour /api/restores keeps: the last 30 minutes
let csrf = "";
let pending = null; // the switch being confirmed

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function when(ms) {
  if (!ms) return "-";
  const d = new Date(ms);
  const age = Math.max(0, Math.round((Date.now() - ms) / 1000));
  const ago = age < 120 ? age + " s ago" : age < 7200 ? Math.round(age / 60) + " min ago" : Math.round(age / 3600) + " h ago";
  return d.toISOString().slice(11, 19) + "Z (" + ago + ")";
}

function reasonOf(o) {
  let r = o.reason || "";
  if (o.by) r += " by " + o.by;
  if (o.detail) r += ": " + o.detail;
  return r;
}

function badge(state) {
  const bad = state === "abnormal" || state === "down";
  return el("span", state, "badge " + (bad ? "bad" : "good"));
}

function loadBar(used, cap) {
  const wrap = el("span", null, "bar");
  const fill = el("span", null, "fill");
  const pct = cap > 0 ? Math.min(100, Math.round((100 * used) / cap)) : 0;
  fill.style.width = pct + "%";
  wrap.appendChild(fill);
  const box = el("span");
  box.appendChild(wrap);
  box.appendChild(el("span", " " + pct + "%"));
  return box;
}

function switchButton(target, id, to, label) {
  const b = el("button", label, to === "backup" ? "danger" : "");
  b.dataset.action = "switch";
  b.dataset.target = target;
  b.dataset.id = id;
  b.dataset.to = to;
  b.addEventListener("click", () => preview(target, id, to));
  return b;
}

function fill(tableId, rows) {
  const tb = document.querySelector("#" + tableId + " tbody");
  tb.replaceChildren(...rows);
}

function row(cells, attrs) {
  const tr = el("tr");
  for (const [k, v] of Object.entries(attrs || {})) tr.dataset[k] = v;
  for (const c of cells) {
    const td = el("td");
    if (c instanceof Node) td.appendChild(c);
    else if (Array.isArray(c)) { td.className = c[1]; td.textContent = String(c[0]); }
    else td.textContent = c === undefined || c === null ? "" : String(c);
    tr.appendChild(td);
  }
  return tr;
}

function showError(text) {
  const e = document.getElementById("error");
  e.textContent = text || "";
  e.hidden = !text;
}

function render(st) {
  document.getElementById("who").textContent =
    "pms of " + st.platform + " (" + st.instance + ", " + (st.active ? "active" : "not acting") +
    (st.epoch > 0 ? ", epoch " + st.epoch : "") + "), signed in as " + st.user + "; updated " + new Date(st.now).toISOString();
  const confsOf = {};
  for (const c of st.conferences) confsOf[c.platform] = c;
  fill("platforms", st.platforms.map((p) => {
    const c = confsOf[p.platform];
    const bad = p.state === "down";
    return row([
      p.platform, badge(p.state), p.manual ? "yes" : "no", p.backup_platform || "-", when(p.since), reasonOf(p),
      c ? [c.confs, "confs"] : "-",
      p.backup_platform ? (bad ? switchButton("platform", p.platform, "back", "Switch back")
                               : switchButton("platform", p.platform, "backup", "Switch to " + p.backup_platform))
                        : "",
    ], { platform: p.platform, state: p.state });
  }));
  fill("rooms", st.rooms.map((r) => row([
    r.room, r.platform, badge(r.state), r.manual ? "yes" : "no", r.mcus_up + "/" + r.mcus,
    [r.running_confs + "/" + r.capacity_confs, "confs"], loadBar(r.running_confs, r.capacity_confs),
    (r.domains || []).join(", "), when(r.since), reasonOf(r),
    r.state === "abnormal" ? switchButton("room", r.room, "back", "Switch back")
                           : switchButton("room", r.room, "backup", "Switch to backup"),
  ], { room: r.room, state: r.state, running: r.running_confs })));
  fill("confs", st.conferences.map((c) => row([
    c.platform, c.css, c.confs, c.states.creating, c.states.running, c.states.pending_restore,
    c.states.restoring, c.states.ending, c.restored, c.lost,
  ], { platform: c.platform })));
  fill("mcus", st.mcus.map((m) => row([
    m.mcu, m.platform, m.room, badge(m.state === "down" ? "down" : m.state), m.drain ? "yes" : "no",
    m.running_confs + "/" + m.capacity_confs, loadBar(m.running_confs, m.capacity_confs),
  ], { mcu: m.mcu })));
  const link = (v) => el("span", v, v === "up" || v === "unused" ? "" : "error");
  const daemons = [...st.daemons].sort((a, b) =>
    (a.platform + a.daemon + a.instance).localeCompare(b.platform + b.daemon + b.instance));
  fill("daemons", daemons.map((d) => row([
    d.platform, d.daemon, d.instance, d.role, d.epoch, link(d.amqp), link(d.redis), link(d.mysql), link(d.zookeeper),
    when(d.since),
  ], { daemon: d.daemon, instance: d.instance })));
  fill("alarms", st.alarms.map((a) => row([
    a.ts ? new Date(a.ts).toISOString() : "-", a.platform, [a.severity, "sev-" + a.severity], a.kind, a.target, a.detail,
  ])));
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function chart(series) {
  const c = document.getElementById("chart");
  const W = 720, H = 160, left = 40, bottom = 20, top = 10;
  const b = series.buckets.slice(-CHART_BUCKETS);
  const max = Math.max(1, ...b.map((x) => x.restored));
  const bw = (W - left) / Math.max(1, b.length);
  const parts = [];
  parts.push(svg("line", { x1: left, y1: H - bottom, x2: W, y2: H - bottom, class: "axis" }));
  parts.push(svg("text", { x: left - 4, y: top + 8, class: "label", "text-anchor": "end" }, String(max)));
  parts.push(svg("text", { x: left - 4, y: H - bottom, class: "label", "text-anchor": "end" }, "0"));
  let total = 0;
  b.forEach((x, i) => {
    total += x.restored;
    const xpos = left + i * bw;
    if (x.room_events > 0)
      parts.push(svg("rect", { x: xpos, y: top, width: Math.max(1, bw), height: H - bottom - top, class: "event" }));
    if (x.restored > 0) {
      const h = ((H - bottom - top) * x.restored) / max;
      const r = svg("rect", { x: xpos, y: H - bottom - h, width: Math.max(1, bw - 0.5), height: h, class: "restored" });
      r.appendChild(svg("title", {}, new Date(x.t).toISOString() + ": " + x.restored + " restored"));
      parts.push(r);
    }
  });
  if (b.length) {
    parts.push(svg("text", { x: left, y: H - 4, class: "label" }, new Date(b[0].t).toISOString().slice(11, 19)));
    parts.push(svg("text", { x: W, y: H - 4, class: "label", "text-anchor": "end" },
                   new Date(b[b.length - 1].t).toISOString().slice(11, 19) + " UTC"));
  }
  c.replaceChildren(...parts);
  c.dataset.total = String(total);
  document.getElementById("chart-caption").textContent =
    "conferences restored per " + series.bucket_ms / 1000 + " s over the last 30 minutes: " + total +
    " in all; shaded: a room changed state";
}

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (!r.ok) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

async function refresh() {
  try {
    const s = await getJSON("/api/status");
    csrf = s.csrf;
    render(s.status);
    chart(await getJSON("/api/restores"));
    showError("");
  } catch (e) {
    showError("cannot read the state: " + e.message);
  }
}

async function preview(target, id, to) {
  try {
    const q = new URLSearchParams({ target, id, to });
    const p = await getJSON("/api/preview?" + q);
    pending = p;
    document.getElementById("confirm-title").textContent =
      (to === "backup" ? "Switch " + target + " " + id + " to its backup" : "Switch " + target + " " + id + " back") + "?";
    document.getElementById("confirm-via").textContent = p.decided_by;
    document.getElementById("confirm-rooms").textContent = p.rooms.join(", ") || "-";
    document.getElementById("confirm-domains").textContent = p.user_domains.join(", ") || "-";
    document.getElementById("confirm-to").textContent = to === "backup" ? p.to_rooms.join(", ") : id;
    document.getElementById("confirm-confs").textContent = String(p.conferences);
    document.getElementById("confirm-note").textContent = p.note;
    document.getElementById("confirm-reason").value = "";
    document.getElementById("confirm").showModal();
  } catch (e) {
    showError("cannot preview the switch: " + e.message);
  }
}

async function doSwitch(p, reason) {
  const res = document.getElementById("result");
  res.textContent = "switching " + p.target + " " + p.id + "...";
  const path = (p.target === "room" ? "/api/rooms/" : "/api/platforms/") + encodeURIComponent(p.id) + "/switch";
  try {
    const r = await fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Confdr-Csrf": csrf },
      body: JSON.stringify({ to: p.to, reason }),
    });
    const o = await r.json();
    if (o.ok) {
      const a = o.answer;
      res.textContent = p.target + " " + p.id + ": " + a.state + (a.manual ? " (manual)" : "") + " since " +
        new Date(a.since).toISOString() + ", epoch " + a.epoch + (a.changed === false ? " (it already was)" : "") +
        ", decided by the pms of " + o.via;
      res.className = "ok";
    } else {
      res.textContent = p.target + " " + p.id + ": refused: " + (o.reason || o.error) + ": " + o.detail;
      res.className = "error";
    }
  } catch (e) {
    res.textContent = "switch failed: " + e.message;
    res.className = "error";
  }
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  const dlg = document.getElementById("confirm");
  dlg.addEventListener("close", () => {
    if (dlg.returnValue === "ok" && pending) doSwitch(pending, document.getElementById("confirm-reason").value);
    pending = null;
  });
  refresh();
  setInterval(refresh, REFRESH_MS);
});
