// The playground page's behaviour (served at playground.js, next to the page; the page's
// Content-Security-Policy allows no inline script).
"use strict";
const $ = (id) => document.getElementById(id);

function passages(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith("[")) {
    const list = JSON.parse(trimmed);
    if (!Array.isArray(list) || !list.every((p) => typeof p === "string")) {
      throw new Error("passages: a JSON list must hold only strings");
    }
    return list;
  }
  return text.split("\n").map((p) => p.trim()).filter((p) => p.length > 0);
}

function show(results, docs) {
  const list = $("results");
  list.replaceChildren();
  results.forEach((r, i) => {
    const li = document.createElement("li");
    li.dataset.index = r.index;
    li.dataset.score = r.relevance_score;
    const head = document.createElement("div");
    head.className = "head";
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = "#" + (i + 1);
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = r.relevance_score.toFixed(4);
    const idx = document.createElement("span");
    idx.className = "idx";
    idx.textContent = "passage " + (r.index + 1);
    head.append(rank, score, idx);
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = Math.max(0, Math.min(100, r.relevance_score * 100)) + "%";
    bar.append(fill);
    const text = document.createElement("div");
    text.className = "text";
    text.textContent = docs[r.index];
    li.append(head, bar, text);
    list.append(li);
  });
}

async function rerank(event) {
  event.preventDefault();
  $("error").textContent = "";
  let docs;
  try {
    docs = passages($("passages").value);
  } catch (err) {
    $("error").textContent = err.message;
    return;
  }
  const query = $("query").value;
  if (!query.trim()) {
    $("error").textContent = "query: must not be empty";
    $("query").focus();
    return;
  }
  if (docs.length === 0) {
    $("error").textContent = "passages: add at least one";
    $("passages").focus();
    return;
  }
  const body = { query: query, documents: docs };
  const instruction = $("instruction").value.trim();
  if (instruction) body.instruction = instruction;
  const topN = parseInt($("top_n").value, 10);
  if (topN > 0) body.top_n = topN;
  const headers = { "Content-Type": "application/json" };
  const key = $("api_key").value;
  if (key) headers["Authorization"] = "Bearer " + key;
  $("submit").disabled = true;
  $("status").textContent = "Scoring " + docs.length + " passages…";
  const started = performance.now();
  try {
    const answer = await fetch("v1/rerank", {
      method: "POST", headers: headers, body: JSON.stringify(body),
    });
    const ms = performance.now() - started;
    let data = null;
    try { data = await answer.json(); } catch (_) { data = null; }
    if (!answer.ok) {
      const message =
        data && data.error && data.error.message ? data.error.message : answer.statusText;
      const retry = answer.headers.get("Retry-After");
      $("results").replaceChildren();
      $("status").textContent = "";
      $("error").textContent =
        answer.status + ": " + message + (retry ? " (retry after " + retry + " s)" : "");
      return;
    }
    show(data.results, docs);
    const tokens = data.usage && data.usage.prompt_tokens;
    $("status").textContent = data.results.length + " of " + docs.length + " passages ranked in " +
      ms.toFixed(0) + " ms" + (tokens ? ", " + tokens + " tokens" : "") + " (" + data.model + ")";
  } catch (err) {
    $("status").textContent = "";
    $("error").textContent = "the server did not answer: " + err.message;
  } finally {
    $("submit").disabled = false;
  }
}

$("form").addEventListener("submit", rerank);
$("form").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) $("form").requestSubmit();
});
fetch("info").then((r) => r.json()).then((info) => { $("model").textContent = info.model; })
  .catch(() => { $("model").textContent = "unknown"; });
