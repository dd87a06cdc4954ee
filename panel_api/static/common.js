// The page plumbing the portal and the console share: fetching from the API, errors,
// table rows, the status line, sign-in messages and the guard around every handler.
// Plain JavaScript; every value goes into the page as text, never as HTML.
"use strict";

// calendar arithmetic on plain dates (no zone involved)
function addDays(day, n) {
  const d = new Date(`${day}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

// the shared page plumbing of the portal and the console
const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(status, body, headers) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "HTTP_" + status;
    this.details = error.details || {};
    this.retryAfter = Number((headers && headers.get("Retry-After")) || 0);
  }
}

async function call(token, path, options = {}) {
  const headers = { Accept: "application/json", ...(options.headers || {}) };
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, body, response.headers);
  return body;
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  // the column's name, shown beside the value when a phone turns rows into cards
  const table = row.closest("table");
  const th = table ? table.querySelectorAll("thead th")[row.children.length] : null;
  if (th) td.dataset.label = th.textContent;
  row.appendChild(td);
  return td;
}

function rowIn(tableId) {
  const row = document.createElement("tr");
  $(tableId).querySelector("tbody").appendChild(row);
  return row;
}

// a JSON request's options
function json(method, body) {
  return {
    method, headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}),
  };
}

function say(text) {
  $("status").textContent = text;
}

// why a sign-in failed, in the page's words
function signInError(err) {
  if (err.code === "LOGIN_LOCKED" || err.code === "AUTH_RATE_LIMITED") {
    return I18N.t("signin.locked", { min: Math.max(1, Math.ceil(err.retryAfter / 60)) });
  }
  if (err.code === "SIGN_IN_REFUSED") return I18N.t("signin.wrong");
  if (err.status === 401) return I18N.t("signin.badtoken");
  return err.message;
}

// a handler whose failure is said in the status line; a 401 while signed in (`signedIn()`)
// means the session ended: `signOut` runs and the page says so
function guarded(signedIn, signOut) {
  return (fn) => async (event) => {
    if (event && event.preventDefault) event.preventDefault();
    try {
      await fn(event);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401 && signedIn()) {
        await signOut();
        say(I18N.t("session.ended"));
        return;
      }
      say(err.message);
    }
  };
}
