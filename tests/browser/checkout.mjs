// Drives Debian's Chromium (headless, through playwright-core) through the checkout page of a
// running stack: an approved card, a declined card, an invalid card number, an expired card, an
// American Express code, a processor failure, and amounts in major units.
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
const AMEX = "3782 822463 10005";
const PROCESSOR_FAILURE = "4000 0000 0000 0119";
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
      authorization: request.headers()["authorization"],
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

// Chromium reports every 4xx and 5xx answer as a console error; the API's 400 is expected where a
// scenario sends a bad card, API Gateway's 404 and 403 where payments need a signature, and the
// 502 of the processor-failure test card. Any other error (a CSP violation, a missing asset) fails.
const EXPECTED_API_ERROR = /^error: Failed to load resource: the server responded with a status of (400|403|404|502) /;

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

async function tokenizeAndCheck(page, baseUrl, number, expectLast4, { brand = "Visa", cvv = CVV } = {}) {
  await fillCard(page, { number, cvv });
  await page.waitForSelector("#pay-step:not([hidden])");
  check(page.url() === `${baseUrl}/`, `the page navigated to ${page.url()}`);
  check((await page.textContent("#token-brand")) === brand, `the brand is not shown as ${brand}`);
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

// The error shown beside a field, once it is shown.
async function fieldError(page, id) {
  return (await page.waitForSelector(`#${id}:not([hidden])`)).textContent();
}

const scenarios = {
  async approved({ page, seen, context, baseUrl, out, readmeScreenshot }) {
    // The grey placeholder reads as an example, not as a number already typed in
    const placeholder = await page.getAttribute("#card-number", "placeholder");
    check(placeholder.startsWith("e.g. "), `the card number's placeholder reads "${placeholder}"`);
    const placeholderStyle = await page.$eval("#card-number", (input) => getComputedStyle(input, "::placeholder").fontStyle);
    check(placeholderStyle === "italic", `the placeholder is not styled apart (${placeholderStyle})`);
    const testCards = await page.textContent(".test-cards");
    for (const number of [AMEX, PROCESSOR_FAILURE]) {
      check(testCards.includes(number), `the test-card list leaves out ${number}`);
    }
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
    // The page names its merchant with the publishable key of its configuration, to /tokens only
    const key = await page.getAttribute('meta[name="card-tokens-publishable-key"]', "content");
    check(/^pk_[a-z2-7]{24}$/.test(key), `the page holds no publishable key ("${key}")`);
    check(tokenRequests[0].authorization === `Bearer ${key}`, "/tokens was sent without the key");
    const sent = JSON.parse(tokenRequests[0].body);
    check(digitsOf(sent.card_number) === digitsOf(APPROVED), "the /tokens body lacks the card number");
    const payments = seen.requests.filter((r) => new URL(r.url).pathname === "/payments");
    check(payments.length === 1 && !digitsOf(payments[0].body).includes(digitsOf(APPROVED)), "/payments carried the PAN");
    check(payments[0].authorization === undefined, "/payments carried the publishable key");
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
    const message = await fieldError(page, "error-card_number");
    check(
      message === "The card number fails the Luhn check: a digit is probably mistyped.",
      `the API's rule is not beside the card number, in the page's words: "${message}"`,
    );
    const box = await page.getAttribute('.field[data-field="card_number"]', "class");
    check(box.includes("invalid"), "the card number field is not marked invalid");
    check(await page.isHidden("#pay-step"), "an invalid card reached the pay step");
    check(await page.isHidden("#error-cvv"), "an error shows beside a field it does not name");
    await assertNoCardLeak(page, context, seen, BAD_LUHN);
    await page.screenshot({ path: join(out, "invalid-card.png"), fullPage: true });
  },

  // A deployed stack authorizes /payments with IAM: the browser's unsigned request gets the REST
  // API's missing-token answer, 404 Not Found (template GatewayResponses), and the page hands the
  // token over instead of dead-ending on it. So it does on API Gateway's or AWS WAF's 403.
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
    await page.unroute("**/payments");
    await page.route("**/payments", (route) =>
      route.fulfill({ status: 403, contentType: "application/json", body: '{"message":"Forbidden"}' }),
    );
    await page.evaluate(() => {
      const shown = document.getElementById("payment-form-error");
      shown.textContent = "";
      shown.hidden = true;
    });
    await page.click("#pay-button");
    const refused = await page.waitForSelector("#payment-form-error:not([hidden])");
    check((await refused.textContent()).includes("signed back end"), "no hand-off message on a 403");
    check(await page.isVisible("#hand-off"), "no Copy token after a 403");
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
    const message = await fieldError(page, "error-expiry");
    check(
      message === "The card has expired: the expiry year is in the past.",
      `the API's message is not beside the expiry: "${message}"`,
    );
    check(await page.isHidden("#error-card_number"), "the card number is marked wrong for an expired card");
    check(await page.isHidden("#pay-step"), "an expired card reached the pay step");
    await assertNoCardLeak(page, context, seen, APPROVED);
    await page.screenshot({ path: join(out, "expired-card.png"), fullPage: true });
  },

  // An American Express code has 4 digits: a 3-digit one is refused beside the code, saying so.
  async amexNeedsFourDigits({ page, seen, context, baseUrl, out }) {
    await fillCard(page, { number: AMEX, cvv: "123" });
    const message = await fieldError(page, "error-cvv");
    check(
      message === "The security code must be 4 digits for American Express.",
      `no 4-digit hint beside the code: "${message}"`,
    );
    check(await page.isHidden("#error-card_number"), "the card number is marked wrong for a short code");
    await page.screenshot({ path: join(out, "amex.png"), fullPage: true });
    await tokenizeAndCheck(page, baseUrl, AMEX, "0005", { brand: "American Express", cvv: "1234" });
    await pay(page);
    check((await page.getAttribute("#result", "data-status")) === "approved", "the Amex payment was not approved");
    await assertNoCardLeak(page, context, seen, AMEX);
  },

  // The 0119 test card: the processor fails, nothing is charged, and the token still pays.
  async processorFailure({ page, seen, context, baseUrl, out }) {
    await tokenizeAndCheck(page, baseUrl, PROCESSOR_FAILURE, "0119");
    await page.click("#pay-button");
    const error = await page.waitForSelector("#payment-form-error:not([hidden])");
    const message = await error.textContent();
    check(message.includes("nothing was charged"), `the processor failure reads "${message}"`);
    check(await page.isHidden("#result"), "a processor failure showed a payment result");
    check(await page.isEnabled("#pay-button"), "Pay is disabled after a failure that charged nothing");
    await assertNoCardLeak(page, context, seen, PROCESSOR_FAILURE);
    await page.screenshot({ path: join(out, "processor-failure.png"), fullPage: true });
  },

  // The amount is typed in major units: the page checks it in those, and never shows the API's
  // minor-unit wording, even when the API refuses an amount itself.
  async amountInMajorUnits({ page, seen, context, baseUrl, out }) {
    await tokenizeAndCheck(page, baseUrl, APPROVED, "4242");
    const payments = () => seen.requests.filter((r) => new URL(r.url).pathname === "/payments").length;
    const cases = [
      ["0", "EUR", "The amount must be from 0.01 to 999999.99 EUR."],
      ["1000000", "EUR", "The amount must be from 0.01 to 999999.99 EUR."],
      ["19.999", "EUR", "Enter the amount like 19.99 (at most 2 decimals)."],
      ["19.99", "JPY", "Enter the amount like 1999 (JPY has no decimals)."],
      ["0", "JPY", "The amount must be from 1 to 99999999 JPY."],
    ];
    for (const [amount, currency, expected] of cases) {
      await page.fill("#amount", amount);
      await page.selectOption("#currency", currency);
      await page.click("#pay-button");
      const message = await fieldError(page, "error-amount");
      check(message === expected, `${amount} ${currency} reads "${message}", not "${expected}"`);
    }
    check(payments() === 0, "an amount the page refused was sent");
    await page.screenshot({ path: join(out, "amount-major-units.png"), fullPage: true });
    // The API's own refusal, in minor units, is said in major units
    await page.route("**/payments", (route) =>
      route.fulfill({
        status: 400,
        contentType: "application/json",
        body: JSON.stringify({
          error: { code: "invalid_amount", message: "amount must be from 1 to 99999999 minor units.", field: "amount" },
        }),
      }),
    );
    await page.fill("#amount", "5.00");
    await page.selectOption("#currency", "EUR");
    await page.click("#pay-button");
    await page.waitForFunction(() => document.getElementById("error-amount").textContent !== "");
    const translated = await fieldError(page, "error-amount");
    check(translated === "The amount must be from 0.01 to 999999.99 EUR.", `the API's refusal reads "${translated}"`);
    check(!(await page.textContent("main")).includes("minor units"), "the page shows minor units");
    await assertNoCardLeak(page, context, seen, APPROVED);
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
