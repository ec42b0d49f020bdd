// What the console's browser tests and benchmark share: headless Chromium
// (Debian's, or CHROMIUM) driven by puppeteer-core, and the console's login.
"use strict";
const puppeteer = require("puppeteer-core");

exports.launch = () => puppeteer.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
});

// Opens the console at `base` and logs in; resolves once the header shows the user.
exports.login = async (page, base, user, password, timeout = 30000) => {
  await page.goto(base + "/", { waitUntil: "load" });
  await page.waitForSelector("#login-form input[name=user]", { visible: true, timeout });
  await page.type("#login-form input[name=user]", user);
  await page.type("#login-form input[name=password]", password);
  await page.click("#login-form button[type=submit]");
  await page.waitForFunction((u) => document.getElementById("who").textContent.startsWith(u), { timeout }, user);
};
