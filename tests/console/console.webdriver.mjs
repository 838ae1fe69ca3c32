// The web console in headless Chromium (Debian's /usr/bin/chromium, driven
// through Debian's chromedriver over W3C WebDriver, with Node's own fetch: no
// npm package): signs in as the operators' user, sees the room's
// conferences, switches the room to its backup through the confirmation
// step (which must name the room, its user domains and the conferences that
// move), sees them move, switches it back, and keeps screenshots.
// tests/integration/console.sh runs it; each step prints PASS or FAIL.
//
// It starts chromedriver itself on a free loopback port, and always deletes
// the session and ends chromedriver (and the browser) at the end, on an
// error, on SIGTERM and after TOTAL_TIMEOUT_MS.
//
// Environment: CONSOLE_URL, CONSOLE_USER, CONSOLE_PASSWORD_FILE, ROOM (the
// room to switch), SHOTS (the screenshots' path prefix), CHROMIUM (default
// /usr/bin/chromium), CHROMEDRIVER (default /usr/bin/chromedriver),
// CHROMEDRIVER_LOG (chromedriver's log file, default none),
// CHROMEDRIVER_PIDFILE (where to write chromedriver's pid, which is also its
// process group's, for a caller that has to kill this script), STEP_TIMEOUT_MS
// (default 60000), TOTAL_TIMEOUT_MS (default 360000).
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";

const url = process.env.CONSOLE_URL;
const user = process.env.CONSOLE_USER || "ops";
const password = readFileSync(process.env.CONSOLE_PASSWORD_FILE, "utf8").split(/\r?\n/)[0];
const room = process.env.ROOM || "p1-r1";
const shots = process.env.SHOTS;
const timeout = Number(process.env.STEP_TIMEOUT_MS || 60000);
const totalTimeout = Number(process.env.TOTAL_TIMEOUT_MS || 360000);
const ELEMENT = "element-6066-11e4-a52e-4f735466cecf"; // W3C's key of an element reference
let failed = 0, stopping = false; // stopping: on a signal or the total timeout

function pass(what) { if (!stopping) console.log("PASS " + what); }
function fail(what) { failed++; if (!stopping) console.log("FAIL " + what); }
async function step(what, fn) {
  try {
    const detail = await fn();
    pass(what + (detail ? " (" + detail + ")" : ""));
    return true;
  } catch (e) {
    fail(what + ": " + String(e.message || e).split("\n")[0]);
    return false;
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---- chromedriver ----
let driver = null, driverExited = false, base = null, session = null;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
  });
}

// One WebDriver command; its answer's value, or an Error with the W3C error
// code (e.code) and message.
async function wd(method, path, body, ms = timeout) {
  const r = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(ms),
  });
  const text = await r.text();
  let o;
  try { o = JSON.parse(text); } catch { o = { value: { error: "bad answer", message: "HTTP " + r.status + ": " + text.slice(0, 200) } }; }
  const v = o.value;
  if (!r.ok || (v && typeof v === "object" && typeof v.error === "string")) {
    const e = new Error(method + " " + path.replace(/^\/session\/[^/]+/, "") + ": " + (v && v.error) + ": " + String(v && v.message).split("\n")[0]);
    e.code = v && v.error;
    throw e;
  }
  return v;
}
const cmd = (method, path, body, ms) => wd(method, "/session/" + session + path, body, ms);

async function startDriver() {
  const bin = process.env.CHROMEDRIVER || "/usr/bin/chromedriver";
  const port = await freePort();
  const args = ["--port=" + port];
  if (process.env.CHROMEDRIVER_LOG) args.push("--log-path=" + process.env.CHROMEDRIVER_LOG);
  // a process group of its own: chromedriver and the browser it starts end together
  driver = spawn(bin, args, { stdio: ["ignore", "ignore", "inherit"], detached: true });
  if (process.env.CHROMEDRIVER_PIDFILE) writeFileSync(process.env.CHROMEDRIVER_PIDFILE, driver.pid + "\n");
  driver.on("exit", () => { driverExited = true; });
  driver.on("error", (e) => { driverExited = true; console.log("# chromedriver: " + e.message); });
  base = "http://127.0.0.1:" + port;
  const end = Date.now() + 20000;
  while (Date.now() < end && !driverExited) {
    try {
      const s = await wd("GET", "/status", undefined, 2000);
      if (s && s.ready) return s.build ? s.build.version : "?";
    } catch { /* not listening yet */ }
    await sleep(200);
  }
  throw new Error(driverExited ? "chromedriver exited (port " + port + ")" : "chromedriver not ready within 20 s");
}

async function stopDriver() {
  if (session) {
    const s = session;
    session = null;
    await wd("DELETE", "/session/" + s, undefined, 15000).catch((e) => console.log("# delete session: " + e.message));
  }
  if (driver) {
    // chromedriver's process group: chromedriver, and what is left of the
    // browser (its exited processes, until init reaps them)
    const alive = () => { try { process.kill(-driver.pid, 0); return true; } catch { return false; } };
    if (!driverExited) try { process.kill(-driver.pid, "SIGTERM"); } catch { /* gone */ }
    for (let i = 0; i < 50 && alive(); i++) await sleep(100);
    if (alive()) try { process.kill(-driver.pid, "SIGKILL"); } catch { /* gone */ }
  }
}

// ---- the page ----
// A function run in the page (execute/sync) with JSON arguments; its result.
async function js(fn, ...args) {
  return cmd("POST", "/execute/sync", { script: "return (" + fn.toString() + ").apply(null, arguments);", args });
}
const text = (sel) => js((s) => { const e = document.querySelector(s); return e ? e.textContent : null; }, sel);

async function waitFor(what, fn, ...args) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await js(fn, ...args);
    if (v) return v;
    if (Date.now() >= end) throw new Error(what + " not within " + timeout / 1000 + " s");
    await sleep(250);
  }
}
const waitForSelector = (sel) => waitFor(sel, (s) => !!document.querySelector(s), sel);

// Finds the element and acts on it, again while the page's refresh replaces
// it between the two (a stale reference) or it is not yet interactable.
async function onElement(sel, fn) {
  const end = Date.now() + timeout;
  for (;;) {
    try {
      const el = await cmd("POST", "/element", { using: "css selector", value: sel });
      return await fn("/element/" + el[ELEMENT]);
    } catch (e) {
      const again = ["no such element", "stale element reference", "element not interactable", "element click intercepted"];
      if (!again.includes(e.code) || Date.now() >= end) throw e;
      await sleep(200);
    }
  }
}
const click = (sel) => onElement(sel, (el) => cmd("POST", el + "/click", {}));
const fill = (sel, value) => onElement(sel, async (el) => {
  await cmd("POST", el + "/clear", {});
  await cmd("POST", el + "/value", { text: value });
});

async function screenshot(path, fullPage) {
  let data;
  if (fullPage) {
    // the whole page, beyond the window, through Chrome's DevTools protocol
    const m = await cmd("POST", "/goog/cdp/execute", { cmd: "Page.getLayoutMetrics", params: {} });
    const size = m.cssContentSize || m.contentSize;
    data = (await cmd("POST", "/goog/cdp/execute", {
      cmd: "Page.captureScreenshot",
      params: { format: "png", captureBeyondViewport: true, clip: { x: 0, y: 0, width: Math.ceil(size.width), height: Math.ceil(size.height), scale: 1 } },
    })).data;
  } else {
    data = await cmd("GET", "/screenshot");
  }
  writeFileSync(path, Buffer.from(data, "base64"));
}

// What the rooms table shows: {room: {state, running, text}}.
async function rooms() {
  return js(() => Object.fromEntries([...document.querySelectorAll("#rooms tbody tr")].map((tr) => [tr.dataset.room, {
    state: tr.dataset.state, running: Number(tr.dataset.running), text: tr.textContent,
  }])));
}

async function until(what, pred) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    last = await rooms();
    if (pred(last)) return last;
    await sleep(250);
  }
  throw new Error(what + " not within " + timeout / 1000 + " s; rooms: " +
    JSON.stringify(Object.fromEntries(Object.entries(last || {}).map(([k, v]) => [k, v.state + "/" + v.running]))));
}

// Errors of the page's scripts: window.onerror, unhandled rejections and
// console.error, kept by a script that runs before the page's own (CDP's
// Page.addScriptToEvaluateOnNewDocument); and the browser log's SEVERE
// entries (goog:loggingPrefs), which also has the failed loads.
const CAPTURE = `(() => {
  const errs = window.__confdrErrors = [];
  window.addEventListener("error", (e) => errs.push("error: " + (e.message || (e.target && e.target.src) || e)), true);
  window.addEventListener("unhandledrejection", (e) => errs.push("unhandled rejection: " + (e.reason && e.reason.message || e.reason)));
  const ce = console.error.bind(console);
  console.error = (...a) => { errs.push("console.error: " + a.map(String).join(" ")); ce(...a); };
})();`;

async function pageErrors() {
  const errs = (await js(() => window.__confdrErrors || ["the error capture is not in the page"])) || [];
  try {
    const log = await cmd("POST", "/se/log", { type: "browser" }, 10000);
    for (const l of log || []) if (l.level === "SEVERE") errs.push("log: " + l.message);
  } catch (e) {
    console.log("# the browser log cannot be read: " + e.message);
  }
  return errs;
}

// ---- the test ----
let cleaning = null;
function cleanup() { return cleaning || (cleaning = stopDriver()); }
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, async () => {
    fail("browser: " + sig + " received");
    stopping = true;
    await cleanup();
    process.exit(1);
  });
}
const guard = setTimeout(async () => {
  fail("browser: not done within " + totalTimeout / 1000 + " s");
  stopping = true;
  await cleanup();
  process.exit(1);
}, totalTimeout);

let before, backups, moving = 0;
try {
  const version = await startDriver();
  const caps = await wd("POST", "/session", {
    capabilities: {
      alwaysMatch: {
        browserName: "chrome",
        "goog:chromeOptions": {
          binary: process.env.CHROMIUM || "/usr/bin/chromium",
          // --no-sandbox: Chromium's own sandbox needs user namespaces it does not get as root
          args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"],
        },
        "goog:loggingPrefs": { browser: "ALL" },
        timeouts: { script: timeout, pageLoad: timeout, implicit: 0 },
      },
    },
  }, 60000);
  session = caps.sessionId;
  pass(`chromedriver ${version.split(" ")[0]} started Chromium ${caps.capabilities.browserVersion}`);
  await cmd("POST", "/goog/cdp/execute", { cmd: "Page.addScriptToEvaluateOnNewDocument", params: { source: CAPTURE } });

  await step("the console loads signed in (GET / with Basic auth)", async () => {
    // Basic auth as a header on every request of the tab (CDP's
    // Network.setExtraHTTPHeaders). Not the credentials in the URL: Chrome
    // signs the page in with them, but the page's own fetch("/api/...")
    // then throws ("Request cannot be constructed from a URL that includes
    // credentials": a relative URL takes them from the page's).
    const auth = "Basic " + Buffer.from(user + ":" + password).toString("base64");
    await cmd("POST", "/goog/cdp/execute", { cmd: "Network.enable", params: {} });
    await cmd("POST", "/goog/cdp/execute", { cmd: "Network.setExtraHTTPHeaders", params: { headers: { Authorization: auth } } });
    await cmd("POST", "/url", { url });
    const st = await js(() => performance.getEntriesByType("navigation")[0].responseStatus);
    if (st !== 200) throw new Error("HTTP " + st);
    await waitForSelector(`#rooms tr[data-room="${room}"]`);
    return (await text("#who")).slice(0, 60);
  });
  await step(`${room} is normal with conferences running on its MCUs`, async () => {
    before = await until("conferences in " + room, (r) => r[room] && r[room].state === "normal" && r[room].running > 0);
    return before[room].running + " conferences";
  });
  await step("platforms, MCUs, conferences per state and daemons are shown", async () => {
    const [n, m, c, d] = await js(() => ["#platforms", "#mcus", "#confs", "#daemons"].map((t) => document.querySelectorAll(t + " tbody tr").length));
    if (!n || !m || !c || !d) throw new Error(`platforms ${n}, MCUs ${m}, css rows ${c}, daemons ${d}`);
    return `${n} platforms, ${m} MCUs, ${c} css, ${d} daemons`;
  });
  await step("every table's rows have a cell per column", async () => {
    const bad = await js(() => [...document.querySelectorAll("table")].flatMap((t) => {
      const cols = t.querySelectorAll("thead th").length;
      return [...t.querySelectorAll("tbody tr")].filter((tr) => tr.children.length !== cols)
        .map((tr) => `${t.id}: ${tr.children.length} cells for ${cols} columns`);
    }));
    if (bad.length) throw new Error(bad.slice(0, 3).join("; "));
  });
  await click(`button[data-action="switch"][data-target="room"][data-id="${room}"][data-to="backup"]`);
  await step("the confirmation names what will move", async () => {
    await waitForSelector("#confirm[open]");
    const rs = await text("#confirm-rooms"), ds = await text("#confirm-domains");
    const cs = Number(await text("#confirm-confs"));
    backups = (await text("#confirm-to")).split(", ").filter(Boolean);
    if (!rs.includes(room)) throw new Error("rooms: " + rs);
    if (!ds.trim() || ds.trim() === "-") throw new Error("no user domains named");
    if (!(cs > 0)) throw new Error("conferences: " + cs);
    if (!backups.length) throw new Error("no backup room named");
    moving = cs;
    return `rooms ${rs}; domains ${ds}; ${cs} conferences to ${backups.join(", ")}`;
  });
  if (shots) await screenshot(shots + "-confirm.png", false);
  await fill("#confirm-reason", "console test: maintenance");
  await click("#confirm-ok");
  await step(`${room} switched to its backup, recorded as the HTTP user`, async () => {
    await waitFor("the switch's result", () => /abnormal \(manual\)/.test(document.getElementById("result").textContent));
    const r = await until(room + " abnormal", (x) => x[room].state === "abnormal");
    if (!r[room].text.includes("by " + user + "@console")) throw new Error("reason: " + r[room].text);
    return (await text("#result")).slice(0, 90);
  });
  await step("its conferences move to the backup rooms", async () => {
    const sumOf = (r) => backups.reduce((n, b) => n + (r[b] ? r[b].running : 0), 0);
    const was = sumOf(before);
    const r = await until("conferences moved", (x) => x[room].running === 0 && sumOf(x) >= was + moving);
    return `${room}: ${before[room].running} -> 0; ${backups.join("+")}: ${was} -> ${sumOf(r)}`;
  });
  await step("the restores chart counts them", async () => {
    await waitFor("the chart's total", (n) => Number(document.getElementById("chart").dataset.total) >= n, moving);
    return (await js(() => document.getElementById("chart").getAttribute("data-total"))) + " restored";
  });
  await step("the alarm of the switch is listed", async () => {
    await waitFor("the alarm", (r) => [...document.querySelectorAll("#alarms tbody tr")].some((tr) => tr.textContent.includes("room_abnormal") && tr.textContent.includes(r)), room);
  });
  if (shots) await screenshot(shots + "-switched.png", true);
  await click(`button[data-action="switch"][data-target="room"][data-id="${room}"][data-to="back"]`);
  await step("the switch-back's confirmation says nothing moves", async () => {
    await waitForSelector("#confirm[open]");
    const cs = await text("#confirm-confs");
    if (cs !== "0") throw new Error("conferences: " + cs);
    return (await text("#confirm-note")).slice(0, 60);
  });
  await fill("#confirm-reason", "console test: done");
  await click("#confirm-ok");
  await step(`${room} switched back`, async () => {
    await until(room + " normal", (x) => x[room].state === "normal" && !x[room].text.includes("(manual)"));
    await waitFor("the switch-back's result", () => /: normal since/.test(document.getElementById("result").textContent));
  });
  if (shots) {
    await sleep(2500); // one more refresh: the alarms of the switch-back
    await screenshot(shots + ".png", true);
    pass("screenshot " + shots + ".png");
  }
  const errors = await pageErrors();
  if (errors.length) fail("the page logged errors: " + errors.join("; ").slice(0, 300));
  else pass("no script errors on the page");
} catch (e) {
  fail("browser: " + String(e.message || e).split("\n")[0]);
  if (shots && session) await screenshot(shots + "-failed.png", true).catch(() => {});
  if (session) for (const e of await pageErrors().catch(() => [])) console.log("# the page: " + e.slice(0, 300));
} finally {
  clearTimeout(guard);
  await cleanup();
}
process.exit(failed ? 1 : 0);
