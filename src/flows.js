// flows.js - the flow viewer's behaviour: the live list (Server-Sent
// Events), the filter, the detail pane, replay, copy as curl, HAR export
// and clearing. Plain modern JavaScript, no framework, no build step.
//
// Everything captured is someone else's bytes: it only ever reaches the
// page as text (textContent), never as markup.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  flows: [],          // summaries, oldest first
  byId: new Map(),    // id -> row element
  selected: null,     // id
  filter: "",
  detail: null,       // the selected flow in full
  tab: "request",
};

// ---- helpers --------------------------------------------------------------

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function size(n) {
  if (n == null) return "";
  if (n < 1024) return n + " B";
  if (n < 1024 * 1024) return (n / 1024).toFixed(n < 10240 ? 1 : 0) + " KB";
  return (n / 1048576).toFixed(1) + " MB";
}

function ms(v) {
  if (v == null || v < 0) return "–";
  return v < 10 ? v.toFixed(2) + " ms" : v < 1000 ? v.toFixed(0) + " ms" : (v / 1000).toFixed(2) + " s";
}

function statusClass(s) {
  return s >= 200 && s < 600 ? "s" + Math.floor(s / 100) : "";
}

function toast(text) {
  let t = document.querySelector(".toast");
  if (!t) document.body.append((t = el("div", { class: "toast" })));
  t.textContent = text;
  t.classList.add("shown");
  clearTimeout(t.timer);
  t.timer = setTimeout(() => t.classList.remove("shown"), 1800);
}

async function api(path, options) {
  const resp = await fetch(path, Object.assign({ credentials: "same-origin" }, options));
  if (!resp.ok) {
    let message = resp.status + " " + resp.statusText;
    try { message = (await resp.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return resp;
}

function header(headers, name) {
  const want = name.toLowerCase();
  const hit = (headers || []).find(([n]) => n.toLowerCase() === want);
  return hit ? hit[1] : "";
}

// ---- the list -------------------------------------------------------------

function pathOf(f) {
  return f.url.replace(/^[a-z]+:\/\//i, "");
}

function makeRow(f) {
  if (f.running) {
    const tr = el("tr", { "data-id": f.id, class: "running" },
      el("td", { class: "c-mark" }), el("td", { class: "c-id", text: String(f.id) }),
      el("td", { class: "c-method", text: f.method }),
      el("td", { class: "c-url", title: f.url, text: pathOf(f) }),
      el("td", { class: "c-status", title: "in progress", text: "…" }),
      el("td", { class: "c-size" }), el("td", { class: "c-time" }));
    tr.addEventListener("click", () => select(f.id));
    return tr;
  }
  const tr = el("tr", { "data-id": f.id },
    el("td", { class: "c-mark" }, f.modified ? el("span", { class: "mark", title: "A script changed this flow", text: "✎" }) : null),
    el("td", { class: "c-id", text: String(f.id) }),
    el("td", { class: "c-method", text: f.method }),
    el("td", { class: "c-url", title: f.url, text: pathOf(f) }),
    el("td", { class: "c-status " + (f.error ? "err" : statusClass(f.status)),
               title: f.error || "", text: f.status ? String(f.status) : "–" }),
    el("td", { class: "c-size", text: f.tunnel && !f.websocket ? size(f.req_bytes + f.res_bytes) : size(f.res_bytes) }),
    el("td", { class: "c-time", text: ms(f.duration_ms) }));
  tr.addEventListener("click", () => select(f.id));
  return tr;
}

function updateCount() {
  $("count").textContent = state.flows.length + (state.flows.length === 1 ? " flow" : " flows");
  $("empty").classList.toggle("hidden", state.flows.length > 0);
}

function render() {
  const rows = $("rows");
  rows.replaceChildren();
  state.byId.clear();
  for (const f of state.flows) {
    const tr = makeRow(f);
    state.byId.set(f.id, tr);
    rows.append(tr);
  }
  if (state.selected != null && state.byId.has(state.selected))
    state.byId.get(state.selected).classList.add("selected");
  updateCount();
}

function addFlow(f) {
  streamed.set(f.id, f);
  const old = state.byId.get(f.id);
  if (old) {
    // A flow that was running has finished: its row takes the outcome.
    if (f.running) return;
    const i = state.flows.findIndex((g) => g.id === f.id);
    if (i >= 0) state.flows[i] = f;
    const tr = makeRow(f);
    if (old.classList.contains("selected")) tr.classList.add("selected");
    old.replaceWith(tr);
    state.byId.set(f.id, tr);
    if (state.selected === f.id) showDetail(f.id);
    return;
  }
  state.flows.push(f);
  const tr = makeRow(f);
  tr.classList.add("fresh");
  state.byId.set(f.id, tr);
  const pane = $("list-pane");
  const atBottom = pane.scrollTop + pane.clientHeight >= pane.scrollHeight - 4;
  $("rows").append(tr);
  if (atBottom) pane.scrollTop = pane.scrollHeight;
  updateCount();
}

// Loads can overlap (the filter typed on, the stream reopened): only the
// latest one started shows its answer, whatever order they come back in.
let loadsStarted = 0;
// What the stream delivered since the latest load started, by id: the
// list it fetches may be older (flow ids follow the workers, not the
// order flows end in, so only ids tell what the list lacks).
const streamed = new Map();

async function load() {
  const seq = ++loadsStarted;
  const filter = state.filter;
  const q = filter ? "?filter=" + encodeURIComponent(filter) : "";
  streamed.clear();
  try {
    const resp = await api("/api/flows" + q);
    const flows = await resp.json();
    if (seq !== loadsStarted)
      return;
    if (!filter) {
      const at = new Map(flows.map((f, i) => [f.id, i]));
      for (const [id, f] of streamed) {
        if (!at.has(id)) flows.push(f);
        else if (!f.running) flows[at.get(id)] = f; // never back to running
      }
    }
    state.flows = flows;
    $("filter").classList.remove("bad");
    $("filter-error").classList.remove("shown");
    render();
  } catch (e) {
    if (seq !== loadsStarted)
      return;
    $("filter").classList.add("bad");
    $("filter-error").textContent = e.message;
    $("filter-error").classList.add("shown");
  }
}

let reloadTimer = null;
function reloadSoon(delay) {
  clearTimeout(reloadTimer);
  reloadTimer = setTimeout(load, delay);
}

function listen() {
  const events = new EventSource("/api/events");
  // The stream does not replay what ended while it was not open (before it
  // first opened, or while the browser reconnects it): the list is fetched
  // again each time it opens.
  events.addEventListener("open", () => {
    $("live").classList.remove("off");
    load();
  });
  events.addEventListener("error", () => {
    $("live").classList.add("off");
    // A stream that cannot open at all still leaves the list to look at.
    if (loadsStarted === 0) load();
  });
  events.addEventListener("start", (ev) => {
    if (!state.filter) addFlow(JSON.parse(ev.data));
  });
  events.addEventListener("flow", (ev) => {
    const f = JSON.parse(ev.data);
    // Only the proxy knows the filter language: with one set, ask it.
    if (state.filter) reloadSoon(250);
    else addFlow(f);
  });
  events.addEventListener("clear", () => {
    state.flows = [];
    state.selected = null;
    render();
    showHint();
  });
}

// ---- selection and keys ----------------------------------------------------

function select(id) {
  if (state.selected != null && state.byId.has(state.selected))
    state.byId.get(state.selected).classList.remove("selected");
  state.selected = id;
  const tr = state.byId.get(id);
  if (tr) {
    tr.classList.add("selected");
    tr.scrollIntoView({ block: "nearest" });
  }
  showDetail(id);
}

function move(step) {
  if (!state.flows.length) return;
  let i = state.flows.findIndex((f) => f.id === state.selected);
  i = i < 0 ? (step > 0 ? 0 : state.flows.length - 1)
            : Math.min(state.flows.length - 1, Math.max(0, i + step));
  select(state.flows[i].id);
}

document.addEventListener("keydown", (ev) => {
  const typing = ev.target === $("filter");
  if (ev.key === "/" && !typing) { ev.preventDefault(); $("filter").focus(); return; }
  if (ev.key === "Escape" && typing) { $("filter").blur(); return; }
  if (typing) return;
  if (ev.key === "ArrowDown" || ev.key === "j") { ev.preventDefault(); move(1); }
  else if (ev.key === "ArrowUp" || ev.key === "k") { ev.preventDefault(); move(-1); }
  else if (ev.key === "Home") { ev.preventDefault(); move(-Infinity); }
  else if (ev.key === "End") { ev.preventDefault(); move(Infinity); }
});

// ---- the detail pane ------------------------------------------------------

function showHint() {
  $("detail").replaceChildren(el("p", { class: "hint", text: "Select a flow (↑ ↓ move the selection, / filters)." }));
}

function headersTable(head, compareWith, missing) {
  const table = el("table", { class: "headers" });
  if (!head) return el("p", { class: "hint", text: missing || "—" });
  const other = compareWith ? compareWith.headers : null;
  for (const [name, value] of head.headers) {
    let cls = "";
    if (other) {
      const same = other.find(([n]) => n.toLowerCase() === name.toLowerCase());
      cls = !same ? "added" : same[1] !== value ? "changed" : "";
    }
    table.append(el("tr", { class: cls }, el("td", { text: name + ":" }), el("td", { text: value })));
  }
  if (other) {
    for (const [name, value] of other) {
      if (!head.headers.some(([n]) => n.toLowerCase() === name.toLowerCase()))
        table.append(el("tr", { class: "removed" }, el("td", { text: name + ":" }), el("td", { text: value })));
    }
  }
  return el("div", null, el("div", { class: "startline", text: head.line }), table);
}

function hexdump(bytes) {
  const lines = [];
  const n = Math.min(bytes.length, 16384);
  for (let i = 0; i < n; i += 16) {
    const row = bytes.subarray(i, Math.min(i + 16, n));
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const text = Array.from(row, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(i.toString(16).padStart(8, "0") + "  " + hex.padEnd(48) + "  " + text);
  }
  if (bytes.length > n) lines.push("… " + (bytes.length - n) + " more bytes");
  return lines.join("\n");
}

// Fetches a body and shows it as what it is: JSON pretty-printed, text,
// an image, or a hex dump.
async function bodyView(flow, side, info, head, received) {
  const box = el("div");
  if (!info || info.kept === 0) {
    box.append(el("p", { class: "hint", text: info && info.size ? "(not kept)" : "(no body)" }));
    return box;
  }
  const type = header(head && head.headers, "content-type").toLowerCase();
  const coding = header(head && head.headers, "content-encoding");
  const note = [size(info.size)];
  if (info.truncated) note.push("truncated: first " + size(info.kept) + " kept");
  if (coding) note.push("decoded from " + coding);
  box.append(el("div", { class: "body-info", text: note.join(" · ") }));
  const base = "/api/flows/" + flow.id + "/" + side + "/body?as=" + (received ? "received" : "sent");
  let bytes;
  try {
    bytes = new Uint8Array(await (await api(base + (coding && !info.truncated ? "&decoded=1" : ""))).arrayBuffer());
  } catch (e) {
    bytes = new Uint8Array(await (await api(base)).arrayBuffer());
    box.firstChild.textContent += " (could not decode: " + e.message + ")";
  }
  if (type.startsWith("image/") && !type.includes("svg")) {
    const img = el("img", { class: "body", alt: "image body" });
    img.src = URL.createObjectURL(new Blob([bytes], { type }));
    box.append(img);
    return box;
  }
  let text = null;
  try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); } catch (e) { /* binary */ }
  if (text !== null && (type.includes("json") || /^\s*[{[]/.test(text))) {
    try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON after all */ }
  }
  box.append(el("pre", { class: "body", text: text !== null ? text : hexdump(bytes) }));
  return box;
}

function timingView(f) {
  const t = f.timings;
  const parts = [["blocked", "Blocked"], ["dns", "DNS"], ["connect", "Connect"], ["tls", "TLS"],
                 ["send", "Send"], ["wait", "Wait"], ["receive", "Receive"]];
  const total = parts.reduce((s, [k]) => s + Math.max(0, t[k] || 0), 0) || 1;
  const bar = el("div", { class: "bar", title: "Total " + ms(f.duration_ms) });
  const legend = el("div", { class: "legend" });
  for (const [k, label] of parts) {
    const v = t[k];
    if (v > 0) {
      const seg = el("span", { class: "t-" + k, title: label + " " + ms(v) });
      seg.style.width = (100 * v / total).toFixed(2) + "%";
      bar.append(seg);
    }
    legend.append(el("span", null, el("i", { class: "t-" + k }), label),
                  el("span"), el("span", { class: "v", text: ms(v) }));
  }
  legend.append(el("strong", { text: "Total" }), el("span"),
                el("strong", { class: "v", text: ms(f.duration_ms) }));
  return el("div", { class: "timing" }, bar, legend);
}

// The request as a curl command; <body> is its body as text, or null.
// Every captured string goes in single quotes, whole: nothing in a URL, a
// header or a body can end a quote and reach the shell it is pasted into.
function curlOf(f, body) {
  const q = (s) => "'" + String(s).replace(/'/g, "'\\''") + "'";
  const head = f.request.received;
  if (f.method === "CONNECT") return "# a CONNECT tunnel to " + f.url + " cannot be repeated with curl";
  // The proxy's address is not known here: curl takes it from $http_proxy.
  // -g: to curl, [1-3] and {a,b} in a URL are globs, which would make one
  // captured request many.
  const parts = ["curl", "-g"];
  if (f.method !== "GET") parts.push("-X", q(f.method));
  for (const [n, v] of head ? head.headers : []) {
    if (/^(host|proxy-connection|content-length|connection)$/i.test(n)) continue;
    parts.push("-H", q(n + ": " + v));
  }
  // --data-raw: to --data and --data-binary, a value that starts with "@"
  // names a file, which the command would then send to the captured URL.
  if (body != null) parts.push("--data-raw", q(body));
  parts.push(q(f.url));
  return parts.join(" ");
}

async function copyCurl(f) {
  // The body goes into the command as it is made, never by replacing a
  // placeholder in it afterwards: a header could hold the placeholder, and
  // "$'" or "$`" in a body mean something to String.replace.
  const body = f.method !== "CONNECT" && f.request.body.kept > 0
    ? await (await api("/api/flows/" + f.id + "/request/body")).text() : null;
  const cmd = curlOf(f, body);
  try {
    await navigator.clipboard.writeText(cmd);
    toast("Copied as curl");
  } catch (e) {
    window.prompt("Copy as curl:", cmd);
  }
}

async function replay(f) {
  try {
    const resp = await api("/api/flows/" + f.id + "/replay", { method: "POST" });
    const { id } = await resp.json();
    toast("Replayed as #" + id);
    if (!state.byId.has(id)) await load();
    select(id);
  } catch (e) {
    toast("Replay failed: " + e.message);
  }
}

function tabButton(name, label) {
  return el("button", { class: state.tab === name ? "active" : "", "data-tab": name, text: label,
                        onclick: () => { state.tab = name; renderDetail(); } });
}

async function renderTab(f) {
  const box = el("div", { class: "tab" });
  if (state.tab === "request") {
    box.append(el("h3", { text: "As received" }), headersTable(f.request.received));
    box.append(el("h3", { text: "As forwarded" }),
      headersTable(f.request.forwarded, null, f.local ? "Not forwarded: a script answered." : "Not forwarded."));
    box.append(el("h3", { text: "Body" }), await bodyView(f, "request", f.request.body, f.request.received));
  } else if (state.tab === "response") {
    box.append(el("h3", { text: "As sent to the client" }), headersTable(f.response.sent));
    if (f.response.received)
      box.append(el("h3", { text: "As received" }), headersTable(f.response.received));
    box.append(el("h3", { text: "Body" }), await bodyView(f, "response", f.response.body, f.response.sent));
  } else if (state.tab === "changes") {
    const reqBefore = f.request.before_hooks, resBefore = f.response.before_hooks;
    box.append(el("h3", { text: "Request: before the hooks → forwarded" }),
      reqBefore ? el("div", { class: "compare" }, headersTable(reqBefore), headersTable(f.request.forwarded, reqBefore))
                : el("p", { class: "hint", text: "No request hook ran." }));
    box.append(el("h3", { text: "Response: before the hooks → sent" }),
      resBefore ? el("div", { class: "compare" }, headersTable(resBefore), headersTable(f.response.sent, resBefore))
                : el("p", { class: "hint", text: "No response hook ran." }));
    if (f.response.body.changed) {
      const received = { size: f.response.body.size, kept: f.response.body.kept, truncated: false };
      box.append(el("h3", { text: "Response body: received → sent" }),
        el("div", { class: "compare" },
           await bodyView(f, "response", received, f.response.received, true),
           await bodyView(f, "response", f.response.body, f.response.sent)));
    }
    box.append(el("h3", { text: "Hooks that ran, and what each changed" }));
    // Each hook call with what it changed, so with several scripts a
    // change is read next to the script that made it.
    const hookItem = (h) => {
      const changed = h.changed || [];
      return el("li", null, el("span", { text: h.script + ": " + h.hook + (changed.length ? "" : " (no change)") }),
        ...(changed.length ? [el("ul", { class: "hook-changes" }, ...changed.map((c) => el("li", { text: c })))] : []));
    };
    box.append(f.hooks.length ? el("ul", { class: "hooks" }, ...f.hooks.map(hookItem))
                              : el("p", { class: "hint", text: "None." }));
    box.append(el("h3", { text: "Script log" }));
    box.append(f.logs.length ? el("pre", { class: "body", text: f.logs.map((l) => "[" + l.script + "] " + l.line).join("\n") })
                             : el("p", { class: "hint", text: "Nothing logged." }));
  } else if (state.tab === "timing") {
    box.append(timingView(f));
  } else if (state.tab === "messages") {
    for (const m of f.messages) {
      const arrow = m.type === "send" ? "↑" : "↓";
      // Control frames and binary data say what they are; text is shown as is.
      const tags = [];
      if (m.kind !== "text") tags.push(m.kind + (m.close_code !== undefined ? " " + m.close_code : ""));
      if (m.compressed) tags.push(m.decode_error ? "compressed, not decoded: " + m.decode_error : "decompressed");
      if (m.encoding === "base64") tags.push("base64");
      const label = tags.length ? "[" + tags.join(", ") + "] " : "";
      box.append(el("div", { class: "msg" + (m.kind === "text" || m.kind === "binary" ? "" : " control") },
        el("span", { class: "dir " + m.type, text: arrow }),
        el("span", { text: label + m.data + (m.truncated ? " …" : "") })));
    }
    if (f.messages_dropped) box.append(el("p", { class: "hint", text: "Later messages were not kept." }));
  }
  return box;
}

async function renderDetail() {
  const f = state.detail;
  if (!f) return;
  const pane = $("detail");
  const title = el("div", { class: "title" },
    el("span", { class: "status " + (f.error ? "err" : statusClass(f.status)), text: f.status ? String(f.status) : "–" }),
    el("h2", { text: f.method + " " + f.url }));
  const meta = el("div", { class: "meta",
    text: "#" + f.id + " · " + new Date(f.started).toLocaleTimeString() + " · " + f.client +
          " · " + ms(f.duration_ms) + " · ↑ " + size(f.req_bytes) + " ↓ " + size(f.res_bytes) });
  const actions = el("div", { class: "actions" },
    el("button", { id: "replay", text: "Replay", title: "Send this request again through the proxy",
                   onclick: () => replay(f) }),
    el("button", { id: "curl", text: "Copy as curl", onclick: () => copyCurl(f) }));
  const parts = [title, meta, actions];
  if (f.error) parts.push(el("div", { class: "error-box", text: "Error: " + f.error }));
  if (f.modified) {
    parts.push(el("div", { class: "changed-box" }, el("strong", { text: "Changed by a script" }),
      el("ul", null, ...f.changes.map((c) => el("li", { text: c })))));
  }
  const tabs = el("div", { class: "tabs", role: "tablist" },
    tabButton("request", "Request"), tabButton("response", "Response"),
    tabButton("changes", "Changes"), tabButton("timing", "Timing"),
    f.messages.length ? tabButton("messages", "Messages (" + f.messages.length + ")") : null);
  if (state.tab === "messages" && !f.messages.length) state.tab = "request";
  parts.push(tabs, await renderTab(f));
  if (state.detail === f) pane.replaceChildren(...parts);
}

async function showDetail(id) {
  const summary = state.flows.find((f) => f.id === id);
  if (summary && summary.running) {
    $("detail").replaceChildren(el("p", { class: "hint", text: summary.method + " " + summary.url + " is still in progress." }));
    return;
  }
  try {
    const f = await (await api("/api/flows/" + id)).json();
    if (state.selected !== id) return;
    state.detail = f;
    await renderDetail();
  } catch (e) {
    $("detail").replaceChildren(el("p", { class: "hint", text: "This flow is gone: " + e.message }));
  }
}

// ---- header buttons --------------------------------------------------------

$("filter").addEventListener("input", () => {
  state.filter = $("filter").value.trim();
  reloadSoon(300);
});
$("filter").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter") { state.filter = $("filter").value.trim(); reloadSoon(0); }
});
$("export").addEventListener("click", () => {
  const a = el("a", { href: "/flows.har" + (state.filter ? "?filter=" + encodeURIComponent(state.filter) : ""),
                      download: "flows.har" });
  document.body.append(a);
  a.click();
  a.remove();
});
$("clear").addEventListener("click", async () => {
  if (!confirm("Remove every captured flow?")) return;
  await api("/api/flows", { method: "DELETE" });
  state.flows = [];
  state.selected = null;
  render();
  showHint();
});

// The first list comes when the stream opens (see listen), not before it
// as well: the page fetches it once.
listen();
