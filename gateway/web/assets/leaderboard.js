// The leaderboard: a pool's miners, sortable, refreshing itself, with score and latency charts.

import { ApiError, getJSON, pools } from "./api.js";
import { element, svg } from "./dom.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const REFRESH_MS = Math.max(500, Number(params.get("refresh_ms")) || 5000);
const HISTORY = 60;

const number = (digits) => (v) => (typeof v === "number" ? v.toFixed(digits) : "—");
const percent = (v) => (typeof v === "number" ? `${(v * 100).toFixed(0)} %` : "—");
const COLUMNS = [
  { key: "uid", label: "uid", show: String },
  { key: "hotkey", label: "hotkey", show: String, text: true },
  { key: "incentive", label: "incentive", show: number(4) },
  { key: "score", label: "score", show: number(3) },
  { key: "weight", label: "weight", show: number(3) },
  { key: "success_rate", label: "success", show: percent },
  { key: "p50_latency_ms", label: "p50 ms", show: number(0) },
  { key: "concurrency", label: "concurrency", show: number(0) },
  { key: "requests", label: "requests", show: String },
  { key: "cooling_until", label: "cool-down", show: (v) => (v ? `${Math.max(0, Math.round(v - Date.now() / 1000))} s` : "") },
];

const state = { pool: "", rows: [], sort: { key: "score", descending: true }, history: new Map() };
let timer = null;
let generation = 0;

function compare(a, b) {
  const { key, descending } = state.sort;
  const x = a[key];
  const y = b[key];
  let order;
  if (x === y) order = 0;
  else if (x === null || x === undefined) return 1;
  else if (y === null || y === undefined) return -1;
  else order = typeof x === "string" ? x.localeCompare(y) : x - y;
  return (descending ? -order : order) || a.uid - b.uid;
}

function spark(values, className) {
  const width = 90;
  const height = 22;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, class: `spark ${className}` });
  const known = values.filter((v) => typeof v === "number");
  if (known.length < 2) return chart;
  const low = Math.min(...known);
  const high = Math.max(...known);
  // A flat series sits mid-height; otherwise the lowest value is at the bottom.
  const y = (v) => (high === low ? height / 2 : height - 2 - ((v - low) / (high - low)) * (height - 4));
  const points = values
    .map((v, i) => (typeof v === "number" ? `${((i / (values.length - 1)) * width).toFixed(1)},${y(v).toFixed(1)}` : null))
    .filter(Boolean);
  chart.append(svg("polyline", { points: points.join(" ") }));
  return chart;
}

// Weights come from this validator's epochs; until one sets them, the column would be all zeros.
const weighted = () => state.rows.some((row) => typeof row.weight === "number" && row.weight > 0);
const columns = () => COLUMNS.filter((column) => column.key !== "weight" || weighted());

function showHead() {
  $("weight-note").hidden = weighted();
  const cells = columns().map((column) => {
    const active = state.sort.key === column.key;
    const button = element("button", { type: "button" }, column.label, active ? (state.sort.descending ? " ▼" : " ▲") : "");
    button.addEventListener("click", () => {
      state.sort = { key: column.key, descending: active ? !state.sort.descending : !column.text && column.key !== "uid" };
      showTable();
    });
    const th = element("th", {}, button);
    th.dataset.key = column.key;
    if (active) th.setAttribute("aria-sort", state.sort.descending ? "descending" : "ascending");
    return th;
  });
  cells.push(element("th", {}, "score over time"), element("th", {}, "p50 latency over time"));
  document.querySelector("#miners thead tr").replaceChildren(...cells);
}

function showTable() {
  showHead();
  const rows = [...state.rows].sort(compare).map((miner) => {
    const cells = columns().map((column) => element("td", { className: column.text ? "" : "num" },
      column.key === "hotkey" ? element("code", { className: "hotkey", title: String(miner.hotkey) }, String(miner.hotkey)) : column.show(miner[column.key])));
    const past = state.history.get(miner.uid) ?? [];
    cells.push(element("td", {}, spark(past.map((p) => p.score), "score")),
      element("td", {}, spark(past.map((p) => p.p50), "latency")));
    const tr = element("tr", { className: miner.cooling_down ? "cooling" : "" }, ...cells);
    tr.dataset.uid = String(miner.uid);
    return tr;
  });
  $("miners").querySelector("tbody").replaceChildren(...rows);
}

function remember(rows) {
  const seen = new Set();
  for (const miner of rows) {
    seen.add(miner.uid);
    const past = state.history.get(miner.uid) ?? [];
    past.push({ score: miner.score, p50: miner.p50_latency_ms });
    state.history.set(miner.uid, past.slice(-HISTORY));
  }
  for (const uid of state.history.keys()) if (!seen.has(uid)) state.history.delete(uid);
}

async function refresh() {
  clearTimeout(timer);
  if (!state.pool) return;
  const mine = ++generation;
  try {
    const board = await getJSON(`/v1/pools/${encodeURIComponent(state.pool)}/miners`);
    if (mine !== generation) return; // a newer refresh (another pool) took over
    state.rows = Array.isArray(board.data) ? board.data : [];
    remember(state.rows);
    showTable();
    $("updated").textContent = `${state.rows.length} miners · updated ${new Date().toLocaleTimeString()}`;
    $("notice").hidden = true;
  } catch (error) {
    if (mine !== generation) return;
    // Without a key, stop asking every few seconds: the person retries when they have one.
    showError(error, error.status === 401 ? refresh : null);
    if (error.status === 401) return;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function showError(error, retry) {
  $("notice").hidden = false;
  $("notice").textContent = error instanceof ApiError ? error.message : `Something went wrong: ${error.message}`;
  if (retry) {
    const again = element("button", { type: "button" }, "Retry");
    again.addEventListener("click", retry);
    $("notice").append(" ", again);
  }
}

async function start() {
  try {
    const names = await pools();
    $("pool").replaceChildren(...names.map((name) => element("option", { value: name }, name)));
    state.pool = names.includes(params.get("pool")) ? params.get("pool") : names[0] ?? "";
    $("pool").value = state.pool;
  } catch (error) {
    showError(error, start);
    return;
  }
  refresh();
}

$("pool").addEventListener("change", () => {
  state.pool = $("pool").value;
  state.history.clear();
  state.rows = [];
  const url = new URL(location.href);
  url.searchParams.set("pool", state.pool);
  history.replaceState(null, "", url);
  refresh();
});
start();
