// The customer portal: sign in (login and password, or an API token), balance and status,
// calls with filters and a CSV download, totals per month and kind of number, payments,
// invoices; SIP logins, numbers, invoice PDFs and online top-up appear when the API has them;
// a forgotten password is reset through a link sent by e-mail.
// Plain JavaScript, no dependencies; every value is put in the page as text, never as HTML.
"use strict";

const KEY = "tollgate.token";
const PAGE_SIZE = 50;
const t = (key, vars) => I18N.t(key, vars);

const state = {
  token: null, account: null, currency: "PLN", filter: null, cursor: null, paths: {},
  session: false, reset: null, run: 0,
};

const api = (path, options) => call(state.token, path, options);

function accountPath(rest) {
  return `/api/v1/accounts/${encodeURIComponent(state.account)}/${rest}`;
}

// what the API offers beyond the basics (other features land separately): found in the
// OpenAPI document, so a section shows only when its endpoint exists
async function discover() {
  const doc = await call(null, "/openapi.json").catch(() => ({ paths: {} }));
  const mine = Object.keys(doc.paths).filter((p) => p.startsWith("/api/v1/accounts/{account}/"));
  const find = (re) => mine.find((p) => re.test(p) && doc.paths[p].get);
  state.paths = {
    pdf: find(/\/(invoices|documents)\/\{[a-z_]+\}(\.pdf|\/pdf)$/),
    sip: find(/\/sip[-_]?(logins|accounts|users)?$/),
    numbers: find(/\/(numbers|dids)$/),
    topup: find(/\/topup-link$/),
  };
}

// a path of the API document with its parameters filled in; a document number keeps its
// slashes (INV/2026/11/000001): the route expects them as they are, not as %2F
function fill(path, account, id) {
  const segments = String(id || "").split("/").map(encodeURIComponent).join("/");
  return path.replace("{account}", encodeURIComponent(account))
    .replace(/\{[a-z_]+\}/, segments);
}

async function signIn(how) {
  if (how.password !== undefined) {
    const session = await call(null, "/api/v1/session", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ login: how.login, password: how.password }),
    });
    state.token = session.token;
    state.session = true;
  } else {
    state.token = how.token;
    state.session = Boolean(how.session);  // a restored sign-in session is still one
  }
  const me = await api("/api/v1/me");
  if (!me.account) {
    if (state.session) await api("/api/v1/session/end", { method: "POST" }).catch(() => null);
    state.token = null;
    throw new ApiError(403, { error: { message: t("signin.operator") } });
  }
  state.account = me.account;
  sessionStorage.setItem(KEY, JSON.stringify({ token: state.token, session: state.session }));
  await discover();
  await loadBalance();
  $("who-account").textContent = me.account;
  for (const id of ["who", "sign-out", "account", "calls", "totals", "payments"]) $(id).hidden = false;
  $("signin").hidden = true;
  const today = I18N.today();
  $("from").value = today.slice(0, 8) + "01";
  $("to").value = today;
  fillMonths(today);
  await Promise.all([loadCalls(true), loadEntries(), loadDocuments(), loadTotals(), loadExtras()]);
  $("main").focus();
}

async function signOut() {
  if (state.session && state.token) {
    await api("/api/v1/session/end", { method: "POST" }).catch(() => null);
  }
  sessionStorage.removeItem(KEY);
  state.token = state.account = null;
  for (const body of document.querySelectorAll("main tbody")) body.replaceChildren();
  for (const id of ["who", "sign-out", "account", "calls", "totals", "payments", "documents", "sip", "numbers"]) {
    $(id).hidden = true;
  }
  $("signin").hidden = false;
  $("password").value = $("token").value = "";
  say(t("signedout"));
  $("login").focus();
}

async function loadBalance() {
  // the gateway's page when one is configured (url null otherwise): no link without it
  const [b, link] = await Promise.all([
    api(accountPath("balance?entries=0")),
    state.paths.topup ? api(fill(state.paths.topup, state.account)).catch(() => null) : null,
  ]);
  state.currency = b.currency;
  I18N.zone = b.timezone;
  $("balance").textContent = I18N.money(b.balance, b.currency);
  $("available").textContent = I18N.money(b.available, b.currency);
  $("reserved").textContent = I18N.money(b.reserved, b.currency);
  $("account-status").textContent = t(`status.${b.status}`);
  $("blocked").hidden = !b.blocked;
  $("blocked").textContent = b.blocked ? t(`blocked.${b.blocked}`) : "";
  if (link && link.url) $("topup-href").href = link.url;
  $("topup-link").hidden = !(link && link.url);
}

async function loadEntries() {
  const page = await api(accountPath("entries?limit=50"));
  const body = $("entries").querySelector("tbody");
  body.replaceChildren();
  for (const e of page.items) {
    const row = rowIn("entries");
    cell(row, I18N.when(e.created_at));
    cell(row, t(`kind.${e.kind}`));
    cell(row, I18N.money(e.amount, state.currency), "num");
    cell(row, e.reference || e.note || "");
  }
  if (!page.items.length) cell(rowIn("entries"), t("none"));
}

async function loadDocuments() {
  const docs = (await api(accountPath("invoices"))).items;
  $("documents").hidden = docs.length === 0;
  const body = $("docs").querySelector("tbody");
  body.replaceChildren();
  for (const d of docs.slice().reverse()) {
    const row = rowIn("docs");
    cell(row, d.number);
    cell(row, t(`doc.kind.${d.kind}`));
    cell(row, I18N.day(d.issue_date));
    cell(row, I18N.money(d.gross, d.currency), "num");
    cell(row, d.status ? t(`doc.status.${d.status}`) : "");
    // the KSeF number once KSeF accepted it, and whether its receipt (UPO) is kept
    const ksef = d.ksef && d.ksef.ksef_number ? d.ksef.ksef_number : "";
    cell(row, ksef && d.ksef.upo ? `${ksef} (${t(`doc.upo.${d.ksef.upo}`)})` : ksef);
    const pdf = cell(row, "");
    if (state.paths.pdf) {
      const a = document.createElement("a");
      a.href = fill(state.paths.pdf, state.account, d.number);
      a.textContent = t("doc.pdf");
      a.setAttribute("aria-label", `${t("doc.pdf")} ${d.number}`);
      a.addEventListener("click", guard((event) => downloadPdf(a.href, d.number)));
      pdf.appendChild(a);
    }
  }
}

// a file that needs the token: fetched here and handed to the browser under its name
async function saveFile(href, fallback) {
  const response = await fetch(href, { headers: { Authorization: `Bearer ${state.token}` } });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = named ? named[1] : fallback;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  say(t("download.started"));
}

function downloadPdf(href, number) {
  return saveFile(href, `${number.replace(/[^A-Za-z0-9_-]+/g, "-")}.pdf`);
}

function downloadStatement() {
  const month = $("month").value;
  const format = encodeURIComponent($("csv-format").value);
  return saveFile(accountPath(`statements/${month}.csv?format=${format}`), `${month}.csv`);
}

// SIP logins and numbers: each section shows when the API has it and the customer may
// read it; one that fails is left out instead of stopping the page
async function loadExtras() {
  const get = (key) => (state.paths[key]
    ? api(fill(state.paths[key], state.account)).catch(() => null) : null);
  const [sip, numbers] = await Promise.all([get("sip"), get("numbers")]);
  clear("sip-logins");
  for (const l of (sip && sip.items) || []) {
    const row = rowIn("sip-logins");
    cell(row, l.login);
    cell(row, l.realm || "");
    const status = t(`sip.status.${l.status}`);
    cell(row, l.status_reason ? `${status} (${l.status_reason})` : status);
    const devices = (l.registrations || []).map((r) => r.user_agent || r.uri);
    cell(row, devices.length ? devices.join(", ") : t("sip.none"));
  }
  $("sip").hidden = !(sip && sip.items);
  clear("numbers-list");
  for (const n of (numbers && numbers.numbers) || []) {
    const row = rowIn("numbers-list");
    cell(row, n);
    cell(row, n === numbers.caller_id ? t("yes") : "");
  }
  $("numbers").hidden = !(numbers && numbers.numbers && numbers.numbers.length);
}

function clear(id) {
  $(id).querySelector("tbody").replaceChildren();
}

function fillMonths(today) {
  const select = $("month");
  select.replaceChildren();
  let [year, month] = today.split("-").map(Number);
  const name = new Intl.DateTimeFormat(I18N.locale(), { month: "long", year: "numeric", timeZone: "UTC" });
  for (let i = 0; i < 12; i++) {
    const value = `${year}-${String(month).padStart(2, "0")}`;
    const option = document.createElement("option");
    option.value = value;
    option.textContent = name.format(new Date(`${value}-01T00:00:00Z`));
    select.appendChild(option);
    month -= 1;
    if (month === 0) { month = 12; year -= 1; }
  }
}

async function loadTotals() {
  // the month's billed totals without its calls (those come with the download)
  const s = await api(accountPath(`statements/${$("month").value}?calls=false`));
  const body = $("by-class").querySelector("tbody");
  body.replaceChildren();
  const line = (label, totals, cls) => {
    const row = rowIn("by-class");
    if (cls) row.className = cls;
    cell(row, label);
    cell(row, I18N.count(totals.count), "num");
    cell(row, I18N.duration(totals.billsec), "num");
    cell(row, I18N.money(totals.cost, s.currency), "num");
  };
  for (const [name, totals] of Object.entries(s.by_class)) line(t(`class.${name}`), totals);
  line(t("total"), s.total, "total");
}

function currentFilter() {
  const params = new URLSearchParams();
  // days are the account's local days: the server places them in its zone; 'to' is
  // inclusive on the page and exclusive in the API
  params.set("from", $("from").value);
  params.set("to", addDays($("to").value, 1));
  if ($("class").value) params.set("class", $("class").value);
  const number = $("number").value.replace(/[\s-]/g, "");
  if (number) params.set("number", number);
  return params;
}

// what the whole filter holds, however many pages of it are shown
async function loadCallTotals(run) {
  const s = await api(accountPath(`cdrs/totals?${state.filter}`));
  if (run !== state.run) return;  // a newer listing started meanwhile
  $("calls-totals").textContent = s.total.calls === 0 ? "" : t("calls.totals", {
    n: I18N.count(s.total.calls),
    answered: I18N.count(s.total.answered),
    time: I18N.duration(s.total.billsec),
    cost: I18N.money(s.total.cost, s.currency, 4),
  });
}

function result(c) {
  if (c.state === "denied") {
    const why = c.reason ? t(`reason.${c.reason}`) : "";
    return t("result.refused", { why });
  }
  if (c.answered_at) return t("result.answered");
  const d = (c.disposition || "").toLowerCase().replace(/[^a-z]/g, "");
  const key = { noanswer: "noanswer", busy: "busy", failed: "failed", cancel: "cancel" }[d];
  return key ? t(`result.${key}`) : t("result.failed");
}

async function loadCalls(fresh) {
  if (fresh) {
    if (!$("from").value || !$("to").value || $("from").value > $("to").value) {
      say(t("period.bad"));
      return;
    }
    state.filter = currentFilter();
    state.cursor = null;
    state.run += 1;
    $("cdrs").querySelector("tbody").replaceChildren();
  }
  // a listing asked for while another loads replaces it: the older one's rows, arriving
  // late, are dropped instead of being mixed in
  const run = state.run;
  const params = new URLSearchParams(state.filter);
  params.set("limit", String(PAGE_SIZE));
  if (state.cursor) params.set("cursor", state.cursor);
  say(t("loading"));
  const [page] = await Promise.all([
    api(accountPath(`cdrs?${params}`)), fresh ? loadCallTotals(run) : null,
  ]);
  if (run !== state.run) return;
  for (const c of page.items) {
    const row = rowIn("cdrs");
    cell(row, I18N.when(c.started_at));
    cell(row, c.number || c.dialled);
    cell(row, c.destination || (c.class ? t(`class.${c.class}`) : ""));
    cell(row, I18N.duration(c.billsec), "num");
    cell(row, I18N.money(c.cost, c.currency || state.currency, 4), "num");
    cell(row, result(c));
  }
  state.cursor = page.next_cursor;
  $("more").hidden = !state.cursor;
  const shown = $("cdrs").querySelector("tbody").children.length;
  const text = shown === 0 ? t("calls.none") : t("calls.shown", { n: I18N.count(shown) });
  $("cdrs-summary").textContent = text;
  say(text);
}

async function download() {
  const button = $("download");
  button.disabled = true;
  try {
    // a one-time link, so the browser saves the file itself (streamed, any size)
    const params = currentFilter();
    params.set("format", $("csv-format").value);
    const link = await api(accountPath(`cdrs/exports?${params}`), { method: "POST" });
    const a = document.createElement("a");
    a.href = link.url;
    a.download = "";
    document.body.appendChild(a);
    a.click();
    a.remove();
    say(t("download.started"));
  } finally {
    button.disabled = false;
  }
}

const guard = guarded(() => Boolean(state.account), () => signOut());

// a password-reset link: the secret is in the URL's fragment, taken off the address bar
// (and the history) at once and kept in memory only
function resetLinkOpened() {
  const found = /^#reset=([A-Za-z0-9_-]{20,128})$/.exec(location.hash);
  if (!found) return false;
  state.reset = found[1];
  history.replaceState(null, "", location.pathname + location.search);
  $("signin").hidden = true;
  $("reset").hidden = false;
  $("new-password").focus();
  return true;
}

const RESET_ERRORS = {
  RESET_LINK_UNKNOWN: "reset.unknown", RESET_LINK_USED: "reset.used",
  RESET_LINK_EXPIRED: "reset.expired",
};

async function setNewPassword() {
  const password = $("new-password").value;
  const problem = password.length < 10 ? "reset.short"
    : password !== $("new-password2").value ? "reset.differ" : null;
  $("reset-error").textContent = problem ? t(problem) : "";
  if (problem) {
    $(problem === "reset.short" ? "new-password" : "new-password2").focus();
    return;
  }
  $("reset-button").disabled = true;
  try {
    const done = await call(null, "/api/v1/session/reset/confirm",
      json("POST", { token: state.reset, password }));
    state.reset = null;
    $("new-password").value = $("new-password2").value = "";
    $("reset").hidden = true;
    $("signin").hidden = false;
    $("login").value = done.login;
    say(t("reset.done", { login: done.login }));
    $("password").focus();
  } catch (err) {
    const key = RESET_ERRORS[err.code] || ((err.details || {}).field === "password" ? "reset.short" : null);
    $("reset-error").textContent = key ? t(key) : signInError(err);
  } finally {
    $("reset-button").disabled = false;
  }
}

async function askForReset() {
  const who = $("forgot-login").value.trim();
  if (!who) {
    $("forgot-login").focus();
    return;
  }
  $("forgot-button").disabled = true;
  try {
    await call(null, "/api/v1/session/reset", json("POST", { login: who, language: I18N.lang }));
    $("forgot-done").textContent = t("forgot.sent");
  } catch (err) {
    $("forgot-done").textContent = err.code === "RESET_NOT_CONFIGURED" ? t("forgot.off")
      : signInError(err);
  } finally {
    $("forgot-button").disabled = false;
  }
}

async function rerender() {
  I18N.apply(document);
  if (!state.account) return;
  fillMonths(I18N.today());
  await Promise.all([loadBalance(), loadCalls(true), loadEntries(), loadDocuments(), loadTotals(), loadExtras()]);
}

document.addEventListener("DOMContentLoaded", () => {
  I18N.init();
  I18N.apply(document);
  $("lang").addEventListener("change", guard(async () => {
    I18N.set($("lang").value);
    await rerender();
  }));
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("signin-error").textContent = "";
    const token = $("token").value.trim();
    const login = $("login").value.trim();
    const password = $("password").value;
    const how = $("token-way").open && token ? { token } : { login, password };
    if (how.token === undefined && (!login || !password)) {
      $("signin-error").textContent = t("signin.enter");
      $(login ? "password" : "login").focus();
      return;
    }
    $("signin-button").disabled = true;
    try {
      await signIn(how);
      say(t("signedin"));
    } catch (err) {
      state.token = null;
      $("signin-error").textContent = signInError(err);
      $(how.token ? "token" : "password").focus();
    } finally {
      $("signin-button").disabled = false;
    }
  });
  $("sign-out").addEventListener("click", guard(signOut));
  $("filters").addEventListener("submit", guard(() => loadCalls(true)));
  $("more").addEventListener("click", guard(() => loadCalls(false)));
  $("download").addEventListener("click", guard(download));
  $("totals-form").addEventListener("submit", guard(loadTotals));
  $("statement-download").addEventListener("click", guard(downloadStatement));
  $("reset-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setNewPassword();
  });
  for (const id of ["new-password", "new-password2"]) {
    $(id).addEventListener("input", () => { $("reset-error").textContent = ""; });
  }
  $("forgot-form").addEventListener("submit", (event) => {
    event.preventDefault();
    askForReset();
  });
  if (resetLinkOpened()) return;
  const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
  if (saved) guard(() => signIn(saved))();
});
