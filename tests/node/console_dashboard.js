// The console's dashboard in headless Chromium for the console benchmark
// (tests/bench/console.sh): logs in, then shows the dashboard (refreshing
// every 2 s) on SIGUSR1 and a blank page on SIGUSR2, printing "open" and
// "closed N" (N: the dashboard's refreshes while it was shown) once done;
// "ready" first, with the blank page. Ends at SIGTERM.
// usage: node console_dashboard.js URL USER PASSWORD
"use strict";
const { launch, login } = require("./console_browser");

const [url, user, password] = process.argv.slice(2);
(async () => {
  const browser = await launch();
  const page = await browser.newPage();
  let polls = 0;
  page.on("requestfinished", (r) => { if (r.url().endsWith("/api/v1/channels")) polls++; });
  await login(page, url, user, password);
  await page.waitForSelector("[data-channel]", { timeout: 30000 });
  await page.goto("about:blank");
  console.log("ready");
  // One change at a time, in the order asked.
  let queue = Promise.resolve();
  const then = (f) => { queue = queue.then(f).catch((e) => { console.error(e); process.exit(1); }); };
  process.on("SIGUSR1", () => then(async () => {
    polls = 0;
    await page.goto(url + "/#/", { waitUntil: "load" });
    await page.waitForSelector("[data-channel]", { timeout: 30000 });
    console.log("open");
  }));
  process.on("SIGUSR2", () => then(async () => {
    const n = polls;
    await page.goto("about:blank");
    console.log(`closed ${n}`);
  }));
  process.on("SIGTERM", () => then(async () => { await browser.close(); process.exit(0); }));
})().catch((e) => { console.error(e); process.exit(1); });
