// Drives headless Chromium through the example app's page (GET /ui) and prints, as one JSON
// line on stdout, what the browser saw and held at each step. tests/tests/browser.rs runs it
// and asserts on that report; this script asserts nothing itself.
//
// Usage: node drive.cjs '{"url": "http://127.0.0.1:PORT", "cookie": "session",
//                         "hostRules": "MAP name.test 127.0.0.1"}'
// Environment: PLAYWRIGHT_CORE (the installed playwright-core package directory, default:
// resolved from NODE_PATH), CHROMIUM (default /usr/bin/chromium).
"use strict";

const { chromium } = require(process.env.PLAYWRIGHT_CORE || "playwright-core");

// Debian's chromium as root in a container: no sandbox, no GPU, no network chatter.
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];
const STEP_TIMEOUT_MS = 10_000;

async function main() {
  const options = JSON.parse(process.argv[2] || "{}");
  const args = [...FLAGS];
  if (options.hostRules) {
    // A non-loopback name that still reaches the loopback server (no traffic leaves).
    args.push(`--host-resolver-rules=${options.hostRules}`);
  }
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args,
    timeout: 30_000,
  });
  const report = { steps: [], errors: [], violations: 0, sessionResponses: [] };
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on("pageerror", (error) => report.errors.push(`pageerror: ${error.message}`));
    page.on("console", (message) => {
      if (message.type() === "error") report.errors.push(`console: ${message.text()}`);
    });
    page.on("response", (response) => {
      const url = new URL(response.url());
      if (url.pathname === "/" || url.pathname === "/counter") {
        report.sessionResponses.push({
          method: response.request().method(),
          path: url.pathname,
          status: response.status(),
          cacheControl: response.headers()["cache-control"] || null,
        });
      }
    });

    const base = options.url.replace(/\/$/, "");
    const uiResponse = await page.goto(`${base}/ui`);
    report.ui = {
      status: uiResponse.status(),
      csp: uiResponse.headers()["content-security-policy"] || null,
    };
    await waitForRenders(page, 1);

    // The policy blocks inline code: an injected inline script must not run.
    await page.evaluate(() => {
      document.addEventListener("securitypolicyviolation", () => {
        window.__violations = (window.__violations || 0) + 1;
      });
    });
    await page.addScriptTag({ content: "window.__inlineRan = true;" }).catch(() => {});
    report.inlineScriptRan = await page.evaluate(() => window.__inlineRan === true);
    report.violations = await page.evaluate(() => window.__violations || 0);

    const record = async (name) => {
      report.steps.push({
        name,
        session: JSON.parse(await page.textContent("#session")),
        status: await page.textContent("#status"),
        documentCookie: await page.evaluate(() => document.cookie),
        cookies: (await context.cookies()).filter((c) => c.name === options.cookie),
        allCookieNames: (await context.cookies()).map((c) => c.name),
      });
    };
    const click = async (selector) => {
      const before = await renders(page);
      await page.click(selector);
      await waitForRenders(page, before + 1);
    };

    await record("start");
    await page.fill("#user", "alice");
    await click("#login");
    await record("login");
    for (let i = 1; i <= 3; i += 1) {
      await click("#counter");
      await record(`count${i}`);
    }
    await page.reload();
    await waitForRenders(page, 1);
    await record("reload");
    await click("#logout");
    await record("logout");
    await context.close();
  } finally {
    await browser.close();
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

async function renders(page) {
  return Number(await page.getAttribute("#session", "data-renders"));
}

// app.js bumps data-renders after every GET / it shows: the page is up to date.
async function waitForRenders(page, atLeast) {
  await page.waitForFunction(
    (n) => Number(document.getElementById("session").dataset.renders) >= n,
    atLeast,
    { timeout: STEP_TIMEOUT_MS },
  );
}

main().catch((error) => {
  process.stderr.write(`drive.cjs: ${error.stack || error}\n`);
  process.exit(1);
});
