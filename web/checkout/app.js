// The checkout page: tokenize a card with POST /tokens, then pay with POST /payments.
//
// Card data lives only in the form fields until it is sent: never in storage, cookies, the
// URL or the console. The fields are cleared once the card is tokenized, and the token itself
// stays in this closure (not in the DOM), because whoever holds it can pay with it once.
"use strict";

(() => {
  const BRAND_NAMES = {
    amex: "American Express",
    diners: "Diners Club",
    discover: "Discover",
    jcb: "JCB",
    mastercard: "Mastercard",
    unionpay: "UnionPay",
    visa: "Visa",
  };
  // ISO 4217 minor-unit digits of the supported currencies that do not have two.
  const MINOR_DIGITS = { JPY: 0 };
  // The API's amount range, in minor units (POST /payments, openapi.yaml).
  const MIN_AMOUNT = 1;
  const MAX_AMOUNT = 99999999;
  // The API names fields as its JSON does ("cvv must be 4 digits..."); the page says them as
  // its labels do ("The security code must be 4 digits...").
  const FIELD_LABELS = {
    card_number: "the card number",
    exp_month: "the expiry month",
    exp_year: "the expiry year",
    cvv: "the security code",
    cardholder_name: "the name on the card",
    amount: "the amount",
    currency: "the currency",
    reference: "the order reference",
  };
  const FIELD_NAMES = new RegExp(`\\b(${Object.keys(FIELD_LABELS).join("|")})\\b`, "g");

  const $ = (id) => document.getElementById(id);
  const cardForm = $("card-form");
  const paymentForm = $("payment-form");
  const cardInputs = ["card-number", "exp-month", "exp-year", "cvv", "cardholder-name"].map($);

  // The merchant's publishable key, from the page's configuration (page.py): it names the
  // merchant to POST /tokens. Not a secret, but sent only to this page's own origin.
  const publishableKey = document
    .querySelector('meta[name="card-tokens-publishable-key"]')
    .getAttribute("content");
  const merchantHeaders = publishableKey ? { Authorization: `Bearer ${publishableKey}` } : {};

  let session = null; // {token, card, expiresAt (performance.now() ms), idempotency: {body, key}}
  let countdown = null;

  // ------------------------------------------------------------------ HTTP

  class ApiError extends Error {
    constructor(status, code, message, field) {
      super(message);
      this.status = status;
      this.code = code;
      this.field = field;
    }
  }

  // POST JSON to this page's own origin; the answer's JSON and its Date header, or an ApiError.
  // Paths are relative to the page: on an execute-api URL the page is at /<stage>/, not /.
  async function postJson(path, body, headers = {}) {
    let response;
    try {
      response = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...headers },
        body: JSON.stringify(body),
        cache: "no-store",
        credentials: "same-origin",
        referrerPolicy: "no-referrer",
      });
    } catch {
      throw new ApiError(0, "network_error", "The server could not be reached. Try again.");
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      answer = null;
    }
    if (!response.ok) {
      const error = answer && answer.error;
      if (error && typeof error.message === "string") {
        throw new ApiError(response.status, error.code, inPageWords(error.message), error.field);
      }
      // API Gateway's own answers (403, 404, 429, 5xx) have the shape {"message": "..."}.
      const message = answer && typeof answer.message === "string"
        ? answer.message
        : "The server could not handle the request.";
      throw new ApiError(response.status, "gateway_error", `${message} (HTTP ${response.status})`);
    }
    return { answer, date: response.headers.get("Date") };
  }

  // ------------------------------------------------------------------ errors beside fields

  function fieldBox(form, field) {
    for (const box of form.querySelectorAll(".field[data-field]")) {
      if (box.dataset.field.split(" ").includes(field)) return box;
    }
    return null;
  }

  function clearErrors(form) {
    for (const hint of form.querySelectorAll(".hand-off")) {
      hint.hidden = true;
      hint.querySelector("[aria-live]").textContent = "";
    }
    for (const box of form.querySelectorAll(".field")) {
      box.classList.remove("invalid");
      for (const input of box.querySelectorAll("input, select")) input.removeAttribute("aria-invalid");
    }
    for (const message of form.querySelectorAll(".field-error, .form-error")) {
      message.textContent = "";
      message.hidden = true;
    }
  }

  // "cvv must be 4 digits for American Express." → "The security code must be 4 digits for
  // American Express.": the API's exact rule, in the page's words.
  function inPageWords(message) {
    const worded = message.replace(FIELD_NAMES, (name) => FIELD_LABELS[name]);
    return worded.charAt(0).toUpperCase() + worded.slice(1);
  }

  // The message goes beside the field it names; without a (known) field, above the button.
  function showError(form, error) {
    const box = error.field ? fieldBox(form, error.field) : null;
    const target = box ? box.querySelector(".field-error") : form.querySelector(".form-error");
    target.textContent = error.message;
    target.hidden = false;
    if (box) {
      box.classList.add("invalid");
      const input = box.querySelector("input, select");
      for (const each of box.querySelectorAll("input, select")) each.setAttribute("aria-invalid", "true");
      input.focus();
    }
  }

  function setBusy(form, busy) {
    for (const button of form.querySelectorAll("button")) button.disabled = busy;
    form.setAttribute("aria-busy", busy ? "true" : "false");
  }

  // ------------------------------------------------------------------ step 1: tokenize

  // Digits as typed; the service validates everything else (Luhn, brand, expiry, CVV).
  function readInteger(input, field, what) {
    const text = input.value.trim();
    if (!/^[0-9]{1,4}$/.test(text)) {
      throw new ApiError(0, "invalid_request", `Enter the ${what} as digits.`, field);
    }
    return Number.parseInt(text, 10);
  }

  function cardRequest() {
    const month = readInteger($("exp-month"), "exp_month", "expiry month");
    let year = readInteger($("exp-year"), "exp_year", "expiry year");
    if ($("exp-year").value.trim().length === 2) year += 2000;
    const request = {
      card_number: $("card-number").value,
      exp_month: month,
      exp_year: year,
      cvv: $("cvv").value.trim(),
    };
    const name = $("cardholder-name").value.trim();
    if (name) request.cardholder_name = name;
    return request;
  }

  async function tokenize(event) {
    event.preventDefault();
    clearErrors(cardForm);
    setBusy(cardForm, true);
    try {
      const { answer, date } = await postJson("tokens", cardRequest(), merchantHeaders);
      for (const input of cardInputs) input.value = "";
      startSession(answer, date);
    } catch (error) {
      showError(cardForm, error instanceof ApiError ? error : unexpected());
    } finally {
      setBusy(cardForm, false);
    }
  }

  function unexpected() {
    return new ApiError(0, "unexpected", "Something went wrong. Try again.");
  }

  // ------------------------------------------------------------------ the token and its lifetime

  function startSession(issued, serverDate) {
    // Count down from the server's own clock: the lifetime is right even if this one is off.
    const now = serverDate ? Date.parse(serverDate) : Number.NaN;
    const issuedAt = Number.isNaN(now) ? Date.now() : now;
    const remaining = Math.max(0, Date.parse(issued.expires_at) - issuedAt);
    session = {
      token: issued.token,
      card: issued.card,
      expiresAt: performance.now() + remaining,
      idempotency: null,
    };
    const card = issued.card;
    $("token-brand").textContent = BRAND_NAMES[card.brand] || card.brand;
    $("token-last4").textContent = card.last4;
    $("token-expiry").textContent = `exp ${String(card.exp_month).padStart(2, "0")}/${card.exp_year}`;
    clearErrors(paymentForm);
    show("pay-step");
    tick();
    countdown = window.setInterval(tick, 250);
    $("amount").focus();
  }

  function remainingSeconds() {
    return session ? Math.max(0, Math.ceil((session.expiresAt - performance.now()) / 1000)) : 0;
  }

  function tick() {
    const seconds = remainingSeconds();
    const minutes = Math.floor(seconds / 60);
    $("token-lifetime").textContent = `${minutes}:${String(seconds % 60).padStart(2, "0")}`;
    $("token-lifetime-box").classList.toggle("ending", seconds <= 60);
    if (seconds === 0) {
      stopCountdown();
      $("token-lifetime-box").textContent = "Token expired: use the card again.";
      $("pay-button").disabled = true;
    }
  }

  function stopCountdown() {
    if (countdown !== null) window.clearInterval(countdown);
    countdown = null;
  }

  // ------------------------------------------------------------------ step 2: pay

  // The API's range said in the major units this page takes: "from 0.01 to 999999.99 EUR".
  function amountRange(currency) {
    return `from ${formatAmount(MIN_AMOUNT, currency).replace(` ${currency}`, "")} to ` +
      formatAmount(MAX_AMOUNT, currency);
  }

  // "19.99" → 1999 (or "1999" JPY → 1999), in exact decimal arithmetic, checked against the
  // API's range here, so that the API's minor-unit wording never reaches the page.
  function minorUnits(text, currency) {
    const digits = MINOR_DIGITS[currency] ?? 2;
    const pattern = digits === 0 ? /^[0-9]+$/ : new RegExp(`^[0-9]+(\\.[0-9]{1,${digits}})?$`);
    const value = text.trim();
    if (!pattern.test(value)) {
      const example = digits === 0
        ? `1999 (${currency} has no decimals)`
        : `19.99 (at most ${digits} decimals)`;
      throw new ApiError(0, "invalid_amount", `Enter the amount like ${example}.`, "amount");
    }
    const [whole, fraction = ""] = value.split(".");
    const amount = Number.parseInt(whole + fraction.padEnd(digits, "0"), 10);
    if (amount < MIN_AMOUNT || amount > MAX_AMOUNT) {
      throw amountOutOfRange(currency);
    }
    return amount;
  }

  function amountOutOfRange(currency) {
    return new ApiError(0, "invalid_amount", `The amount must be ${amountRange(currency)}.`, "amount");
  }

  // The API counts amounts in minor units ("from 1 to 99999999 minor units"); this page does not.
  // (Status 0: the page's own refusal, already in major units.)
  function inMajorUnits(error, currency) {
    const fromTheApi = error.status !== 0 && error.code === "invalid_amount";
    return fromTheApi ? amountOutOfRange(currency) : error;
  }

  function formatAmount(amount, currency) {
    const digits = MINOR_DIGITS[currency] ?? 2;
    if (digits === 0) return `${amount} ${currency}`;
    const text = String(amount).padStart(digits + 1, "0");
    return `${text.slice(0, -digits)}.${text.slice(-digits)} ${currency}`;
  }

  function paymentRequest() {
    const currency = $("currency").value;
    const request = { token: session.token, amount: minorUnits($("amount").value, currency), currency };
    const reference = $("reference").value.trim();
    if (reference) request.reference = reference;
    return request;
  }

  // One Idempotency-Key per request body: pressing Pay again after a network failure retries
  // the same payment instead of making a second one.
  function idempotencyKey(body) {
    const text = JSON.stringify(body);
    if (!session.idempotency || session.idempotency.body !== text) {
      session.idempotency = { body: text, key: crypto.randomUUID() };
    }
    return session.idempotency.key;
  }

  async function pay(event) {
    event.preventDefault();
    if (!session || remainingSeconds() === 0) return;
    clearErrors(paymentForm);
    setBusy(paymentForm, true);
    let finished = false;
    const currency = $("currency").value;
    try {
      const body = paymentRequest();
      const { answer } = await postJson("payments", body, {
        "Idempotency-Key": idempotencyKey(body),
      });
      finished = true;
      showResult(answer);
    } catch (error) {
      showError(
        paymentForm,
        error instanceof ApiError ? signedOnly(inMajorUnits(error, currency)) : unexpected(),
      );
    } finally {
      setBusy(paymentForm, false);
      if (!finished && remainingSeconds() === 0) $("pay-button").disabled = true;
    }
  }

  // A deployed stack authorizes /payments with IAM (SigV4): a browser gets API Gateway's own
  // answer, 404 when unsigned (a REST API's missing-token answer, template GatewayResponses) or
  // 403 when refused. The token then goes to the merchant's back end (or `card-tokens pay`).
  function signedOnly(error) {
    if (![403, 404].includes(error.status) || error.code !== "gateway_error") return error;
    $("hand-off").hidden = false;
    return new ApiError(
      403,
      "signed_payments_only",
      "This API takes payments only from a signed back end (AWS IAM). " +
        "Copy the token to your server, or pay with the card-tokens command.",
    );
  }

  async function copyToken() {
    const status = $("copy-token-status");
    if (!session || !navigator.clipboard) {
      status.textContent = "Copying is not available here.";
      return;
    }
    try {
      await navigator.clipboard.writeText(session.token);
      status.textContent = "Token copied.";
    } catch {
      status.textContent = "Copying was not allowed.";
    }
  }

  function showResult(payment) {
    endSession();
    const approved = payment.status === "approved";
    const result = $("result");
    result.classList.toggle("approved", approved);
    result.classList.toggle("declined", !approved);
    result.dataset.status = payment.status;
    $("result-title").textContent = approved ? "Payment approved" : "Payment declined";
    $("result-detail").textContent = approved
      ? "The card was charged once. The token is used up."
      : `Decline code: ${payment.decline_code}`;
    $("result-payment-id").textContent = payment.payment_id;
    $("result-amount").textContent = formatAmount(payment.amount, payment.currency);
    const brand = BRAND_NAMES[payment.card.brand] || payment.card.brand;
    $("result-card").textContent = `${brand} •••• ${payment.card.last4}`;
    $("result-reference").textContent = payment.reference || "";
    for (const cell of document.querySelectorAll(".result-reference")) cell.hidden = !payment.reference;
    show("result");
    $("again-button").focus();
  }

  // ------------------------------------------------------------------ steps

  function endSession() {
    stopCountdown();
    session = null;
  }

  function show(step) {
    for (const id of ["card-step", "pay-step", "result"]) $(id).hidden = id !== step;
  }

  function restart() {
    endSession();
    for (const input of cardInputs) input.value = "";
    clearErrors(cardForm);
    clearErrors(paymentForm);
    // The lifetime box's text was replaced when a token expired: put the counter back.
    $("token-lifetime-box").replaceChildren("Token valid for ", lifetimeCounter());
    $("pay-button").disabled = false;
    show("card-step");
    $("card-number").focus();
  }

  function lifetimeCounter() {
    const counter = document.createElement("strong");
    counter.id = "token-lifetime";
    counter.setAttribute("aria-live", "off");
    return counter;
  }

  cardForm.addEventListener("submit", tokenize);
  paymentForm.addEventListener("submit", pay);
  $("other-card-button").addEventListener("click", restart);
  $("again-button").addEventListener("click", restart);
  $("copy-token-button").addEventListener("click", copyToken);
  for (const code of document.querySelectorAll(".test-cards code")) {
    if (/^[0-9 ]{15,}$/.test(code.textContent)) {
      code.title = "Use this card";
      code.addEventListener("click", () => {
        $("card-number").value = code.textContent;
        $("card-number").focus();
      });
    }
  }
})();
