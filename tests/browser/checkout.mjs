// Drives Debian's Chromium (headless, through playwright-core) through the checkout page of a
// running stack: an approved card, a declined card, an invalid card number, an expired card.
//
//   node tests/browser/checkout.mjs --base-url http://127.0.0.1:3000 --out test-artifacts/checkout
//        [--readme-screenshot docs/checkout.png]
//
// Exits 0 when every scenario passed, 1 with the failing scenario's reason otherwise, 2 on bad
// usage. Screenshots of every scenario (and of a failure) go to --out.
import { mkdirSync, mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

import { chromium } from "playwright-core";

// Debian's Chromium by default; CHROMIUM names another Chromium-based browser (e.g. on CI images).
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const STEP_TIMEOUT_MS = 15_000;

const APPROVED = "4242 4242 4242 4242";
const DECLINED = "4000 0000 0000 0002";
const BAD_LUHN = "4242 4242 4242 4241";
const CVV = "123";
const CARDHOLDER = "Ada Browser-Lovelace";
const NEXT_YEAR = String(new Date().getUTCFullYear() + 3);

class ScenarioFailure extends Error {}

function check(condition, message) {
  if (!condition) throw new ScenarioFailure(message);
}

function digitsOf(text) {
  return text.replace(/[^0-9]/g, "");
}

// Everything the page could leak card data through, gathered while a scenario runs.
function watch(page) {
  const seen = { console: [], pageErrors: [], requests: [] };
  page.on("console", (message) => seen.console.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => seen.pageErrors.push(String(error)));
  page.on("request", (request) =>
    seen.requests.push({
      method: request.method(),
      url: request.url(),
      type: request.resourceType(),
      body: request.postData(),
    }),
  );
  return seen;
}

async function storageOf(page, context) {
  const inPage = await page.evaluate(() => ({
    local: Object.keys(localStorage).length,
    session: Object.keys(sessionStorage).length,
    cookie: document.cookie,
  }));
  return { ...inPage, cookies: (await context.cookies()).length };
}

// Card data may be in a POST body to /tokens and nowhere else the page can write.
async function assertNoCardLeak(page, context, seen, pan) {
  const panDigits = digitsOf(pan);
  const url = page.url();
  check(!url.includes("?") && !digitsOf(url).includes(panDigits), `the URL holds card data: ${url}`);
  for (const request of seen.requests) {
    check(!digitsOf(decodeURIComponent(request.url)).includes(panDigits), `a request URL holds the PAN`);
    if (request.body && digitsOf(request.body).includes(panDigits)) {
      check(
        request.method === "POST" && new URL(request.url).pathname === "/tokens",
        `card data was sent to ${request.method} ${request.url}`,
      );
    }
  }
  for (const line of [...seen.console, ...seen.pageErrors]) {
    check(!digitsOf(line).includes(panDigits), "the console holds the PAN");
    check(!line.includes(CARDHOLDER), "the console holds the cardholder name");
  }
  const storage = await storageOf(page, context);
  check(
    storage.local === 0 && storage.session === 0 && storage.cookie === "" && storage.cookies === 0,
    `the page stored something: ${JSON.stringify(storage)}`,
  );
}

// Chromium reports every 4xx answer as a console error; the API's 400 is expected where a
// scenario sends a bad card, and API Gateway's 404 where payments need a signature. Any other error (a CSP violation, a missing asset) fails.
const EXPECTED_API_ERROR = /^error: Failed to load resource: the server responded with a status of (400|404) /;

function assertQuietConsole(seen) {
  const errors = seen.console.filter(
    (line) => (line.startsWith("error:") || line.startsWith("warning:")) && !EXPECTED_API_ERROR.test(line),
  );
  check(seen.pageErrors.length === 0, `script errors: ${seen.pageErrors.join(" | ")}`);
  check(errors.length === 0, `console errors: ${errors.join(" | ")}`);
}

async function open(context, baseUrl, { fakeClock = false } = {}) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  if (fakeClock) await page.clock.install();
  const seen = watch(page);
  const response = await page.goto(`${baseUrl}/`, { waitUntil: "load" });
  check(response.status() === 200, `GET / answered ${response.status()}`);
  return { page, seen };
}

async function fillCard(page, { number, month = "12", year = NEXT_YEAR, cvv = CVV }) {
  await page.fill("#card-number", number);
  await page.fill("#exp-month", month);
  await page.fill("#exp-year", year);
  await page.fill("#cvv", cvv);
  await page.fill("#cardholder-name", CARDHOLDER);
  await page.click("#tokenize-button");
}

function lifetimeSeconds(text) {
  const match = /^(\d+):(\d\d)$/.exec(text.trim());
  check(match, `the token lifetime reads "${text}", not m:ss`);
  return Number(match[1]) * 60 + Number(match[2]);
}

async function tokenizeAndCheck(page, baseUrl, number, expectLast4) {
  await fillCard(page, { number });
  await page.waitForSelector("#pay-step:not([hidden])");
  check(page.url() === `${baseUrl}/`, `the page navigated to ${page.url()}`);
  check((await page.textContent("#token-brand")) === "Visa", "the brand is not shown as Visa");
  check((await page.textContent("#token-last4")) === expectLast4, "the last four digits are wrong");
  for (const id of ["#card-number", "#exp-month", "#exp-year", "#cvv", "#cardholder-name"]) {
    check((await page.inputValue(id)) === "", `${id} still holds its value after tokenizing`);
  }
  const first = lifetimeSeconds(await page.textContent("#token-lifetime"));
  check(first > 0 && first <= 3600, `the token lifetime is ${first} s`);
  await page.waitForTimeout(1_300);
  const later = lifetimeSeconds(await page.textContent("#token-lifetime"));
  check(later < first, `the lifetime does not count down (${first} s, then ${later} s)`);
}

async function pay(page, amount = "19.99", currency = "EUR") {
  await page.fill("#amount", amount);
  await page.selectOption("#currency", currency);
  await page.click("#pay-button");
  await page.waitForSelector("#result:not([hidden])");
}

// The page's column with a margin around it: the README's picture of the pay step.
async function screenshotOfMain(page, path) {
  const box = await page.locator("main").boundingBox();
  const margin = 24;
  await page.screenshot({
    path,
    clip: { x: box.x - margin, y: Math.max(0, box.y - margin), width: box.width + 2 * margin, height: box.height + 2 * margin },
  });
}

const scenarios = {
  async approved({ page, seen, context, baseUrl, out, readmeScreenshot }) {
    await tokenizeAndCheck(page, baseUrl, APPROVED, "4242");
    await page.fill("#reference", "order-1234");
    await page.screenshot({ path: join(out, "tokenized.png"), fullPage: true });
    if (readmeScreenshot) await screenshotOfMain(page, readmeScreenshot);
    await pay(page);
    check((await page.getAttribute("#result", "data-status")) === "approved", "the payment was not approved");
    check((await page.textContent("#result-title")) === "Payment approved", "no 'Payment approved'");
    check((await page.textContent("#result-amount")) === "19.99 EUR", "the amount is not 19.99 EUR");
    check((await page.textContent("#result-card")) === "Visa •••• 4242", "the card is not Visa •••• 4242");
    check((await page.textContent("#result-reference")) === "order-1234", "the reference is not shown");
    check(/^pay_/.test(await page.textContent("#result-payment-id")), "no payment id");
    const tokenRequests = seen.requests.filter((r) => new URL(r.url).pathname === "/tokens");
    check(tokenRequests.length === 1, `${tokenRequests.length} requests to /tokens`);
    check(tokenRequests[0].method === "POST" && tokenRequests[0].type === "fetch", "/tokens not POSTed by fetch");
    const sent = JSON.parse(tokenRequests[0].body);
    check(digitsOf(sent.card_number) === digitsOf(APPROVED), "the /tokens body lacks the card number");
    const payments = seen.requests.filter((r) => new URL(r.url).pathname === "/payments");
    check(payments.length === 1 && !digitsOf(payments[0].body).includes(digitsOf(APPROVED)), "/payments carried the PAN");
    await assertNoCardLeak(page, context, seen, APPROVED);
    await page.screenshot({ path: join(out, "approved.png"), fullPage: true });
  },

  async declined({ page, seen, context, baseUrl, out }) {
    await tokenizeAndCheck(page, baseUrl, DECLINED, "0002");
    await pay(page);
    check((await page.getAttribute("#result", "data-status")) === "declined", "the payment was not declined");
    check((await page.textContent("#result-title")) === "Payment declined", "no 'Payment declined'");
    const detail = await page.textContent("#result-detail");
    check(detail.includes("card_declined"), `the decline code is not shown: "${detail}"`);
    await assertNoCardLeak(page, context, seen, DECLINED);
    await page.screenshot({ path: join(out, "declined.png"), fullPage: true });
  },

  async invalidCardNumber({ page, seen, context, out }) {
    await fillCard(page, { number: BAD_LUHN });
    const error = await page.waitForSelector("#error-card_number:not([hidden])");
    check((await error.textContent()) === "The card number is not valid.", "the API's message is not beside the card number");
    const box = await page.getAttribute('.field[data-field="card_number"]', "class");
    check(box.includes("invalid"), "the card number field is not marked invalid");
    check(await page.isHidden("#pay-step"), "an invalid card reached the pay step");
    check(await page.isHidden("#error-cvv"), "an error shows beside a field it does not name");
    await assertNoCardLeak(page, context, seen, BAD_LUHN);
    await page.screenshot({ path: join(out, "invalid-card.png"), fullPage: true });
  },

  // A deployed stack authorizes /payments with IAM: the browser's unsigned request gets the REST
  // API's missing-token answer, 404 Not Found (template GatewayResponses), and the page hands the
  // token over instead of dead-ending on it.
  async signedPaymentsOnly({ page, seen, context, baseUrl, out }) {
    await page.route("**/payments", (route) =>
      route.fulfill({ status: 404, contentType: "application/json", body: '{"message":"Not Found"}' }),
    );
    const issued = page.waitForResponse((response) => new URL(response.url()).pathname === "/tokens");
    await tokenizeAndCheck(page, baseUrl, APPROVED, "4242");
    const token = (await (await issued).json()).token;
    await page.click("#pay-button");
    const error = await page.waitForSelector("#payment-form-error:not([hidden])");
    check((await error.textContent()).includes("signed back end"), "no hand-off message on a 404");
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: baseUrl });
    await page.click("#copy-token-button");
    await page.waitForFunction(() => document.getElementById("copy-token-status").textContent !== "");
    check((await page.textContent("#copy-token-status")) === "Token copied.", "the token was not copied");
    check((await page.evaluate(() => navigator.clipboard.readText())) === token, "the clipboard lacks the token");
    check(await page.isHidden("#result"), "a 404 showed a payment result");
    await assertNoCardLeak(page, context, seen, APPROVED);
    await page.screenshot({ path: join(out, "signed-payments-only.png"), fullPage: true });
  },

  // The countdown reaches zero (Playwright's fake clock, fast-forwarded past the lifetime):
  // Pay is disabled, and "Use another card" starts over with empty fields.
  async tokenExpires({ page, seen, context, baseUrl, out }) {
    await fillCard(page, { number: APPROVED });
    await page.waitForSelector("#pay-step:not([hidden])");
    const lifetime = lifetimeSeconds(await page.textContent("#token-lifetime"));
    await page.clock.fastForward((lifetime + 2) * 1000);
    await page.waitForFunction(() => document.getElementById("token-lifetime-box").textContent.includes("expired"));
    check(await page.isDisabled("#pay-button"), "Pay is still enabled after the token expired");
    await page.screenshot({ path: join(out, "token-expired.png"), fullPage: true });
    await page.click("#other-card-button");
    await page.waitForSelector("#card-step:not([hidden])");
    check((await page.inputValue("#card-number")) === "", "the card number came back");
    await fillCard(page, { number: APPROVED });
    await page.waitForSelector("#pay-step:not([hidden])");
    check(lifetimeSeconds(await page.textContent("#token-lifetime")) > 0, "a new token shows no lifetime");
    check(await page.isEnabled("#pay-button"), "Pay stays disabled for a new token");
    await assertNoCardLeak(page, context, seen, APPROVED);
  },

  async expiredCard({ page, seen, context, out }) {
    await fillCard(page, { number: APPROVED, month: "01", year: "2020" });
    const error = await page.waitForSelector("#error-expiry:not([hidden])");
    check((await error.textContent()) === "The card has expired.", "the API's message is not beside the expiry");
    check(await page.isHidden("#error-card_number"), "the card number is marked wrong for an expired card");
    check(await page.isHidden("#pay-step"), "an expired card reached the pay step");
    await assertNoCardLeak(page, context, seen, APPROVED);
    await page.screenshot({ path: join(out, "expired-card.png"), fullPage: true });
  },
};

async function main() {
  let options;
  try {
    options = parseArgs({
      options: {
        "base-url": { type: "string" },
        out: { type: "string" },
        "readme-screenshot": { type: "string" },
      },
    }).values;
  } catch (error) {
    console.error(`usage error: ${error.message}`);
    return 2;
  }
  const baseUrl = (options["base-url"] || "").replace(/\/$/, "");
  const out = options.out;
  if (!baseUrl || !out) {
    console.error("usage: node checkout.mjs --base-url URL --out DIR [--readme-screenshot PATH]");
    return 2;
  }
  if (!existsSync(CHROMIUM)) {
    console.error(`${CHROMIUM} is missing: run \`make browser-deps\` (apt-get install chromium)`);
    return 1;
  }
  mkdirSync(out, { recursive: true });

  const profile = mkdtempSync(join(tmpdir(), "checkout-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 900, height: 760 },
    deviceScaleFactor: 1,
  });
  let failed = 0;
  try {
    for (const [name, scenario] of Object.entries(scenarios)) {
      const started = Date.now();
      const { page, seen } = await open(context, baseUrl, { fakeClock: name === "tokenExpires" });
      try {
        await scenario({ page, seen, context, baseUrl, out, readmeScreenshot: name === "approved" && options["readme-screenshot"] });
        assertQuietConsole(seen);
        console.log(`ok    ${name} (${Date.now() - started} ms)`);
      } catch (error) {
        failed += 1;
        const reason = error instanceof ScenarioFailure ? error.message : error.stack;
        console.log(`FAIL  ${name}: ${reason}`);
        await page.screenshot({ path: join(out, `failed-${name}.png`), fullPage: true }).catch(() => {});
      } finally {
        await page.close();
      }
    }
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
  const total = Object.keys(scenarios).length;
  console.log(`checkout page: ${total - failed} of ${total} scenarios passed`);
  return failed === 0 ? 0 : 1;
}

process.exitCode = await main();
