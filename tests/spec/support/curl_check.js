// Runs the viewer's "Copy as curl" on one flow, outside a browser, and
// prints the command it copied as one JSON line. The spec (viewer_spec.lua)
// runs the command and makes the judgements.
//
//   node curl_check.js ADMIN_ORIGIN TOKEN FLOW_ID
//
// The script is the one the admin listener serves (/app.js), run in a
// context of its own where the page's DOM is a stand-in that takes every
// call, fetch() goes to the admin listener with the token, and the
// clipboard keeps what is written to it.
"use strict";

const vm = require("vm");

const [origin, token, id] = process.argv.slice(2);
const result = {};

function out(code) {
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(code);
}

// Anything, called or read or built with new, gives another stand-in.
function standIn() {
  const f = function () {};
  return new Proxy(f, {
    get: (t, k) => (k === Symbol.toPrimitive ? () => "" : k === "then" ? undefined : standIn()),
    set: () => true,
    apply: () => standIn(),
    construct: () => standIn(),
  });
}

const auth = { headers: { Authorization: "Bearer " + token } };
const adminFetch = (p, opts) => fetch(origin + p, Object.assign({}, opts, auth));

(async () => {
  try {
    const js = await (await adminFetch("/app.js")).text();
    const flow = await (await adminFetch("/api/flows/" + id)).json();
    let copied = null;
    const context = vm.createContext({
      document: standIn(),
      window: standIn(),
      EventSource: standIn(),
      URL: standIn(),
      confirm: () => false,
      setTimeout: () => 0, // the page's timers (a toast) are of no interest here
      clearTimeout: () => {},
      Blob, TextDecoder,
      navigator: { clipboard: { writeText: async (s) => { copied = s; } } },
      fetch: adminFetch,
    });
    vm.runInContext(js, context, { filename: "app.js" });
    await context.copyCurl(flow);
    result.command = copied;
    out(0);
  } catch (e) {
    result.error = String(e && e.stack || e);
    out(1);
  }
})();
