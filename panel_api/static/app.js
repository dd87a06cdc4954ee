// The customer page: sign in with a token, see the balance and the calls, download CSV.
// Plain JavaScript, no dependencies; every value is put in the page as text, never as HTML.
"use strict";

const KEY = "tollgate.token";
const PAGE_SIZE = 50;
const $ = (id) => document.getElementById(id);

const state = { token: null, account: null, filter: null, cursor: null };

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "HTTP_" + status;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" },
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body);
  return body;
}

function say(text) {
  $("status").textContent = text;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
}

function money(amount, currency) {
  return `${amount} ${currency}`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function duration(seconds) {
  const m = Math.floor(seconds / 60);
  const s = String(seconds % 60).padStart(2, "0");
  return `${m}:${s}`;
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function nextDay(day) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return isoDay(d);
}

async function signIn(token) {
  state.token = token;
  const me = await api("/api/v1/me");
  if (!me.account) {
    throw new ApiError(403, {
      error: { message: "This is an operator token: this page shows one customer's account." },
    });
  }
  state.account = me.account;
  sessionStorage.setItem(KEY, token);
  $("who-account").textContent = me.account;
  $("who").hidden = false;
  $("signin").hidden = true;
  $("account").hidden = false;
  $("calls").hidden = false;
  const today = new Date();
  $("from").value = isoDay(new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), 1)));
  $("to").value = isoDay(today);
  await Promise.all([loadBalance(), loadCalls(true)]);
  $("main").focus();
}

function signOut() {
  sessionStorage.removeItem(KEY);
  state.token = state.account = null;
  $("who").hidden = true;
  $("account").hidden = true;
  $("calls").hidden = true;
  $("signin").hidden = false;
  $("token").value = "";
  say("Signed out.");
  $("token").focus();
}

function accountPath(rest) {
  return `/api/v1/accounts/${encodeURIComponent(state.account)}/${rest}`;
}

async function loadBalance() {
  const b = await api(accountPath("balance?entries=5"));
  $("balance").textContent = money(b.balance, b.currency);
  $("available").textContent = money(b.available, b.currency);
  $("reserved").textContent = money(b.reserved, b.currency);
  $("account-status").textContent = b.status;
  const body = $("entries").querySelector("tbody");
  body.replaceChildren();
  for (const e of b.entries) {
    const row = document.createElement("tr");
    cell(row, when(e.created_at));
    cell(row, e.kind);
    cell(row, money(e.amount, b.currency), "num");
    cell(row, e.reference || e.note || "");
    body.appendChild(row);
  }
}

function currentFilter() {
  const params = new URLSearchParams();
  params.set("from", $("from").value);
  params.set("to", nextDay($("to").value));
  if ($("class").value) params.set("class", $("class").value);
  const number = $("number").value.replace(/[\s-]/g, "");
  if (number) params.set("number", number);
  return params;
}

function result(c) {
  if (c.state === "denied") return `Refused (${c.reason.toLowerCase().replace(/_/g, " ")})`;
  if (c.answered_at) return "Answered";
  return c.disposition ? c.disposition.toLowerCase() : c.state;
}

async function loadCalls(fresh) {
  if (fresh) {
    if (!$("from").value || !$("to").value || $("from").value > $("to").value) {
      say("Choose a period: 'From' on or before 'To'.");
      return;
    }
    state.filter = currentFilter();
    state.cursor = null;
    $("cdrs").querySelector("tbody").replaceChildren();
  }
  const params = new URLSearchParams(state.filter);
  params.set("limit", String(PAGE_SIZE));
  if (state.cursor) params.set("cursor", state.cursor);
  say("Loading calls…");
  const page = await api(accountPath(`cdrs?${params}`));
  const body = $("cdrs").querySelector("tbody");
  for (const c of page.items) {
    const row = document.createElement("tr");
    cell(row, when(c.started_at));
    cell(row, c.number || c.dialled);
    cell(row, c.destination || c.class);
    cell(row, duration(c.billsec), "num");
    cell(row, money(c.cost, c.currency || ""), "num");
    cell(row, result(c));
    body.appendChild(row);
  }
  state.cursor = page.next_cursor;
  $("more").hidden = !state.cursor;
  const shown = body.children.length;
  $("cdrs-summary").textContent =
    shown === 0 ? "No calls in this period." : `${shown} call(s) shown, newest first.`;
  say(shown === 0 ? "No calls in this period." : `${shown} call(s) shown.`);
}

async function download() {
  const button = $("download");
  button.disabled = true;
  try {
    // a one-time link, so the browser saves the file itself (streamed, any size)
    const link = await api(accountPath(`cdrs/exports?${currentFilter()}`), { method: "POST" });
    const a = document.createElement("a");
    a.href = link.url;
    a.download = "";
    document.body.appendChild(a);
    a.click();
    a.remove();
    say("Download started.");
  } finally {
    button.disabled = false;
  }
}

function guard(fn) {
  return async (event) => {
    if (event) event.preventDefault();
    try {
      await fn(event);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && state.account) {
        signOut();
        say("Your session ended: sign in again.");
        return;
      }
      say(err.message);
    }
  };
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    $("signin-error").textContent = "";
    if (!token) {
      $("signin-error").textContent = "Enter your token.";
      $("token").focus();
      return;
    }
    $("signin-button").disabled = true;
    try {
      await signIn(token);
      say("Signed in.");
    } catch (err) {
      state.token = null;
      $("signin-error").textContent =
        err.status === 401 ? "This token is unknown or was revoked." : err.message;
      $("token").focus();
    } finally {
      $("signin-button").disabled = false;
    }
  });
  $("sign-out").addEventListener("click", signOut);
  $("filters").addEventListener("submit", guard(() => loadCalls(true)));
  $("more").addEventListener("click", guard(() => loadCalls(false)));
  $("download").addEventListener("click", guard(download));
  const saved = sessionStorage.getItem(KEY);
  if (saved) guard(() => signIn(saved))();
});
