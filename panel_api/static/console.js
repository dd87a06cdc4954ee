// The operator console: sign in (support reads, admin changes), accounts (search, detail,
// top-up, suspend/resume, limits, bulk import from a CSV file), live calls with hang-up, abuse
// findings (evidence, acknowledge/lift/close), rate decks (upload, errors by file and line,
// versions), carriers (list, routes preview, quality and margin of a month) and the audit log.
// Plain JavaScript; every value goes into the page as text, never as HTML.
"use strict";

const KEY = "tollgate.console";
const t = (key, vars) => I18N.t(key, vars);
const state = { token: null, me: null, account: null, finding: null };
const api = (path, options) => call(state.token, path, options);

const CONSOLE_WORDS = {
  en: {
    "c.console": "operator console", "c.accounts": "Accounts", "c.live": "Live calls",
    "c.findings": "Abuse findings", "c.decks": "Rate decks", "c.audit": "Audit log",
    "c.search": "Account contains", "c.find": "Find", "c.deck": "Deck", "c.open": "Details",
    "c.opencalls": "Running calls", "c.add": "Add", "c.reason": "Reason",
    "c.suspend": "Suspend", "c.resume": "Lift suspension", "c.max_calls": "Max calls",
    "c.cps": "Calls per second", "c.daily_cap": "Daily cap", "c.credit_limit": "Credit limit",
    "c.save": "Save limits", "c.refresh": "Refresh", "c.since": "Since",
    "c.reserved": "Reserved", "c.call": "Call", "c.action": "Action", "c.hangup": "Hang up",
    "c.rule": "Rule", "c.severity": "Severity", "c.finding": "Finding", "c.ack": "Acknowledge",
    "c.lift": "Lift", "c.close": "Close", "c.deckname": "Deck name", "c.currency": "Currency",
    "c.rates": "Rates CSV", "c.upload": "Upload", "c.version": "Version",
    "c.imported": "Imported", "c.rows": "Rows", "c.current": "Current", "c.when": "When",
    "c.who": "Who", "c.change": "Before → after", "c.support": "support, read-only",
    "c.admin": "admin", "c.done": "Done.", "c.hungup": "Call {id} hung up.",
    "c.deckbad": "{file}, line {line}: {why}", "c.uploaded": "Deck {name} version {version} stored.",
    "c.customer": "This is a customer sign-in: use the customer portal.",
    "c.yes": "yes", "c.none": "Nothing here.",
    "c.importfile": "Accounts CSV", "c.import": "Import accounts",
    "c.imported.n": "{rows} rows: {created} accounts created, {unchanged} existed (unchanged).",
    "c.importbad": "Line {line}: {message}",
    "c.importmore": "{total} errors in all; nothing was imported.",
    "c.customers": "Customers", "c.csearch": "Name, NIP, e-mail, account or number",
    "c.csearch.help": "Part of any of them; at most 50 customers are shown.",
    "c.cid": "Record", "c.name": "Name", "c.nip": "NIP", "c.email": "E-mail",
    "c.phone": "Phone", "c.address": "Address", "c.verification": "Verification",
    "c.customer.title": "Customer", "c.v.pending": "Pending", "c.v.verified": "Verified",
    "c.v.rejected": "Rejected", "c.callerid": "Caller ID",
    "c.carriers": "Carriers", "c.carrier": "Carrier", "c.trunk": "Trunk",
    "c.priority": "Priority", "c.routes": "Routes preview", "c.at": "Call start",
    "c.at.help": "Your browser's time; empty: now.", "c.seconds": "Seconds",
    "c.preview": "Show routes", "c.buy": "Buy", "c.margin": "Margin", "c.fx": "Exchange rate",
    "c.skipped": "Not tried", "c.why": "Why", "c.report": "Quality and margin of a month",
    "c.period": "Month (YYYY-MM)", "c.attempts": "Attempts", "c.failures": "Failure codes",
    "c.sell": "Sell", "c.disabled": "disabled", "c.active": "active",
    "c.plan": "{number}: sold for {sell} {currency} over {seconds} s.",
    "c.refused": "{number}: refused, {code}.",
  },
  pl: {
    "c.console": "konsola operatora", "c.accounts": "Konta", "c.live": "Trwające połączenia",
    "c.findings": "Nadużycia", "c.decks": "Cenniki", "c.audit": "Dziennik działań",
    "c.search": "Konto zawiera", "c.find": "Szukaj", "c.deck": "Cennik", "c.open": "Szczegóły",
    "c.opencalls": "Trwające połączenia", "c.add": "Dodaj", "c.reason": "Powód",
    "c.suspend": "Zawieś", "c.resume": "Odwieś", "c.max_calls": "Maks. połączeń",
    "c.cps": "Połączeń na sekundę", "c.daily_cap": "Limit dzienny",
    "c.credit_limit": "Limit kredytu", "c.save": "Zapisz limity", "c.refresh": "Odśwież",
    "c.since": "Od", "c.reserved": "Zarezerwowano", "c.call": "Połączenie",
    "c.action": "Działanie", "c.hangup": "Rozłącz", "c.rule": "Reguła",
    "c.severity": "Waga", "c.finding": "Zgłoszenie", "c.ack": "Przyjmij", "c.lift": "Uchyl",
    "c.close": "Zamknij", "c.deckname": "Nazwa cennika", "c.currency": "Waluta",
    "c.rates": "Plik stawek CSV", "c.upload": "Wyślij", "c.version": "Wersja",
    "c.imported": "Zaimportowano", "c.rows": "Wiersze", "c.current": "Bieżący",
    "c.when": "Kiedy", "c.who": "Kto", "c.change": "Przed → po",
    "c.support": "wsparcie, tylko odczyt", "c.admin": "administrator", "c.done": "Gotowe.",
    "c.hungup": "Połączenie {id} rozłączone.", "c.deckbad": "{file}, wiersz {line}: {why}",
    "c.uploaded": "Cennik {name} w wersji {version} zapisany.",
    "c.customer": "To logowanie klienta: użyj portalu klienta.",
    "c.yes": "tak", "c.none": "Brak.",
    "c.importfile": "Plik kont CSV", "c.import": "Importuj konta",
    "c.imported.n": "Wierszy {rows}: utworzono kont {created}, istniało (bez zmian) {unchanged}.",
    "c.importbad": "Wiersz {line}: {message}",
    "c.importmore": "Błędów razem: {total}; nic nie zaimportowano.",
    "c.customers": "Klienci", "c.csearch": "Nazwa, NIP, e-mail, konto lub numer",
    "c.csearch.help": "Fragment dowolnego z nich; pokazujemy najwyżej 50 klientów.",
    "c.cid": "Kartoteka", "c.name": "Nazwa", "c.nip": "NIP", "c.email": "E-mail",
    "c.phone": "Telefon", "c.address": "Adres", "c.verification": "Weryfikacja",
    "c.customer.title": "Klient", "c.v.pending": "Oczekuje", "c.v.verified": "Zweryfikowany",
    "c.v.rejected": "Odrzucony", "c.callerid": "Prezentowany numer",
    "c.carriers": "Przewoźnicy", "c.carrier": "Przewoźnik", "c.trunk": "Trunk",
    "c.priority": "Priorytet", "c.routes": "Podgląd tras", "c.at": "Początek połączenia",
    "c.at.help": "Czas przeglądarki; puste: teraz.", "c.seconds": "Sekundy",
    "c.preview": "Pokaż trasy", "c.buy": "Zakup", "c.margin": "Marża", "c.fx": "Kurs",
    "c.skipped": "Pominięci", "c.why": "Powód", "c.report": "Jakość i marża w miesiącu",
    "c.period": "Miesiąc (RRRR-MM)", "c.attempts": "Próby", "c.failures": "Kody błędów",
    "c.sell": "Sprzedaż", "c.disabled": "wyłączony", "c.active": "aktywny",
    "c.plan": "{number}: sprzedaż {sell} {currency} za {seconds} s.",
    "c.refused": "{number}: odmowa, {code}.",
  },
};

function button(row, label, onClick, className) {
  const td = cell(row, "");
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = className || "secondary";
  b.addEventListener("click", guard(onClick));
  td.appendChild(b);
  return b;
}

function clear(id) {
  $(id).querySelector("tbody").replaceChildren();
}

async function signIn(how) {
  if (how.password !== undefined) {
    const session = await call(null, "/api/v1/session", json("POST", how));
    state.token = session.token;
  } else {
    state.token = how.token;
  }
  const me = await api("/api/v1/me");
  if (me.role !== "operator") {
    if (me.login) await api("/api/v1/session/end", { method: "POST" }).catch(() => null);
    state.token = null;
    throw new ApiError(403, { error: { message: t("c.customer") } });
  }
  state.me = me;
  sessionStorage.setItem(KEY, state.token);
  $("who-login").textContent = me.login || me.label || me.id;
  $("who-role").textContent = t(me.read_only ? "c.support" : "c.admin");
  // support operators see what admins see, without the forms that change anything
  for (const form of document.querySelectorAll(".admin")) form.hidden = me.read_only;
  $("who").hidden = $("sign-out").hidden = $("app").hidden = false;
  $("signin").hidden = true;
  await show("accounts");
  $("main").focus();
}

async function signOut() {
  if (state.me && state.me.login) await api("/api/v1/session/end", { method: "POST" }).catch(() => null);
  sessionStorage.removeItem(KEY);
  state.token = state.me = state.account = state.finding = null;
  // the next operator at this browser starts from an empty page
  for (const body of document.querySelectorAll("#app tbody")) body.replaceChildren();
  $("detail").hidden = $("finding").hidden = $("customer").hidden = true;
  $("who").hidden = $("sign-out").hidden = $("app").hidden = true;
  $("signin").hidden = false;
  $("password").value = $("token").value = "";
  say(t("signedout"));
}

const LOADERS = {
  customers: () => loadCustomers(),
  accounts: () => loadAccounts(),
  live: () => loadLive(),
  findings: () => loadFindings(),
  decks: () => loadDecks(),
  carriers: () => loadCarriers(),
  audit: () => loadAudit(),
};

async function show(tab) {
  for (const b of document.querySelectorAll("[data-tab]")) {
    if (b.dataset.tab === tab) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
    $(`tab-${b.dataset.tab}`).hidden = b.dataset.tab !== tab;
  }
  await LOADERS[tab]();
}

async function loadAccounts() {
  const wanted = $("search").value.trim().toLowerCase();
  const all = (await api("/api/v1/accounts")).items;
  clear("accounts");
  for (const a of all.filter((x) => x.id.toLowerCase().includes(wanted))) {
    const row = rowIn("accounts");
    cell(row, a.id);
    cell(row, a.kind);
    cell(row, t(`status.${a.status}`));
    cell(row, a.deck || "");
    button(row, t("c.open"), () => openAccount(a.id)).dataset.account = a.id;
  }
}

// bulk onboarding: the whole file is checked; any error lists its lines and nothing is stored
async function importAccounts() {
  $("import-result").textContent = "";
  $("import-errors").replaceChildren();
  const file = $("import-file").files[0];
  const form = new FormData();
  if (file) form.append("accounts", file, file.name);
  let done;
  try {
    done = await api("/api/v1/account-imports", { method: "POST", body: form });
  } catch (err) {
    const d = err.details || {};
    // each message names the column at fault; a fault of the file as a whole has no line
    const lines = (d.errors || []).map((e) => (e.line === null ? e.message : t("c.importbad", e)));
    if (d.total !== undefined) lines.push(t("c.importmore", d));
    for (const text of lines.length ? lines : [err.message]) {
      const li = document.createElement("li");
      li.textContent = text;
      $("import-errors").appendChild(li);
    }
    return;
  }
  $("import-result").textContent = t("c.imported.n", done);
  await loadAccounts();
}

async function loadCustomers() {
  const q = $("customer-search").value.trim();
  clear("customers");
  if (!q) return;  // thousands of records are searched, not listed
  const found = (await api(`/api/v1/customers?q=${encodeURIComponent(q)}`)).items;
  for (const c of found) {
    const row = rowIn("customers");
    cell(row, c.id);
    cell(row, c.legal_name);
    cell(row, c.tax_id || "");
    cell(row, c.email);
    cell(row, t(`c.v.${c.verification}`));
    button(row, t("c.open"), () => openCustomer(c.id)).dataset.customer = c.id;
  }
  if (!found.length) cell(rowIn("customers"), t("c.none"));
}

// a customer with its accounts, numbers and documents (each read is in the audit log)
async function openCustomer(id) {
  const c = await api(`/api/v1/customers/${encodeURIComponent(id)}`);
  const path = (a, rest) => `/api/v1/accounts/${encodeURIComponent(a)}${rest}`;
  const each = await Promise.all(c.accounts.map((a) => Promise.all([
    api(path(a, "/balance?entries=0")),
    api(path(a, "/numbers")).catch(() => ({ numbers: [] })),
    api(path(a, "/invoices")).catch(() => ({ items: [] })),
  ])));
  // drawn once everything is in, so a detail is never half another customer's
  $("cu-name").textContent = c.legal_name;
  $("cu-id").textContent = c.id;
  $("cu-nip").textContent = c.tax_id || c.vat_id || "—";
  $("cu-email").textContent = c.email;
  $("cu-phone").textContent = c.phone || "—";
  $("cu-address").textContent = [c.street, `${c.postal_code} ${c.city}`.trim(), c.country]
    .filter(Boolean).join(", ");
  $("cu-verification").textContent = t(`c.v.${c.verification}`);
  for (const table of ["cu-accounts", "cu-numbers", "cu-docs"]) clear(table);
  c.accounts.forEach((a, i) => {
    const [b, numbers, docs] = each[i];
    const row = rowIn("cu-accounts");
    cell(row, a);
    cell(row, t(`status.${b.status}`));
    cell(row, I18N.money(b.balance, b.currency), "num");
    button(row, t("c.open"), () => showAccount(a)).dataset.openAccount = a;
    for (const n of numbers.numbers || []) {
      const r = rowIn("cu-numbers");
      cell(r, n);
      cell(r, a);
      cell(r, n === numbers.caller_id ? t("c.yes") : "");
    }
    for (const d of docs.items || []) {
      const r = rowIn("cu-docs");
      cell(r, d.number);
      cell(r, a);
      cell(r, t(`doc.kind.${d.kind}`));
      cell(r, I18N.day(d.issue_date));
      cell(r, I18N.money(d.gross, d.currency), "num");
      cell(r, d.status ? t(`doc.status.${d.status}`) : "");
    }
  });
  for (const table of ["cu-accounts", "cu-numbers", "cu-docs"]) {
    if (!$(table).querySelector("tbody tr")) cell(rowIn(table), t("c.none"));
  }
  $("customer").hidden = false;
}

async function showAccount(id) {
  await show("accounts");
  await openAccount(id);
}

async function openAccount(id) {
  state.account = id;
  const path = `/api/v1/accounts/${encodeURIComponent(id)}`;
  const [a, b] = await Promise.all([api(path), api(`${path}/balance?entries=20`)]);
  I18N.zone = a.timezone;
  $("d-id").textContent = a.id;
  $("d-balance").textContent = I18N.money(b.balance, b.currency);
  $("d-available").textContent = I18N.money(b.available, b.currency);
  $("d-status").textContent = t(`status.${a.status}`) + (b.blocked && b.blocked !== a.status ? ` (${b.blocked})` : "");
  $("d-calls").textContent = String(b.open_calls);
  for (const name of ["max_calls", "cps", "daily_cap", "credit_limit"]) $(`l-${name}`).value = a[name];
  clear("d-entries");
  for (const e of b.entries) {
    const row = rowIn("d-entries");
    cell(row, I18N.when(e.created_at));
    cell(row, t(`kind.${e.kind}`));
    cell(row, I18N.money(e.amount, b.currency), "num");
    cell(row, e.reference || e.note || "");
  }
  $("detail").hidden = false;
}

function accountPath(rest) {
  return `/api/v1/accounts/${encodeURIComponent(state.account)}${rest}`;
}

async function topup() {
  const body = { amount: $("t-amount").value.trim().replace(",", "."), kind: $("t-kind").value };
  const reference = $("t-reference").value.trim();
  if (reference) body.reference = reference;
  await api(accountPath("/topups"), json("POST", body));
  $("t-amount").value = $("t-reference").value = "";
  await openAccount(state.account);
  say(t("c.done"));
}

async function setStatus(action) {
  await api(accountPath(`/${action}`), json("POST", { reason: $("s-reason").value.trim() }));
  $("s-reason").value = "";
  await Promise.all([openAccount(state.account), loadAccounts()]);
  say(t("c.done"));
}

async function saveLimits() {
  const body = {};
  for (const name of ["max_calls", "cps"]) body[name] = Number($(`l-${name}`).value);
  for (const name of ["daily_cap", "credit_limit"]) body[name] = $(`l-${name}`).value.trim().replace(",", ".");
  await api(accountPath(""), json("PATCH", body));
  await openAccount(state.account);
  say(t("c.done"));
}

async function loadLive() {
  const calls = (await api("/api/v1/calls")).items;
  clear("live");
  for (const c of calls) {
    const row = rowIn("live");
    row.dataset.call = c.call_id;
    cell(row, c.account);
    cell(row, c.number);
    cell(row, I18N.when(c.answered_at || c.authorized_at));
    cell(row, c.reserved, "num");
    cell(row, c.call_id);
    const b = button(row, t("c.hangup"), () => hangup(c), "danger");
    b.disabled = state.me.read_only;
  }
  if (!calls.length) cell(rowIn("live"), t("c.none"));
}

async function hangup(c) {
  const query = `?account=${encodeURIComponent(c.account)}`;
  await api(`/api/v1/calls/${encodeURIComponent(c.call_id)}/hangup${query}`, { method: "POST" });
  say(t("c.hungup", { id: c.call_id }));
  await loadLive();
}

async function loadFindings() {
  const status = $("f-status").value;
  const found = (await api(`/api/v1/findings${status ? `?status=${status}` : ""}`)).items;
  clear("findings");
  for (const f of found) {
    const row = rowIn("findings");
    cell(row, String(f.id));
    cell(row, f.account);
    cell(row, f.rule);
    cell(row, f.severity);
    cell(row, f.status);
    button(row, t("c.open"), () => openFinding(f.id));
  }
  if (!found.length) cell(rowIn("findings"), t("c.none"));
}

async function openFinding(id) {
  const f = await api(`/api/v1/findings/${id}`);
  state.finding = id;
  $("fd-id").textContent = `#${f.id}`;
  $("fd-summary").textContent = `${f.account} · ${f.rule} · ${f.severity} · ${f.status}` +
    (f.suspended ? " · suspended" : "") + (f.status_by ? ` · ${f.status_by}` : "");
  $("fd-evidence").textContent = JSON.stringify(f.evidence, null, 2);
  $("finding").hidden = false;
}

async function changeFinding(action) {
  const id = state.finding;
  await api(`/api/v1/findings/${id}/${action}`, json("POST", { reason: $("fd-reason").value.trim() }));
  $("fd-reason").value = "";
  await Promise.all([openFinding(id), loadFindings()]);
  say(t("c.done"));
}

async function loadDecks() {
  const decks = (await api("/api/v1/decks")).items;
  clear("decks");
  for (const d of decks) {
    const row = rowIn("decks");
    cell(row, d.name);
    cell(row, String(d.version), "num");
    cell(row, I18N.when(d.imported_at));
    cell(row, I18N.count(d.rows), "num");
    cell(row, d.current ? t("c.yes") : "");
  }
}

async function uploadDeck() {
  $("deck-error").textContent = "";
  const file = $("deck-rates").files[0];
  const form = new FormData();
  form.append("name", $("deck-name").value.trim());
  form.append("currency", $("deck-currency").value.trim());
  if (file) form.append("rates", file, file.name);
  try {
    const done = await api("/api/v1/decks", { method: "POST", body: form });
    say(t("c.uploaded", done));
  } catch (err) {
    const d = err.details || {};
    // a deck's error names the file and the line: say them as they are
    $("deck-error").textContent = d.line !== undefined && d.file
      ? t("c.deckbad", { file: d.file, line: d.line, why: d.why }) : err.message;
    return;
  }
  await loadDecks();
}

async function loadCarriers() {
  const found = (await api("/api/v1/carriers")).items;
  clear("carriers");
  for (const c of found) {
    const row = rowIn("carriers");
    cell(row, c.name);
    cell(row, c.deck);
    cell(row, c.endpoint);
    cell(row, String(c.priority), "num");
    cell(row, c.max_calls ? String(c.max_calls) : "∞", "num");
    cell(row, t(c.disabled ? "c.disabled" : "c.active"));
  }
}

// integer micro-units as an exact decimal string (never through a float division)
function microText(micro) {
  const sign = micro < 0 ? "-" : "";
  const digits = String(Math.abs(micro)).padStart(7, "0");
  return `${sign}${digits.slice(0, -6)}.${digits.slice(-6, -2)}${digits.slice(-2).replace(/0+$/, "")}`;
}

// the routes a call would try, as the authorization computes them (GET /api/v1/routes)
async function previewRoutes() {
  const q = new URLSearchParams({
    account: $("r-account").value.trim(), to: $("r-to").value.trim(),
  });
  const local = $("r-at").value;
  if (local) q.set("at", new Date(local).toISOString());  // the browser's zone, sent in UTC
  const seconds = $("r-seconds").value.trim();
  if (seconds) q.set("seconds", seconds);
  clear("routes");
  clear("routes-skipped");
  $("r-summary").textContent = "";
  const plan = await api(`/api/v1/routes?${q}`);
  $("r-summary").textContent = plan.refused
    ? t("c.refused", { number: plan.number, code: plan.refused })
    : t("c.plan", { number: plan.number, sell: plan.sell.cost, currency: plan.sell.currency,
      seconds: plan.seconds });
  plan.routes.forEach((r, i) => {
    const row = rowIn("routes");
    cell(row, String(i + 1), "num");
    cell(row, r.carrier);
    cell(row, r.endpoint);
    cell(row, r.cost, "num");
    cell(row, microText(r.margin_micro), "num");
    cell(row, r.fx_rate ? `${r.deck_cost} ${r.deck_currency} × ${r.fx_rate}` : "");
  });
  for (const s of plan.skipped) {
    const row = rowIn("routes-skipped");
    cell(row, s.carrier);
    cell(row, s.why);
  }
}

// a month's carrier quality (attempts, ASR, ACD, failure codes) beside its margin
async function loadCarrierReport() {
  const period = encodeURIComponent($("rp-period").value.trim());
  const [quality, margin] = await Promise.all([
    api(`/api/v1/reports/carriers?period=${period}`),
    api(`/api/v1/reports/margin?period=${period}`),
  ]);
  const money = {};
  for (const m of margin.carriers) money[m.carrier] = m;  // one currency per carrier, usually
  clear("carrier-report");
  for (const q of quality.carriers) {
    const m = money[q.carrier] || {};
    const row = rowIn("carrier-report");
    cell(row, q.carrier);
    cell(row, String(q.attempts), "num");
    cell(row, q.asr_percent === null ? "" : `${q.asr_percent}%`, "num");
    cell(row, q.acd_s === null ? "" : `${q.acd_s} s`, "num");
    cell(row, Object.entries(q.failure_codes).map(([c, n]) => `${c}×${n}`).join(", "));
    cell(row, m.sell || "", "num");
    cell(row, m.buy || "", "num");
    cell(row, m.margin || "", "num");
  }
}

async function loadAudit() {
  const items = (await api("/api/v1/audit?limit=200")).items;
  clear("audit");
  for (const e of items) {
    const row = rowIn("audit");
    cell(row, I18N.when(e.at));
    cell(row, e.actor + (e.read_only ? " (support)" : ""));
    cell(row, `${e.action} ${e.subject || ""}`.trim());
    cell(row, e.account || "");
    cell(row, String(e.status), "num");
    cell(row, change(e.before, e.after));
  }
}

// what a change changed: the top-level fields that differ (balance, status, limits)
function change(before, after) {
  if (!before || !after) return "";
  const flat = (o) => ({ ...o, ...(o.balance && typeof o.balance === "object" ? o.balance : {}) });
  const [b, a] = [flat(before), flat(after)];
  return Object.keys(a)
    .filter((k) => typeof a[k] !== "object" && a[k] !== b[k])
    .map((k) => `${k}: ${b[k]} → ${a[k]}`)
    .join("; ");
}

const guard = guarded(() => Boolean(state.me), () => signOut());

document.addEventListener("DOMContentLoaded", () => {
  I18N.init(CONSOLE_WORDS);
  I18N.apply(document);
  $("lang").addEventListener("change", () => I18N.set($("lang").value));
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("signin-error").textContent = "";
    const token = $("token").value.trim();
    const how = $("token-way").open && token ? { token }
      : { login: $("login").value.trim(), password: $("password").value };
    $("signin-button").disabled = true;
    try {
      await signIn(how);
      say(t("signedin"));
    } catch (err) {
      state.token = null;
      $("signin-error").textContent = signInError(err);
    } finally {
      $("signin-button").disabled = false;
    }
  });
  $("sign-out").addEventListener("click", guard(signOut));
  for (const b of document.querySelectorAll("[data-tab]")) {
    b.addEventListener("click", guard(() => show(b.dataset.tab)));
  }
  $("search-form").addEventListener("submit", guard(loadAccounts));
  $("import-form").addEventListener("submit", guard(importAccounts));
  $("customer-search-form").addEventListener("submit", guard(loadCustomers));
  $("topup-form").addEventListener("submit", guard(topup));
  $("suspend").addEventListener("click", guard(() => setStatus("suspend")));
  $("resume").addEventListener("click", guard(() => setStatus("resume")));
  $("limits-form").addEventListener("submit", guard(saveLimits));
  $("refresh-live").addEventListener("click", guard(loadLive));
  $("findings-form").addEventListener("submit", guard(loadFindings));
  for (const b of document.querySelectorAll("#finding-form [data-action]")) {
    b.addEventListener("click", guard(() => changeFinding(b.dataset.action)));
  }
  $("deck-form").addEventListener("submit", guard(uploadDeck));
  $("refresh-audit").addEventListener("click", guard(loadAudit));
  $("routes-form").addEventListener("submit", guard(previewRoutes));
  $("report-form").addEventListener("submit", guard(loadCarrierReport));
  const saved = sessionStorage.getItem(KEY);
  if (saved) guard(() => signIn({ token: saved }))();
});
