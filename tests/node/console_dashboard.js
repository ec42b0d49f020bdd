// Keeps the console's dashboard open in headless Chromium until SIGTERM (the
// console benchmark, tests/bench/console.sh): logs in, waits for the first
// refresh, prints "ready"; at SIGTERM prints how many refreshes it made.
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
  console.log("ready");
  const start = Date.now();
  process.on("SIGTERM", async () => {
    console.log(`refreshes=${polls} seconds=${((Date.now() - start) / 1000).toFixed(1)}`);
    await browser.close();
    process.exit(0);
  });
})().catch((e) => { console.error(e); process.exit(1); });
