// The panel under a reply: who answered, and how every candidate miner did.

import { element } from "./dom.js";

const fmt = (value, digits) => (typeof value === "number" ? value.toFixed(digits) : "—");

function order(candidates) {
  // Best reward first; miners without a reward (failed, pending) after, by latency.
  return [...candidates].sort((a, b) => {
    const ra = typeof a.reward === "number" ? a.reward : -1;
    const rb = typeof b.reward === "number" ? b.reward : -1;
    return rb - ra || (a.latency_ms ?? Infinity) - (b.latency_ms ?? Infinity);
  });
}

// A race, or a best_of that stopped waiting, answers before the others finish: their rewards
// come from ranking after the answer.
const LATER = "ranked after the answer";

function reward(candidate, strategy) {
  if (typeof candidate.reward === "number") return candidate.reward.toFixed(3);
  if (candidate.status === "pending") return LATER;
  return candidate.status === "ok" && strategy === "race" ? LATER : "—";
}

function notes(candidate) {
  const parts = [...(Array.isArray(candidate.reasons) ? candidate.reasons : [])];
  if (candidate.error) parts.push(String(candidate.error));
  return parts.join("; ");
}

function row(candidate, winnerUid, strategy) {
  const won = candidate.uid === winnerUid;
  const tr = element("tr", { className: won ? "winner" : "" },
    element("td", {}, String(candidate.uid), won ? element("span", { className: "badge" }, "answered") : ""),
    element("td", {}, element("code", { className: "hotkey", title: String(candidate.hotkey) }, String(candidate.hotkey))),
    element("td", {}, element("span", { className: `status status-${candidate.status}` }, String(candidate.status))),
    element("td", { className: "num" }, fmt(candidate.latency_ms, 0)),
    element("td", { className: "num reward" }, reward(candidate, strategy)),
    element("td", { className: "notes" }, notes(candidate)),
  );
  tr.dataset.uid = String(candidate.uid);
  return tr;
}

/** The expandable panel built from a response's `bitgate` block (every field is untrusted). */
export function candidatePanel(block) {
  const candidates = Array.isArray(block.candidates) ? block.candidates : [];
  const winner = block.miner ?? {};
  const chosen = candidates.find((c) => c.uid === winner.uid);
  const summary = element("summary", {},
    element("strong", {}, `Miner ${winner.uid ?? "?"} answered`),
    ` · reward ${chosen ? reward(chosen, block.strategy) : "—"} · ${candidates.length} candidates · ${block.strategy ?? "?"}`
      + ` · ranker ${block.ranker ?? "?"} · overhead ${fmt(block.overhead_ms, 1)} ms`,
  );
  const head = element("tr", {}, ...["uid", "hotkey", "status", "latency ms", "reward", "notes"]
    .map((name) => element("th", {}, name)));
  const table = element("table", { className: "candidates-table" },
    element("thead", {}, head),
    element("tbody", {}, ...order(candidates).map((c) => row(c, winner.uid, block.strategy))),
  );
  return element("details", { className: "candidates" }, summary, table);
}
