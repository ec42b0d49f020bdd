// The web console in headless Chromium against a running engine (started by
// tests/integration/console_browser.py, which passes what it needs in the
// environment): log in, the dashboard's counters rising while mllpload sends,
// a message found by patient id (and by its destination's state), opened with its stages and diff, reprocessed,
// a channel stopped and started, and a viewer without mutating buttons whose
// requests the API refuses. Prints FAIL lines; exits 1 when any check failed.
"use strict";
const fs = require("fs");
const net = require("net");
const path = require("path");
const { spawn, spawnSync } = require("child_process");
const { launch, login: browserLogin } = require("./console_browser");

const env = (k) => { if (!process.env[k]) throw new Error(`${k} is not set`); return process.env[k]; };
const BASE = env("CONSOLE_URL");
const SHOTS = env("CONSOLE_ARTIFACTS");
const CHANNEL = env("CONSOLE_CHANNEL");
const PATIENT = env("CONSOLE_PATIENT");
const FAULTY = env("CONSOLE_FAULTY");
const [ADMIN, ADMIN_PW] = env("CONSOLE_ADMIN").split(":");
const [VIEWER, VIEWER_PW] = env("CONSOLE_VIEWER").split(":");

let passed = 0, failed = 0;
const check = (cond, what) => { if (cond) passed++; else { failed++; console.log("FAIL:", what); } return cond; };
const WAIT = { timeout: 30000 };

const shot = async (page, name) => {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, name + ".png"), fullPage: true });
};
const text = (page, sel) => page.$eval(sel, (e) => e.textContent);
const received = (page) => page.$eval(`[data-channel="${CHANNEL}"] [data-counter="received"]`, (e) => Number(e.textContent));

const login = (page, user, password) => browserLogin(page, BASE, user, password);

const runLoad = () => new Promise((resolve) => {
  const p = spawn(env("MLLPLOAD"), ["127.0.0.1", env("CONSOLE_MLLP_PORT"), "--conns", "2", "--count", "300",
                                    "--msg", env("CONSOLE_LOAD_MESSAGE"), "--prefix", "LOAD"], { stdio: "inherit" });
  p.on("exit", (code) => resolve(code));
});

(async () => {
  const browser = await launch();
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const consoleErrors = [];  // uncaught script errors (refused requests are logged too, and expected here)
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  try {
    // The login page, then the dashboard.
    await page.goto(BASE + "/", { waitUntil: "load" });
    await page.waitForSelector("#login-form", { visible: true, ...WAIT });
    check(await page.$eval("#top", (e) => e.hidden), "the header is hidden before the login");
    await shot(page, "login");
    await page.type("#login-form input[name=user]", ADMIN);
    await page.type("#login-form input[name=password]", "wrong-password");
    await page.click("#login-form button[type=submit]");
    await page.waitForFunction(() => document.getElementById("login-error").textContent !== "", WAIT);
    check((await text(page, "#login-error")).includes("wrong user name or password"), "a wrong password is refused");
    await login(page, ADMIN, ADMIN_PW);
    check((await text(page, "#who")) === `${ADMIN} (admin)`, "the header shows the user and role");
    const cookies = await page.cookies();
    const session = cookies.find((c) => c.name === "junction_session");
    check(session && session.httpOnly && session.sameSite === "Strict", `the session cookie: ${JSON.stringify(session)}`);

    await page.waitForSelector(`[data-channel="${CHANNEL}"]`, WAIT);
    const before = await received(page);
    const load = runLoad();
    await page.waitForFunction((c, n) => {
      const e = document.querySelector(`[data-channel="${c}"] [data-counter="received"]`);
      return e && Number(e.textContent) > n;
    }, { timeout: 60000 }, CHANNEL, before);
    check(true, "the dashboard's received counter rises while mllpload sends");
    check(await load === 0, "mllpload got every ACK");
    await page.waitForFunction((c, n) => {
      const e = document.querySelector(`[data-channel="${c}"] [data-counter="received"]`);
      return e && Number(e.textContent) >= n;
    }, { timeout: 60000 }, CHANNEL, before + 300);
    check(await received(page) >= before + 300, "the dashboard counts every message sent");
    check(await page.$(`[data-channel="${CHANNEL}"] [data-destination="archive"]`), "the destination's row is on the dashboard");
    check(await page.$(`[data-channel="${CHANNEL}"] svg.spark polyline`), "the channel's sparkline of the last hour");
    // The source's connections: one held open is shown, and gone once closed.
    const connected = (n) => page.waitForFunction((c, n) => {
      const e = document.querySelector(`[data-channel="${c}"] [data-connections]`);
      return e && e.textContent.includes(`listening, ${n} connected`);
    }, WAIT, CHANNEL, n);
    const held = net.connect(Number(env("CONSOLE_MLLP_PORT")), "127.0.0.1");
    await connected(1);
    const sourceLine = await text(page, `[data-channel="${CHANNEL}"] [data-source]`);
    check(new RegExp(`source mllp \\S+:${env("CONSOLE_MLLP_PORT")}: `).test(sourceLine), `the source's address on the dashboard: ${sourceLine}`);
    await shot(page, "dashboard");
    held.destroy();
    await connected(0);
    check(true, "the dashboard shows the source's open connections");

    // A channel with errors is marked, one click away from its ERROR messages.
    check(await page.$(`.card.has-errors[data-channel="${FAULTY}"]`), "the failing channel is marked");
    check(!(await page.$(`.card.has-errors[data-channel="${CHANNEL}"]`)), "a channel without errors is not");
    await page.click(`[data-channel="${FAULTY}"] a[href^="#/messages"]`);
    await page.waitForSelector("#message-list tr[data-id]", WAIT);
    const errorRows = await page.$$eval("#message-list tr[data-id]", (trs) => trs.map((t) => t.textContent));
    check(errorRows.length === 1 && errorRows[0].includes("ERROR") && errorRows[0].includes("no mapping for this order"),
          `the failing channel's ERROR messages: ${errorRows}`);
    check(await page.$eval("#search select[name=status]", (e) => e.value) === "ERROR", "the search form shows the filter");
    await page.click("#message-list tr[data-id] a");
    await page.waitForSelector("#path", WAIT);
    const failedStep = await page.$eval('#path [data-step="transform"] .state', (e) => e.textContent);
    check(failedStep === "ERROR", `the failed message's path marks its transform: ${failedStep}`);
    check((await text(page, "main")).includes("no mapping for this order"), "the failed message shows its error");

    // The message browser: search by patient id, open the message.
    await page.click('#nav a[href="#/messages"]');
    await page.waitForSelector("#search input[name=patient_id]", WAIT);
    await page.type("#search input[name=patient_id]", PATIENT);
    await page.click("#search button[type=submit]");
    await page.waitForFunction(() => document.querySelectorAll("#message-list tr[data-id]").length > 0 || document.getElementById("none"), WAIT);
    const rows = await page.$$eval("#message-list tr[data-id]", (trs) => trs.map((t) => t.textContent));
    check(rows.length === 1 && rows[0].includes(PATIENT), `one message of patient ${PATIENT}: ${rows}`);
    await shot(page, "messages");
    // A time range: the last hour finds it, the next hour does not; the form keeps the range.
    const hour = 3600 * 1000;
    for (const [from, want] of [[Date.now() - hour, 1], [Date.now() + hour, 0]]) {
      await page.goto(`${BASE}/#/messages?patient_id=${PATIENT}&from=${new Date(from).toISOString()}`, { waitUntil: "load" });
      await page.waitForFunction(() => document.querySelectorAll("#message-list tr[data-id]").length > 0 || document.getElementById("none"), WAIT);
      check((await page.$$("#message-list tr[data-id]")).length === want, `from ${new Date(from).toISOString()}: ${want} message(s)`);
      check(await page.$eval("#search input[name=from]", (e) => e.value !== ""), "the form shows the time range");
    }
    // The text of the raw content, typed into the form.
    await page.goto(`${BASE}/#/messages`, { waitUntil: "load" });
    await page.waitForSelector("#search input[name=text]", WAIT);
    await page.type("#search input[name=text]", PATIENT.slice(4));
    await page.click("#search button[type=submit]");
    await page.waitForFunction(() => location.hash.includes("text=") &&
      (document.querySelectorAll("#message-list tr[data-id]").length > 0 || document.getElementById("none")), WAIT);
    const found = await page.$$eval("#message-list tr[data-id]", (trs) => trs.map((t) => t.textContent));
    check(found.length === 1 && found.every((t) => t.includes(PATIENT)), `a text search finds the raw content: ${found}`);
    // A destination's state, chosen in the form: sent to archive finds it, failed there does not.
    for (const [state, want] of [["SENT", 1], ["ERROR", 0]]) {
      await page.goto(`${BASE}/#/messages?patient_id=${PATIENT}`, { waitUntil: "load" });
      await page.waitForSelector("#search select[name=destination_status]", WAIT);
      await page.type("#search input[name=destination]", "archive");
      await page.select("#search select[name=destination_status]", state);
      await page.click("#search button[type=submit]");
      await page.waitForFunction(() => location.hash.includes("destination_status=") &&
        (document.querySelectorAll("#message-list tr[data-id]").length > 0 || document.getElementById("none")), WAIT);
      const rows = await page.$$eval("#message-list tr[data-id]", (trs) => trs.map((t) => t.textContent));
      check(rows.length === want && rows.every((t) => t.includes(PATIENT)), `delivered to archive ${state}: ${rows}`);
      check(await page.$eval("#search select[name=destination_status]", (e) => e.value) === state, "the form shows the destination state");
    }
    await page.goto(`${BASE}/#/messages?patient_id=${PATIENT}`, { waitUntil: "load" });
    await page.waitForSelector("#message-list tr[data-id]", WAIT);
    await page.click("#message-list tr[data-id] a");
    await page.waitForSelector("#stages", WAIT);
    const stages = await page.$$eval("#stages [data-stage]", (s) => s.map((e) => e.dataset.stage));
    check(stages.includes("raw") && stages.includes("transformed") && stages.includes("to archive"), `the stages: ${stages}`);
    check(await page.$('#stages [data-stage="raw"] [data-pos="PID-5.1"][title="PID-5.1"]'), "an HL7 field shows its position on hover");
    const diff = await page.$$eval(".diff li", (l) => l.map((e) => e.textContent));
    check(diff.includes("PID-5.1: DOE → SMYTHE"), `the field-aware diff: ${diff}`);
    const steps = await page.$$eval("#path [data-step]", (s) => s.map((e) => e.dataset.step));
    check(steps.join(",") === "source,filter,transform,destination archive", `the message's path: ${steps}`);
    await shot(page, "message");

    // Reprocess it (once the engine has the route), the new message opened.
    const openedId = Number(page.url().split("/").pop());
    {
      await page.click('button[data-action="reprocess"]');
      await page.waitForSelector("#reprocess textarea", WAIT);
      // Edited first: the new message holds the edit.
      await page.$eval("#reprocess textarea", (e) => { e.value = e.value.replace("DOE^JANE", "DOE^JOAN"); });
      await page.click('button[data-action="reprocess-send"]');
      await page.waitForFunction((id) => /#\/message\/\d+$/.test(location.hash) && Number(location.hash.split("/").pop()) !== id, WAIT, openedId);
      await page.waitForSelector("#stages", WAIT);
      const h2 = await text(page, "h2");
      check(!h2.includes(`#${openedId} `), `the new message is shown: ${h2}`);
      check((await text(page, "main")).includes(`reprocess of #${openedId}`), "the new message links its original");
      check((await text(page, '#stages [data-stage="raw"]')).includes("DOE^JOAN"), "the new message is the edited one");
      check((await page.$$eval(".diff li", (l) => l.map((e) => e.textContent))).includes("PID-5.1: DOE → SMYTHE"), "the edit went through the transform");
      await shot(page, "reprocessed");
    }
    // Resend the original's delivery (once the engine has the route).
    {
      await page.goto(`${BASE}/#/message/${openedId}`, { waitUntil: "load" });
      await page.waitForSelector('[data-step="destination archive"] button[data-action="resend"]', WAIT);
      const [resent] = await Promise.all([
        page.waitForResponse((r) => r.url().endsWith(`/api/v1/messages/${openedId}/resend`), WAIT),
        page.click('[data-step="destination archive"] button[data-action="resend"]'),
      ]);
      check(resent.status() === 202, `resend: ${resent.status()}`);
      await page.waitForFunction(() => document.getElementById("path").textContent.includes("queued again"), WAIT);
    }
    // Reprocess every message of a search, after the confirmation (once the engine has the route).
    {
      await page.goto(`${BASE}/#/messages?channel=${FAULTY}`, { waitUntil: "load" });
      await page.waitForSelector('button[data-action="reprocess all"]', WAIT);
      await page.click('button[data-action="reprocess all"]');
      await page.waitForSelector('button[data-action="confirm-reprocess"]', WAIT);
      check((await text(page, ".confirm")).includes(`channel ${FAULTY}`), "the confirmation names the search");
      await page.click('button[data-action="confirm-reprocess"]');
      await page.waitForFunction(() => /reprocessed/.test(document.querySelector(".confirm").textContent), WAIT);
      check((await text(page, ".confirm")).includes("1 message(s) reprocessed"), `bulk reprocess: ${await text(page, ".confirm")}`);
    }

    // A channel stopped and started from its page.
    await page.goto(`${BASE}/#/channel/${CHANNEL}`, { waitUntil: "load" });
    await page.waitForSelector('button[data-action="stop"]', WAIT);
    check((await text(page, "pre.code")).includes(`channel: ${CHANNEL}`), "the channel's YAML is shown");
    await page.click('button[data-action="stop"]');
    await page.waitForFunction(() => document.getElementById("channel-state").textContent === "stopped", WAIT);
    await shot(page, "channel-stopped");
    await page.click('button[data-action="start"]');
    await page.waitForFunction(() => document.getElementById("channel-state").textContent === "running", WAIT);
    check(true, "the channel stopped and started from the console");

    // The event log (once the engine has it), filtered: the stop just made, by whom.
    {
      let rows = [];
      for (let i = 0; i < 60 && rows.length === 0; i++) {  // events are written by a thread of their own
        if (i) await new Promise((r) => setTimeout(r, 500));
        await page.goto(`${BASE}/#/events?type=api.post&channel=${CHANNEL}`, { waitUntil: "load" });
        await page.waitForFunction(() => document.querySelector("#event-list") && document.getElementById("event-list").dataset.loaded, WAIT);
        rows = await page.$$eval("#event-list tr[data-event]", (trs) => trs.map((t) => t.textContent).filter((t) => t.includes("/stop")));
      }
      check(rows.length === 1 && rows[0].includes(ADMIN), `the event log shows the stop and who made it: ${rows}`);
      check(await page.$eval("#events-filter input[name=type]", (e) => e.value) === "api.post", "the filter form shows the type");
      await shot(page, "events");
    }

    // How content is shown: DICOM JSON as a table, JSON and XML indented, an HL7 diff with repetitions.
    const shown = await page.evaluate(() => {
      const dicom = J.contentView('{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "DOE^JOHN"}]}, "00080060": {"vr": "CS", "Value": ["CT"]}}');
      return {
        dicom: [...dicom.querySelectorAll("tr")].map((tr) => [...tr.children].map((td) => td.textContent).join("|")),
        json: J.contentView('{"a": [1, 2]}').textContent,
        xml: J.contentView("<a><b>1</b><c/></a>").textContent,
        diff: J.hl7Diff("MSH|^~\\&|A\rPID|1||X~Y||DOE^JO", "MSH|^~\\&|B\rPID|1||X~Z||DOE"),
      };
    });
    check(shown.dicom.includes("(0010,0010)|PatientName|PN|DOE^JOHN") && shown.dicom.includes("(0008,0060)|Modality|CS|CT"),
          `DICOM JSON as a table: ${shown.dicom}`);
    check(shown.json === '{\n  "a": [\n    1,\n    2\n  ]\n}', `JSON indented: ${shown.json}`);
    check(shown.xml === "<a>\n  <b>1</b>\n  <c/>\n</a>", `XML indented: ${JSON.stringify(shown.xml)}`);
    check(JSON.stringify(shown.diff) === JSON.stringify(["MSH-3.1: A → B", "PID-3(2).1: Y → Z", "PID-5.2: JO → (empty)"]),
          `the HL7 diff: ${JSON.stringify(shown.diff)}`);

    // The worklist: the item of the order, its status changed, then cancelled.
    await page.click('#nav a[href="#/worklist"]');
    await page.waitForSelector("#worklist-items tr[data-item]", WAIT);
    const item = await page.$eval("#worklist-items tr[data-item]", (tr) => tr.textContent);
    check(item.includes("ACC20261123001") && item.includes("MRN-WORKLIST"), `the worklist item: ${item}`);
    const listed = () => page.waitForResponse((r) => /\/api\/v1\/worklist(\?|$)/.test(r.url()), WAIT);
    const [changed] = await Promise.all([
      page.waitForResponse((r) => /\/api\/v1\/worklist\/\d+\/status$/.test(r.url()), WAIT),
      listed(),
      page.select("#worklist-items tr[data-item] select", "IN PROGRESS"),
    ]);
    check(changed.status() === 200, `the status changed: ${changed.status()}`);
    await page.waitForSelector("#worklist-items tr[data-item] select", WAIT);
    check(await page.$eval("#worklist-items tr[data-item] select", (e) => e.value) === "IN PROGRESS", "the item is IN PROGRESS");
    await shot(page, "worklist");
    const [cancelled] = await Promise.all([
      page.waitForResponse((r) => /\/api\/v1\/worklist\/\d+\/cancel$/.test(r.url()), WAIT),
      listed(),
      page.click('#worklist-items tr[data-item] button[data-action="cancel"]'),
    ]);
    check(cancelled.status() === 200, `the item cancelled: ${cancelled.status()} ${await cancelled.text()}`);
    await page.waitForFunction(() => !document.querySelector("#worklist-items tr[data-item]"), WAIT);
    check(true, "the worklist item cancelled (no longer listed)");

    // Alerts (once the engine has them): a destination down fires its alert, back up clears it.
    {
      const alertState = (st) => page.waitForSelector(`#alert-list tr[data-alert="peer-down"][data-state="${st}"]`, { timeout: 60000 });
      await page.click('#nav a[href="#/alerts"]');
      await alertState("ok");
      const send = spawnSync(env("JUNCTION_BIN"), ["hl7", "send", `127.0.0.1:${env("CONSOLE_RELAY_PORT")}`, env("CONSOLE_LOAD_MESSAGE")]);
      check(send.status === 0, `a message for the relay: ${send.stdout}${send.stderr}`);
      await alertState("firing");
      check((await text(page, '#alert-list tr[data-alert="peer-down"]')).includes("firing"), "the alert fires while the peer is down");
      await shot(page, "alert-firing");
      const peer = spawn(env("MLLPECHO"), [env("CONSOLE_PEER_PORT")], { stdio: "ignore" });
      try {
        await alertState("ok");
        check(true, "the alert clears once the peer is back");
      } finally {
        peer.kill();
      }
    }

    // Users (admin): add one, change its role, remove it.
    await page.click('#nav a[href="#/users"]');
    await page.waitForSelector("#add-user", WAIT);
    await page.type("#add-user input[name=name]", "newcomer");
    await page.select("#add-user select[name=role]", "viewer");
    await page.type("#add-user input[name=password]", "newcomer-pass-1");
    await page.click("#add-user button[type=submit]");
    await page.waitForSelector('#user-list tr[data-user="newcomer"]', WAIT);
    await Promise.all([
      page.waitForResponse((r) => r.url().endsWith("/api/v1/users/newcomer") && r.request().method() === "PUT", WAIT),
      page.select('#user-list tr[data-user="newcomer"] select', "operator"),
    ]);
    const users = await page.evaluate(() => J.api("GET", "/api/v1/users"));
    check(users.users.some((u) => u.name === "newcomer" && u.role === "operator"), `the new user is an operator: ${JSON.stringify(users)}`);
    await shot(page, "users");
    page.once("dialog", (d) => d.accept());
    await page.click('#user-list tr[data-user="newcomer"] button.danger');
    await page.waitForFunction(() => !document.querySelector('#user-list tr[data-user="newcomer"]'), WAIT);
    check(true, "the user removed");

    // Log out; the cookie no longer works.
    await page.click("#logout");
    await page.waitForSelector("#login-form", { visible: true, ...WAIT });
    const after = await page.evaluate(async () => (await fetch("/api/v1/me")).status);
    check(after === 401, `after the logout the API refuses: ${after}`);

    // A viewer: no mutating button, and the API refuses the viewer's requests.
    await login(page, VIEWER, VIEWER_PW);
    await page.waitForSelector(`[data-channel="${CHANNEL}"]`, WAIT);
    await page.goto(`${BASE}/#/channel/${CHANNEL}`, { waitUntil: "load" });
    await page.waitForSelector("pre.code", WAIT);
    check((await page.$$("button[data-action]")).length === 0, "a viewer sees no channel action");
    check(!(await page.$('#nav a[href="#/users"]:not([hidden])')), "a viewer has no users view");
    await page.goto(`${BASE}/#/message/${openedId}`, { waitUntil: "load" });
    await page.waitForSelector("#stages", WAIT);
    check((await page.$$("button[data-action]")).length === 0, "a viewer sees no message action");
    await page.goto(`${BASE}/#/messages`, { waitUntil: "load" });
    await page.waitForSelector("#message-list", WAIT);
    check((await page.$$("button[data-action]")).length === 0, "a viewer sees no bulk reprocess");
    await shot(page, "viewer");
    const refused = await page.evaluate(async (c) => {
      try { await J.api("POST", `/api/v1/channels/${c}/stop`); return 200; } catch (e) { return e.status; }
    }, CHANNEL);
    check(refused === 403, `the API refuses the viewer's stop: ${refused}`);
    const noCsrf = await page.evaluate(async (c) => (await fetch(`/api/v1/channels/${c}/pause`, { method: "POST" })).status, CHANNEL);
    check(noCsrf === 403, `a cookie request without the CSRF token is refused: ${noCsrf}`);
    check(consoleErrors.length === 0, `no script errors in the page: ${consoleErrors}`);
  } catch (e) {
    check(false, `${e.stack || e}`);
    await shot(page, "failure").catch(() => {});
  } finally {
    await browser.close();
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
