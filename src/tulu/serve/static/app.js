// tulu chat: plain JavaScript, no build step, no network beyond this server.
// Each column is one model with its own conversation; in side-by-side mode one prompt goes to both
// columns and the two answers stream in parallel from /v1/chat/completions (stream: true).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], columns: [], controllers: [] };

// ---------------------------------------------------------------- rendering
function escapeHtml(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function inline(text) {
  // `code` spans and **bold** inside a paragraph (text is already escaped)
  return text.replace(/`([^`\n]+)`/g, "<code>$1</code>").replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>");
}

// Markdown-lite: ``` fenced blocks become <pre><code> (an unclosed fence while streaming too),
// everything else becomes paragraphs with inline code. All text is escaped first.
function renderMarkdown(src) {
  const out = [];
  const parts = src.split(/^```/m);
  parts.forEach((part, i) => {
    if (i % 2 === 1) {
      const nl = part.indexOf("\n");
      const lang = nl >= 0 ? part.slice(0, nl).trim() : part.trim();
      const body = nl >= 0 ? part.slice(nl + 1) : "";
      const cls = lang ? ` class="language-${escapeHtml(lang)}"` : "";
      out.push(`<pre><code${cls}>${escapeHtml(body.replace(/\n$/, ""))}</code></pre>`);
    } else {
      const text = i > 0 ? part.replace(/^[^\n]*\n?/, "") : part; // drop the closing fence's line rest
      for (const para of text.split(/\n{2,}/)) {
        if (para.trim()) out.push(`<p>${inline(escapeHtml(para))}</p>`);
      }
    }
  });
  return out.join("");
}

function addMessage(col, role, text) {
  const el = document.createElement("div");
  el.className = `msg ${role}`;
  if (role === "assistant") el.innerHTML = renderMarkdown(text);
  else el.textContent = text;
  col.list.appendChild(el);
  col.list.scrollTop = col.list.scrollHeight;
  return el;
}

// ---------------------------------------------------------------- columns
function buildColumns() {
  const names = [$("model-a").value];
  if ($("side-by-side").checked) names.push($("model-b").value);
  const main = $("columns");
  const old = state.columns;
  main.innerHTML = "";
  state.columns = names.map((model, i) => {
    const el = document.createElement("section");
    el.className = "column";
    el.dataset.index = String(i);
    el.innerHTML = `<h2></h2><div class="messages"></div>`;
    el.querySelector("h2").textContent = model;
    main.appendChild(el);
    const prev = old[i];
    const col = { model, el, list: el.querySelector(".messages"), history: [] };
    if (prev && prev.model === model) { // keep the conversation of a column whose model did not change
      col.history = prev.history;
      for (const m of col.history) addMessage(col, m.role, m.content);
    }
    return col;
  });
}

async function loadModels() {
  const resp = await fetch("/v1/models");
  const data = await resp.json();
  state.models = data.data.map((m) => m.id);
  for (const id of ["model-a", "model-b"]) {
    const sel = $(id);
    sel.innerHTML = "";
    for (const m of state.models) {
      const opt = document.createElement("option");
      opt.value = m; opt.textContent = m;
      sel.appendChild(opt);
    }
  }
  $("model-a").value = state.models[0];
  $("model-b").value = state.models[state.models.length - 1];
  buildColumns();
  $("status").textContent = `${state.models.length} model(s): ${state.models.join(", ")}`;
}

// ---------------------------------------------------------------- requests
function samplingBody() {
  const body = {};
  const t = parseFloat($("temperature").value);
  const p = parseFloat($("top-p").value);
  const n = parseInt($("max-tokens").value, 10);
  const s = $("seed").value.trim();
  if (!Number.isNaN(t)) body.temperature = t;
  if (!Number.isNaN(p)) body.top_p = p;
  if (!Number.isNaN(n)) body.max_tokens = n;
  if (s !== "" && !Number.isNaN(parseInt(s, 10))) body.seed = parseInt(s, 10);
  return body;
}

// Reads an SSE body; calls onData(obj) for every JSON event until `data: [DONE]`.
async function readSSE(resp, onData) {
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        onData(JSON.parse(data));
      }
    }
  }
}

async function ask(col, controller) {
  const system = $("system").value.trim();
  const messages = (system ? [{ role: "system", content: system }] : []).concat(col.history);
  const el = addMessage(col, "assistant", "");
  el.classList.add("streaming");
  let text = "";
  const started = performance.now();
  let firstAt = null;
  let usage = null;
  try {
    const resp = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: col.model, messages, stream: true, ...samplingBody() }),
      signal: controller.signal,
    });
    if (!resp.ok) {
      const err = await resp.json().catch(() => ({ error: { message: resp.statusText } }));
      throw new Error(err.error ? err.error.message : resp.statusText);
    }
    await readSSE(resp, (obj) => {
      if (obj.error) throw new Error(obj.error.message);
      if (obj.usage) usage = obj.usage;
      for (const ch of obj.choices || []) {
        if (ch.delta && ch.delta.content) {
          if (firstAt === null) firstAt = performance.now();
          text += ch.delta.content;
          el.innerHTML = renderMarkdown(text);
          col.list.scrollTop = col.list.scrollHeight;
        }
      }
    });
    col.history.push({ role: "assistant", content: text });
    const secs = (performance.now() - started) / 1000;
    const meta = document.createElement("div");
    meta.className = "meta";
    const toks = usage ? usage.completion_tokens : null;
    meta.textContent = (toks !== null ? `${toks} tokens · ${(toks / secs).toFixed(1)} tok/s · ` : "")
      + `first token ${firstAt === null ? "-" : ((firstAt - started) / 1000).toFixed(2) + " s"}`;
    el.after(meta);
  } catch (e) {
    if (e.name === "AbortError") {
      col.history.push({ role: "assistant", content: text });
      const meta = document.createElement("div");
      meta.className = "meta";
      meta.textContent = "stopped";
      el.after(meta);
    } else {
      el.classList.add("error");
      el.textContent = `Error: ${e.message}`;
      col.history.pop(); // the user turn that failed; it can be sent again
    }
  } finally {
    el.classList.remove("streaming");
  }
}

async function send(ev) {
  if (ev) ev.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || state.controllers.length) return;
  $("prompt").value = "";
  $("send").disabled = true;
  $("stop").disabled = false;
  state.controllers = state.columns.map(() => new AbortController());
  const jobs = state.columns.map((col, i) => {
    col.history.push({ role: "user", content: text });
    addMessage(col, "user", text);
    return ask(col, state.controllers[i]);
  });
  await Promise.allSettled(jobs);
  state.controllers = [];
  $("send").disabled = false;
  $("stop").disabled = true;
  $("prompt").focus();
}

function stop() {
  for (const c of state.controllers) c.abort();
}

// ---------------------------------------------------------------- wiring
$("composer").addEventListener("submit", send);
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send(); }
});
$("stop").addEventListener("click", stop);
$("clear").addEventListener("click", () => { stop(); state.columns = []; buildColumns(); });
$("side-by-side").addEventListener("change", () => {
  $("model-b-label").hidden = !$("side-by-side").checked;
  buildColumns();
});
$("model-a").addEventListener("change", buildColumns);
$("model-b").addEventListener("change", buildColumns);
loadModels().catch((e) => { $("status").textContent = `cannot list models: ${e.message}`; });
