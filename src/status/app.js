// The status page's script: fetches /status.json every sample period, fills the figures
// marked with data-field, draws the request charts on <canvas> and fills the top-torrents
// table. No library, nothing loaded from elsewhere. Text from the daemon (torrent names) only
// ever goes through textContent.
"use strict";

const CHARTS = [
  { id: "chart-udp", title: "UDP requests per second", series: [
    ["udp_connect", "connect", "#8e44ad"],
    ["udp_announce", "announce", "#2563eb"],
    ["udp_scrape", "scrape", "#0d9488"]] },
  { id: "chart-http", title: "HTTP requests per second", series: [
    ["http_announce", "announce", "#2563eb"],
    ["http_scrape", "scrape", "#0d9488"]] },
  { id: "chart-errors", title: "Errors per second (requests answered with an error)", series: [
    ["udp_errors", "UDP", "#c0392b"],
    ["http_errors", "HTTP", "#e67e22"]] },
];
const HOUR_S = 3600;
// Time spans the x axis may show: the shortest that holds the whole history, at most an hour.
const SPANS_S = [60, 300, 600, 900, 1800, HOUR_S];

let token = sessionStorage.getItem("mini-torrust-token") || "";
const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
if (m) {
  // Taken from the fragment (never sent to the server), kept for this tab, and dropped from the
  // address bar so that it does not linger in history or screenshots. A fragment that is not
  // valid percent-encoding is ignored (decodeURIComponent would throw and stop the script).
  try {
    token = decodeURIComponent(m[1]);
    sessionStorage.setItem("mini-torrust-token", token);
  } catch (e) {
    // Keep the tab's token, if any.
  }
  history.replaceState(null, "", location.pathname + location.search);
}

function field(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? o : o[k]), obj);
}

function sig3(v) { return String(Number(v.toPrecision(3))); }

const FORMATS = {
  text: (v) => String(v),
  int: (v) => Number(v).toLocaleString("en-US"),
  bytes: (v) => {
    if (v < 1024) { return v + " B"; }
    const units = ["KiB", "MiB", "GiB", "TiB"];
    let i = -1;
    do { v /= 1024; i++; } while (v >= 1024 && i < units.length - 1);
    return sig3(v) + " " + units[i];
  },
  dur: (s) => {
    if (s === 0) { return "0 s"; }
    if (s < 1e-3) { return sig3(s * 1e6) + " µs"; }
    if (s < 1) { return sig3(s * 1e3) + " ms"; }
    return sig3(s) + " s";
  },
  age: (s) => {
    s = Math.floor(s);
    if (s < 60) { return s + " s"; }
    if (s < 3600) { return Math.floor(s / 60) + " min " + (s % 60) + " s"; }
    if (s < 86400) { return Math.floor(s / 3600) + " h " + Math.floor(s % 3600 / 60) + " min"; }
    return Math.floor(s / 86400) + " d " + Math.floor(s % 86400 / 3600) + " h";
  },
};

function fillFigures(d) {
  for (const el of document.querySelectorAll("[data-field]")) {
    const v = field(d, el.dataset.field);
    el.textContent = v == null ? "never" : FORMATS[el.dataset.format](v);
  }
  const p = d.peers;
  const total = p.ipv4.seeders + p.ipv4.leechers + p.ipv6.seeders + p.ipv6.leechers;
  document.getElementById("peers-total").textContent = total.toLocaleString("en-US") + " in all";
  const ready = document.getElementById("ready");
  ready.textContent = d.ready ? "serving" : "not ready";
  ready.className = "badge " + (d.ready ? "ok" : "bad");
  document.getElementById("updated").textContent =
    "updated " + new Date(d.now_unix_ms).toLocaleTimeString("en-GB") +
    " · a point every " + d.history.sample_seconds + " s";
}

function fillTop(d) {
  const body = document.querySelector("#top tbody");
  const note = document.getElementById("top-note");
  body.replaceChildren();
  if (d.top == null) {
    note.hidden = false;
    note.textContent = "Hidden: the tracker is private. Enter the admin token above to see it.";
    return;
  }
  note.hidden = d.top.length > 0;
  note.textContent = "No torrents yet.";
  d.top.forEach((t, i) => {
    const tr = document.createElement("tr");
    const cell = (text, cls) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (cls) { td.className = cls; }
      tr.appendChild(td);
      return td;
    };
    cell(String(i + 1), "n");
    const name = cell(t.name != null ? t.name : t.info_hash, t.name != null ? "name" : "name hash");
    name.title = t.info_hash;
    name.dataset.infoHash = t.info_hash;
    cell(t.seeders.toLocaleString("en-US"), "n");
    cell(t.leechers.toLocaleString("en-US"), "n");
    cell((t.seeders + t.leechers).toLocaleString("en-US"), "n");
    cell(t.downloaded.toLocaleString("en-US"), "n");
    body.appendChild(tr);
  });
}

// 1, 2, 5 times a power of ten, at least v.
function niceCeil(v) {
  if (v <= 0) { return 1; }
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const k of [1, 2, 2.5, 5, 10]) { if (k * p >= v) { return k * p; } }
  return 10 * p;
}

function shortNum(v) {
  if (v >= 1e6) { return sig3(v / 1e6) + "M"; }
  if (v >= 1e3) { return sig3(v / 1e3) + "k"; }
  return sig3(v);
}

function drawChart(spec, h) {
  const canvas = document.getElementById(spec.id);
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.clientWidth, H = canvas.clientHeight;
  canvas.width = Math.round(W * dpr);
  canvas.height = Math.round(H * dpr);
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, W, H);
  const L = 64, R = 16, T = 34, B = 26;
  const pw = W - L - R, ph = H - T - B;
  const now = h.now_unix_ms;
  const lines = spec.series.map(([key, label, color]) => {
    const counts = h.series[key] || [];
    const pts = counts.map((c, i) => [(h.end_unix_ms[i] - now) / 1000, c / (h.dt_ms[i] / 1000)]);
    return { label, color, pts, last: pts.length ? pts[pts.length - 1][1] : null };
  });
  const oldest = h.end_unix_ms.length ? (now - h.end_unix_ms[0]) / 1000 + h.dt_ms[0] / 1000 : 0;
  const span = SPANS_S.find((s) => s >= oldest) || HOUR_S;
  let max = 0;
  for (const l of lines) { for (const p of l.pts) { if (p[0] >= -span) { max = Math.max(max, p[1]); } } }
  const top = niceCeil(max * 1.05);
  const x = (s) => L + pw * (s + span) / span;
  const y = (v) => T + ph - ph * v / top;

  g.font = "600 14px system-ui, 'DejaVu Sans', sans-serif";
  g.fillStyle = "#1c2330";
  g.textBaseline = "alphabetic";
  g.textAlign = "left";
  g.fillText(spec.title + " · last " + (span / 60) + " min", L, 20);
  // Legend, right-aligned on the title line, with each series' latest rate.
  g.font = "13px system-ui, 'DejaVu Sans', sans-serif";
  let lx = W - R;
  for (const l of lines.slice().reverse()) {
    const text = l.label + (l.last == null ? "" : "  " + shortNum(l.last) + "/s");
    const w = g.measureText(text).width;
    lx -= w;
    g.fillStyle = "#1c2330";
    g.fillText(text, lx, 20);
    lx -= 20;
    g.fillStyle = l.color;
    g.fillRect(lx, 11, 14, 4);
    lx -= 18;
  }
  // Grid and axes.
  g.strokeStyle = "#e3e7ee";
  g.lineWidth = 1;
  g.fillStyle = "#667085";
  g.textAlign = "right";
  g.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const v = top * i / 4, yy = Math.round(y(v)) + 0.5;
    g.beginPath(); g.moveTo(L, yy); g.lineTo(L + pw, yy); g.stroke();
    g.fillText(shortNum(v) + "/s", L - 6, yy);
  }
  g.textAlign = "center";
  g.textBaseline = "top";
  for (let i = 6; i >= 0; i--) {
    const ago = span * i / 6, xx = Math.round(x(-ago)) + 0.5;
    g.beginPath(); g.moveTo(xx, T); g.lineTo(xx, T + ph); g.stroke();
    const label = ago >= 60 ? "−" + (ago / 60) + " min" : "−" + ago + " s";
    g.fillText(i === 0 ? "now" : label, xx, T + ph + 6);
  }
  if (!lines.some((l) => l.pts.length)) {
    g.fillStyle = "#667085";
    g.textBaseline = "middle";
    g.fillText("collecting: the first point comes " + h.sample_seconds + " s after the start",
      L + pw / 2, T + ph / 2);
    return;
  }
  g.save();
  g.beginPath(); g.rect(L, T - 1, pw + 1, ph + 2); g.clip();
  g.lineWidth = 2;
  g.lineJoin = "round";
  for (const l of lines) {
    g.strokeStyle = l.color;
    g.beginPath();
    l.pts.forEach(([s, v], i) => { if (i === 0) { g.moveTo(x(s), y(v)); } else { g.lineTo(x(s), y(v)); } });
    g.stroke();
    if (l.pts.length === 1) {
      g.fillStyle = l.color;
      g.beginPath(); g.arc(x(l.pts[0][0]), y(l.pts[0][1]), 3, 0, 2 * Math.PI); g.fill();
    }
  }
  g.restore();
}

let last = null;
let timer = null;

function render(d) {
  last = d;
  fillFigures(d);
  fillTop(d);
  const h = Object.assign({ now_unix_ms: d.now_unix_ms }, d.history);
  for (const c of CHARTS) { drawChart(c, h); }
  document.body.dataset.loaded = "1";
}

async function refresh() {
  clearTimeout(timer);
  let period = 10;
  const err = document.getElementById("error");
  try {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    const r = await fetch("/status.json", { headers, cache: "no-store" });
    if (!r.ok) { throw new Error("HTTP " + r.status); }
    const d = await r.json();
    render(d);
    period = Math.max(1, d.history.sample_seconds);
    err.hidden = true;
  } catch (e) {
    err.hidden = false;
    err.textContent = "Cannot reach the daemon (" + e.message + "): showing the last figures received.";
  }
  timer = setTimeout(refresh, period * 1000);
}

document.getElementById("token").value = token;
document.getElementById("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("mini-torrust-token", token);
  refresh();
});
window.addEventListener("resize", () => { if (last) { render(last); } });
refresh();
