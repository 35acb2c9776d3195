// Drives the flow viewer in headless Chromium through the DevTools
// protocol (Node's own WebSocket; no packages needed) and prints what it
// saw as one JSON line. The spec (viewer_spec.lua) makes the judgements.
//
//   node --experimental-websocket viewer_check.js ADMIN_URL PROXY_PORT ORIGIN_URL SCREENSHOT
//
// Steps: open ADMIN_URL (with ?token=), wait for the list, send two new
// requests through the proxy and wait for them to appear live, filter the
// list, click a row and read the detail pane, press the arrow keys, and
// save a screenshot. Every wait is bounded; on any failure the JSON says
// where.
"use strict";

const { spawn } = require("child_process");
const fs = require("fs");
const http = require("http");
const os = require("os");
const path = require("path");

const [adminUrl, proxyPort, originUrl, screenshot] = process.argv.slice(2);
const result = { steps: [], events: [], page_errors: [] };
let listFetches = 0;
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "luaproxy-chromium-"));
let chrome = null;

// Chromium's helper processes (zygote, renderer, GPU) outlive a killed
// browser process for a moment and write into the profile, so the whole
// process group is killed and the profile removed once the browser has
// exited; otherwise the directory is left behind in /tmp.
function finish(code) {
  const done = () => {
    try { fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5 }); } catch (e) { /* best effort */ }
    process.stdout.write(JSON.stringify(result) + "\n");
    process.exit(code);
  };
  if (!chrome || chrome.exitCode !== null || chrome.signalCode !== null) return done();
  chrome.once("exit", done);
  try { process.kill(-chrome.pid, "SIGKILL"); } catch (e) { chrome.kill("SIGKILL"); }
  setTimeout(done, 5000);
}
setTimeout(() => { result.error = "overall timeout"; finish(1); }, 100000);

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitFor(what, fn, timeout = 15000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error("timed out waiting for " + what);
    await sleep(50);
  }
}

// A GET through the proxy, as any client would send it.
function viaProxy(url) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port: Number(proxyPort), path: url,
                               headers: { Host: new URL(url).host } }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("error", reject);
    req.end();
  });
}

let ws, nextId = 1, sessionId = null;
const pending = new Map();
function send(method, params = {}, session = sessionId) {
  const id = nextId++;
  const msg = { id, method, params };
  if (session) msg.sessionId = session;
  ws.send(JSON.stringify(msg));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject, method }));
}
async function evaluate(expr) {
  const r = await send("Runtime.evaluate", { expression: expr, returnByValue: true, awaitPromise: true });
  if (r.exceptionDetails) throw new Error("page error: " + JSON.stringify(r.exceptionDetails).slice(0, 300));
  return r.result.value;
}
async function key(k, code) {
  await send("Input.dispatchKeyEvent", { type: "keyDown", key: k, code, windowsVirtualKeyCode: code === "ArrowDown" ? 40 : 38 });
  await send("Input.dispatchKeyEvent", { type: "keyUp", key: k, code });
}
const rowCount = () => evaluate("document.querySelectorAll('#rows tr').length");
async function snap(file) {
  const shot = await send("Page.captureScreenshot", { format: "png" });
  fs.writeFileSync(file, Buffer.from(shot.data, "base64"));
}

async function main() {
  chrome = spawn("/usr/bin/chromium", [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server", "--user-data-dir=" + profile, "--remote-debugging-port=0",
    "--window-size=1440,900", "--hide-scrollbars", "about:blank",
  ], { stdio: ["ignore", "ignore", "pipe"], detached: true,
        // its singleton socket directory goes to TMPDIR: inside the profile, removed with it
        env: { ...process.env, TMPDIR: profile } });
  chrome.stderr.on("data", () => {});
  const portFile = path.join(profile, "DevToolsActivePort");
  const lines = await waitFor("DevToolsActivePort", () =>
    fs.existsSync(portFile) && fs.readFileSync(portFile, "utf8").trim().split("\n").length === 2 &&
    fs.readFileSync(portFile, "utf8").trim().split("\n"), 20000);
  ws = new WebSocket("ws://127.0.0.1:" + lines[0] + lines[1]);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.id && pending.has(msg.id)) {
      const p = pending.get(msg.id);
      pending.delete(msg.id);
      if (msg.error) p.reject(new Error(p.method + ": " + msg.error.message));
      else p.resolve(msg.result);
    } else if (msg.method === "Network.requestWillBeSent") {
      // Every fetch of the whole (unfiltered) list, to check the page
      // asks for it once when it opens.
      const u = new URL(msg.params.request.url);
      if (u.pathname === "/api/flows" && u.search === "" && msg.params.request.method === "GET")
        listFetches++;
    } else if (msg.method === "Network.eventSourceMessageReceived") {
      // What the live stream brought, for the report if a step fails.
      const id = (msg.params.data.match(/"id":(\d+)/) || [])[1];
      if (result.events.length < 50) result.events.push(msg.params.eventName + " " + id);
    } else if (msg.method === "Runtime.exceptionThrown") {
      if (result.page_errors.length < 10)
        result.page_errors.push(JSON.stringify(msg.params.exceptionDetails).slice(0, 300));
    }
  };
  const { targetId } = await send("Target.createTarget", { url: "about:blank" }, null);
  sessionId = (await send("Target.attachToTarget", { targetId, flatten: true }, null)).sessionId;
  await send("Page.enable");
  await send("Runtime.enable");
  await send("Network.enable");
  await send("Emulation.setDeviceMetricsOverride", { width: 1440, height: 860, deviceScaleFactor: 1, mobile: false });

  await send("Page.navigate", { url: adminUrl });
  await waitFor("the page", async () => (await evaluate("location.pathname + '|' + document.readyState")) === "/|complete");
  result.title = await evaluate("document.title");
  result.cookie_hidden = await evaluate("document.cookie.indexOf('luaproxy_admin') < 0");
  result.initial_rows = await waitFor("the first rows", rowCount);
  result.steps.push("loaded");

  // live: two new flows, without reloading, once the stream is open (the
  // dot turns green)
  await waitFor("the live stream", () => evaluate("!document.getElementById('live').classList.contains('off')"));
  await viaProxy(originUrl + "/hello?live=1");
  await viaProxy(originUrl + "/status/404?live=2");
  const t0 = Date.now();
  result.rows_after_live = await waitFor("live rows", async () => {
    const n = await rowCount();
    return n >= result.initial_rows + 2 && n;
  });
  result.live_ms = Date.now() - t0;
  // The live rows came through the stream, which fetches nothing: every
  // list fetch so far was the page opening.
  result.list_fetches_on_open = listFetches;
  result.steps.push("live");

  // a slow one shows as running, then takes its outcome
  const slow = viaProxy(originUrl + "/slow?ms=3000");
  result.saw_running = await waitFor("a running row", () =>
    evaluate("(document.querySelector('#rows tr.running td.c-url') || {}).textContent"));
  await slow;
  result.running_finished = await waitFor("the running row to finish", () =>
    evaluate("!document.querySelector('#rows tr.running') && document.querySelectorAll('#rows tr').length"));
  result.rows_after_live = await rowCount();
  result.steps.push("running");

  // filter
  await evaluate(`(() => { const f = document.getElementById('filter');
    f.value = '~c 404'; f.dispatchEvent(new Event('input')); })()`);
  // Judged by the status column: a URL holds the origin's port, which
  // may itself contain "404".
  result.filtered_rows = await waitFor("the filtered list", async () => {
    const codes = await evaluate("[...document.querySelectorAll('#rows td.c-status')].map(td => td.textContent)");
    return codes.length > 0 && codes.every((c) => c === "404") && codes.length;
  });
  await evaluate(`(() => { const f = document.getElementById('filter');
    f.value = '~x'; f.dispatchEvent(new Event('input')); })()`);
  result.bad_filter_message = await waitFor("the filter error", () =>
    evaluate("document.getElementById('filter-error').classList.contains('shown') && document.getElementById('filter-error').textContent"));
  await evaluate(`(() => { const f = document.getElementById('filter');
    f.value = ''; f.dispatchEvent(new Event('input')); document.activeElement.blur(); })()`);
  await waitFor("the whole list again", async () => (await rowCount()) === result.rows_after_live);
  result.steps.push("filter");

  // click the POST row (a real mouse click at its position)
  const box = await evaluate(`(() => {
    const row = [...document.querySelectorAll('#rows tr')].find(tr => tr.querySelector('.c-method').textContent === 'POST');
    const r = row.getBoundingClientRect();
    return { x: r.left + r.width / 2, y: r.top + r.height / 2, id: row.dataset.id };
  })()`);
  for (const type of ["mouseMoved", "mousePressed", "mouseReleased"])
    await send("Input.dispatchMouseEvent", { type, x: box.x, y: box.y, button: "left", clickCount: 1 });
  result.detail_title = await waitFor("the detail pane", () =>
    evaluate("(document.querySelector('#detail h2') || {}).textContent"));
  result.detail_body = await waitFor("the request body", () =>
    evaluate("(document.querySelector('#detail pre.body') || {}).textContent"));
  result.detail_has_timing_tab = await evaluate("!!document.querySelector('.tabs [data-tab=timing]')");
  result.steps.push("click");

  // the changes tab of the modified flow
  await evaluate(`(() => { const tr = [...document.querySelectorAll('#rows tr')].find(tr => tr.querySelector('.mark'));
    tr.click(); })()`);
  await waitFor("the modified flow", () => evaluate("!!document.querySelector('.changed-box')"));
  await evaluate("document.querySelector('.tabs [data-tab=changes]').click()");
  result.changes = await waitFor("the changes tab", () =>
    evaluate("[...document.querySelectorAll('#detail tr.added td:first-child')].map(td => td.textContent).join(' ')"));
  await snap(screenshot.replace(/\.png$/, "-changes.png"));
  await evaluate("document.querySelector('.tabs [data-tab=timing]').click()");
  result.timing_segments = await waitFor("the timing bar", () => evaluate("document.querySelectorAll('.bar span').length"));
  await snap(screenshot.replace(/\.png$/, "-timing.png"));
  await evaluate("document.querySelector('.tabs [data-tab=request]').click()");
  result.steps.push("tabs");

  // keys
  const before = await evaluate("document.querySelector('#rows tr.selected').dataset.id");
  await key("ArrowDown", "ArrowDown");
  const down = await waitFor("the selection to move down", async () => {
    const id = await evaluate("document.querySelector('#rows tr.selected').dataset.id");
    return id !== before && id;
  });
  await key("ArrowUp", "ArrowUp");
  const up = await waitFor("the selection to move up", async () => {
    const id = await evaluate("document.querySelector('#rows tr.selected').dataset.id");
    return id !== down && id;
  });
  result.keys = { before, up, down };
  result.steps.push("keys");

  // select the JSON flow for the picture, wait for its body, then the screenshot
  await evaluate(`(() => { const tr = [...document.querySelectorAll('#rows tr')].find(tr => tr.querySelector('.c-url').textContent.includes('json'));
    if (tr) tr.click(); })()`);
  await waitFor("the JSON flow", () => evaluate("(document.querySelector('#detail h2') || {}).textContent.includes('/json')"));
  await evaluate("document.querySelector('.tabs [data-tab=response]').click()");
  result.json_body = await waitFor("the pretty JSON", () =>
    evaluate("(document.querySelector('#detail pre.body') || {}).textContent"));
  await snap(screenshot);
  result.screenshot = screenshot;
  result.steps.push("screenshot");
  finish(0);
}

main().catch(async (e) => {
  result.error = String(e && e.message || e);
  // What the page showed when the step gave up, for the report.
  try {
    result.page = await Promise.race([sleep(2000), evaluate(`JSON.stringify({
      rows: [...document.querySelectorAll('#rows tr')].map((tr) => tr.dataset.id + ' ' + tr.className),
      filter: document.getElementById('filter').value,
      filter_error: document.getElementById('filter-error').textContent,
      live: document.getElementById('live').className })`)]);
  } catch (e2) { /* the page is gone: the error says enough */ }
  finish(1);
});
