// The web console in headless Chromium (Debian's /usr/bin/chromium, driven
// by playwright-core): signs in as the operators' user, sees the room's
// conferences, switches the room to its backup through the confirmation
// step (which must name the room, its user domains and the conferences that
// move), sees them move, switches it back, and keeps screenshots.
// tests/integration/console.sh runs it; each step prints PASS or FAIL.
//
// Environment: CONSOLE_URL, CONSOLE_USER, CONSOLE_PASSWORD_FILE, ROOM (the
// room to switch), SHOTS (the screenshots' path prefix), CHROMIUM (default
// /usr/bin/chromium), STEP_TIMEOUT_MS (default 60000).
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";

const url = process.env.CONSOLE_URL;
const user = process.env.CONSOLE_USER || "ops";
const password = readFileSync(process.env.CONSOLE_PASSWORD_FILE, "utf8").split(/\r?\n/)[0];
const room = process.env.ROOM || "p1-r1";
const shots = process.env.SHOTS;
const timeout = Number(process.env.STEP_TIMEOUT_MS || 60000);
let failed = 0;

function pass(what) { console.log("PASS " + what); }
function fail(what) { failed++; console.log("FAIL " + what); }
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

// What the rooms table shows: {room: {state, running, text}}.
async function rooms(page) {
  return page.$$eval("#rooms tbody tr", (trs) => Object.fromEntries(trs.map((tr) => [tr.dataset.room, {
    state: tr.dataset.state, running: Number(tr.dataset.running), text: tr.textContent,
  }])));
}

async function until(page, what, pred) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    last = await rooms(page);
    if (pred(last)) return last;
    await page.waitForTimeout(250);
  }
  throw new Error(what + " not within " + timeout / 1000 + " s; rooms: " +
    JSON.stringify(Object.fromEntries(Object.entries(last || {}).map(([k, v]) => [k, v.state + "/" + v.running]))));
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // Chromium's own sandbox needs user namespaces it does not get as root
  args: process.getuid && process.getuid() === 0 ? ["--no-sandbox"] : [],
});
const ctx = await browser.newContext({ httpCredentials: { username: user, password }, viewport: { width: 1400, height: 1000 } });
const page = await ctx.newPage();
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

let before, backups, moving = 0;
try {
  await step("the console loads signed in (GET / with Basic auth)", async () => {
    const r = await page.goto(url, { waitUntil: "load" });
    if (r.status() !== 200) throw new Error("HTTP " + r.status());
    await page.waitForSelector(`#rooms tr[data-room="${room}"]`, { timeout });
    return (await page.textContent("#who")).slice(0, 60);
  });
  await step(`${room} is normal with conferences running on its MCUs`, async () => {
    before = await until(page, "conferences in " + room, (r) => r[room] && r[room].state === "normal" && r[room].running > 0);
    return before[room].running + " conferences";
  });
  await step("platforms, MCUs, conferences per state and daemons are shown", async () => {
    const n = await page.$$eval("#platforms tbody tr", (t) => t.length);
    const m = await page.$$eval("#mcus tbody tr", (t) => t.length);
    const c = await page.$$eval("#confs tbody tr", (t) => t.length);
    const d = await page.$$eval("#daemons tbody tr", (t) => t.length);
    if (!n || !m || !c || !d) throw new Error(`platforms ${n}, MCUs ${m}, css rows ${c}, daemons ${d}`);
    return `${n} platforms, ${m} MCUs, ${c} css, ${d} daemons`;
  });
  await step("every table's rows have a cell per column", async () => {
    const bad = await page.$$eval("table", (ts) => ts.flatMap((t) => {
      const cols = t.querySelectorAll("thead th").length;
      return [...t.querySelectorAll("tbody tr")].filter((tr) => tr.children.length !== cols)
        .map((tr) => `${t.id}: ${tr.children.length} cells for ${cols} columns`);
    }));
    if (bad.length) throw new Error(bad.slice(0, 3).join("; "));
  });
  await page.click(`button[data-action="switch"][data-target="room"][data-id="${room}"][data-to="backup"]`);
  await step("the confirmation names what will move", async () => {
    await page.waitForSelector("#confirm[open]", { timeout });
    const rs = await page.textContent("#confirm-rooms"), ds = await page.textContent("#confirm-domains");
    const cs = Number(await page.textContent("#confirm-confs"));
    backups = (await page.textContent("#confirm-to")).split(", ").filter(Boolean);
    if (!rs.includes(room)) throw new Error("rooms: " + rs);
    if (!ds.trim() || ds.trim() === "-") throw new Error("no user domains named");
    if (!(cs > 0)) throw new Error("conferences: " + cs);
    if (!backups.length) throw new Error("no backup room named");
    moving = cs;
    return `rooms ${rs}; domains ${ds}; ${cs} conferences to ${backups.join(", ")}`;
  });
  if (shots) await page.screenshot({ path: shots + "-confirm.png" });
  await page.fill("#confirm-reason", "console test: maintenance");
  await page.click("#confirm-ok");
  await step(`${room} switched to its backup, recorded as the HTTP user`, async () => {
    await page.waitForFunction(() => /abnormal \(manual\)/.test(document.getElementById("result").textContent), null, { timeout });
    const r = await until(page, room + " abnormal", (x) => x[room].state === "abnormal");
    if (!r[room].text.includes("by " + user + "@console")) throw new Error("reason: " + r[room].text);
    return (await page.textContent("#result")).slice(0, 90);
  });
  await step("its conferences move to the backup rooms", async () => {
    const sumOf = (r) => backups.reduce((n, b) => n + (r[b] ? r[b].running : 0), 0);
    const was = sumOf(before);
    const r = await until(page, "conferences moved", (x) => x[room].running === 0 && sumOf(x) >= was + moving);
    return `${room}: ${before[room].running} -> 0; ${backups.join("+")}: ${was} -> ${sumOf(r)}`;
  });
  await step("the restores chart counts them", async () => {
    await page.waitForFunction((n) => Number(document.getElementById("chart").dataset.total) >= n, moving, { timeout });
    return (await page.getAttribute("#chart", "data-total")) + " restored";
  });
  await step("the alarm of the switch is listed", async () => {
    await page.waitForFunction((r) => [...document.querySelectorAll("#alarms tbody tr")].some((tr) => tr.textContent.includes("room_abnormal") && tr.textContent.includes(r)), room, { timeout });
  });
  if (shots) await page.screenshot({ path: shots + "-switched.png", fullPage: true });
  await page.click(`button[data-action="switch"][data-target="room"][data-id="${room}"][data-to="back"]`);
  await step("the switch-back's confirmation says nothing moves", async () => {
    await page.waitForSelector("#confirm[open]", { timeout });
    const cs = await page.textContent("#confirm-confs");
    if (cs !== "0") throw new Error("conferences: " + cs);
    return (await page.textContent("#confirm-note")).slice(0, 60);
  });
  await page.fill("#confirm-reason", "console test: done");
  await page.click("#confirm-ok");
  await step(`${room} switched back`, async () => {
    await until(page, room + " normal", (x) => x[room].state === "normal" && !x[room].text.includes("(manual)"));
    await page.waitForFunction(() => /: normal since/.test(document.getElementById("result").textContent), null, { timeout });
  });
  if (shots) {
    await page.waitForTimeout(2500); // one more refresh: the alarms of the switch-back
    await page.screenshot({ path: shots + ".png", fullPage: true });
    pass("screenshot " + shots + ".png");
  }
  if (errors.length) fail("the page logged errors: " + errors.join("; ").slice(0, 300));
  else pass("no script errors on the page");
} catch (e) {
  fail("browser: " + String(e.message || e).split("\n")[0]);
  if (shots) await page.screenshot({ path: shots + "-failed.png", fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
