// Keeps the console's dashboard open in headless Chromium until SIGTERM (the
// console benchmark, tests/bench/console.sh): logs in, waits for the first
// refresh, prints "ready"; at SIGTERM prints how many refreshes it made.
// usage: node console_dashboard.js URL USER PASSWORD
"use strict";
const puppeteer = require("puppeteer-core");

const [url, user, password] = process.argv.slice(2);
(async () => {
  const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
  });
  const page = await browser.newPage();
  let polls = 0;
  page.on("requestfinished", (r) => { if (r.url().endsWith("/api/v1/channels")) polls++; });
  await page.goto(url + "/", { waitUntil: "load" });
  await page.waitForSelector("#login-form input[name=user]", { visible: true });
  await page.type("#login-form input[name=user]", user);
  await page.type("#login-form input[name=password]", password);
  await page.click("#login-form button[type=submit]");
  await page.waitForSelector("[data-channel]", { timeout: 30000 });
  console.log("ready");
  const start = Date.now();
  process.on("SIGTERM", async () => {
    console.log(`refreshes=${polls} seconds=${((Date.now() - start) / 1000).toFixed(1)}`);
    await browser.close();
    process.exit(0);
  });
})().catch((e) => { console.error(e); process.exit(1); });
