// Words and formats for the portal and the console, in Polish and English.
// Numbers, money and dates are formatted by the browser's Intl (the CLDR data babel uses
// too), in the account's time zone; the API itself stays locale-free for programs.
"use strict";

const WORDS = {
  en: {
    "title.portal": "tollgate — your calls and balance",
    "title.console": "tollgate — operator console",
    "lang": "Language",
    "skip": "Skip to content",
    "account": "Account",
    "signout": "Sign out",
    "signin": "Sign in",
    "signin.login": "Login",
    "signin.password": "Password",
    "signin.token": "API token",
    "signin.token.use": "Sign in with an API token instead",
    "signin.token.help": "The token your operator gave you (it starts with tgp_).",
    "signin.wrong": "Wrong login or password.",
    "signin.locked": "Too many failed attempts: try again in {min} min.",
    "signin.badtoken": "This token is unknown or was revoked.",
    "signin.enter": "Enter your login and password.",
    "signin.operator": "This is an operator sign-in: use the operator console.",
    "signin.customer": "This is a customer sign-in: use the customer portal.",
    "signedin": "Signed in.",
    "signedout": "Signed out.",
    "session.ended": "Your session ended: sign in again.",
    "balance.title": "Balance",
    "balance": "Balance",
    "available": "Available for calls",
    "reserved": "Held by running calls",
    "status": "Account status",
    "status.active": "Active",
    "status.suspended": "Suspended",
    "status.closed": "Closed",
    "blocked.suspended": "Calls are blocked: the account is suspended. Contact us.",
    "blocked.closed": "The account is closed.",
    "blocked.invoice_overdue": "Calls are blocked: an invoice is overdue. Pay it to unblock.",
    "payments.title": "Payments and fees",
    "date": "Date",
    "kind": "Kind",
    "amount": "Amount",
    "reference": "Reference",
    "kind.topup": "Top-up",
    "kind.payment": "Payment",
    "kind.adjustment": "Adjustment",
    "kind.fee": "Fee",
    "none": "Nothing yet.",
    "calls.title": "Calls",
    "from": "From",
    "to": "To (inclusive)",
    "class": "Kind of number",
    "all": "All",
    "class.mobile": "Mobile",
    "class.geographic": "Landline",
    "class.international": "International",
    "class.voip": "VoIP",
    "class.toll_free": "Toll-free",
    "class.shared_cost": "Shared cost",
    "class.premium": "Premium",
    "class.high_risk": "High risk",
    "class.emergency": "Emergency",
    "number.contains": "Number contains",
    "show": "Show calls",
    "format": "File format",
    "format.excel-pl": "Excel (Polish)",
    "format.standard": "Standard CSV",
    "download": "Download",
    "download.started": "Download started.",
    "started": "Started",
    "number": "Number",
    "destination": "Destination",
    "duration": "Duration",
    "cost": "Cost",
    "result": "Result",
    "result.answered": "Answered",
    "result.noanswer": "No answer",
    "result.busy": "Busy",
    "result.failed": "Failed",
    "result.cancel": "Cancelled",
    "result.refused": "Refused: {why}",
    "more": "Load more calls",
    "calls.none": "No calls in this period.",
    "calls.totals": "In this period: {n} calls, {answered} answered, {time}, {cost}.",
    "calls.shown": "{n} calls shown, newest first.",
    "loading": "Loading…",
    "period.bad": "Choose a period: 'From' on or before 'To'.",
    "totals.title": "Totals",
    "month": "Month",
    "totals.show": "Show totals",
    "statement.download": "Download the month's calls (CSV)",
    "calls.count": "Calls",
    "total": "Total",
    "docs.title": "Invoices and statements",
    "doc.number": "Number",
    "doc.kind": "Document",
    "doc.issued": "Issued",
    "doc.gross": "Gross",
    "doc.status": "Status",
    "doc.pdf": "PDF",
    "doc.kind.invoice": "Invoice",
    "doc.kind.topup_invoice": "Top-up invoice",
    "doc.kind.credit_note": "Credit note",
    "doc.status.paid": "Paid",
    "doc.status.unpaid": "Unpaid",
    "doc.status.overdue": "Overdue",
    "doc.kind.proforma": "Pro forma invoice",
    "doc.ksef": "KSeF",
    "doc.upo.received": "UPO received",
    "doc.upo.pending": "UPO pending",
    "sip.title": "SIP logins",
    "numbers.title": "Numbers",
    "numbers.callerid": "Shown to those you call",
    "sip.login": "SIP login",
    "sip.server": "Server (realm)",
    "sip.devices": "Registered devices",
    "sip.none": "None registered",
    "sip.status.active": "Active",
    "sip.status.disabled": "Disabled",
    "sip.status.locked": "Locked",
    "yes": "yes",
    "topup.link": "Top up online",
    "forgot": "Forgot your password?",
    "forgot.who": "Login or e-mail address",
    "forgot.send": "Send me a link",
    "forgot.sent": "If this login or address is ours, a link to set a new password is on its way to the e-mail address we have. It works once, for an hour.",
    "forgot.off": "Resetting a password by e-mail is not available: contact us.",
    "reset.title": "Set a new password",
    "reset.password": "New password (at least 10 characters)",
    "reset.repeat": "New password again",
    "reset.save": "Set the password",
    "reset.short": "The password needs at least 10 characters.",
    "reset.differ": "The two passwords differ.",
    "reset.done": "Password set; every other session of {login} has ended. Sign in with the new password.",
    "reset.unknown": "This link is not valid. Ask for a new one.",
    "reset.used": "This link was used already or replaced by a newer one. Ask for a new one if you need it.",
    "reset.expired": "This link has expired. Ask for a new one.",
    "reason.INSUFFICIENT_CREDIT": "no credit",
    "reason.PREMIUM_BLOCKED": "premium number",
    "reason.DESTINATION_BLOCKED": "destination blocked",
    "reason.NO_RATE": "no rate",
    "reason.ACCOUNT_SUSPENDED": "account suspended",
    "reason.INVOICE_OVERDUE": "invoice overdue",
    "reason.TOO_MANY_CALLS": "too many calls",
    "reason.RATE_LIMITED": "too many calls at once",
    "reason.INVALID_NUMBER": "invalid number",
  },
  pl: {
    "title.portal": "tollgate — połączenia i saldo",
    "title.console": "tollgate — konsola operatora",
    "lang": "Język",
    "skip": "Przejdź do treści",
    "account": "Konto",
    "signout": "Wyloguj",
    "signin": "Zaloguj",
    "signin.login": "Login",
    "signin.password": "Hasło",
    "signin.token": "Token API",
    "signin.token.use": "Zaloguj tokenem API",
    "signin.token.help": "Token od operatora (zaczyna się od tgp_).",
    "signin.wrong": "Błędny login lub hasło.",
    "signin.locked": "Zbyt wiele nieudanych prób: spróbuj za {min} min.",
    "signin.badtoken": "Ten token jest nieznany lub został unieważniony.",
    "signin.enter": "Podaj login i hasło.",
    "signin.operator": "To logowanie operatora: użyj konsoli operatora.",
    "signin.customer": "To logowanie klienta: użyj portalu klienta.",
    "signedin": "Zalogowano.",
    "signedout": "Wylogowano.",
    "session.ended": "Sesja wygasła: zaloguj się ponownie.",
    "balance.title": "Saldo",
    "balance": "Saldo",
    "available": "Dostępne na połączenia",
    "reserved": "Zablokowane przez trwające połączenia",
    "status": "Stan konta",
    "status.active": "Aktywne",
    "status.suspended": "Zawieszone",
    "status.closed": "Zamknięte",
    "blocked.suspended": "Połączenia są zablokowane: konto zawieszone. Skontaktuj się z nami.",
    "blocked.closed": "Konto jest zamknięte.",
    "blocked.invoice_overdue":
      "Połączenia są zablokowane: faktura po terminie. Opłać ją, aby odblokować.",
    "payments.title": "Wpłaty i opłaty",
    "date": "Data",
    "kind": "Rodzaj",
    "amount": "Kwota",
    "reference": "Tytuł",
    "kind.topup": "Doładowanie",
    "kind.payment": "Wpłata",
    "kind.adjustment": "Korekta",
    "kind.fee": "Opłata",
    "none": "Brak.",
    "calls.title": "Połączenia",
    "from": "Od",
    "to": "Do (włącznie)",
    "class": "Rodzaj numeru",
    "all": "Wszystkie",
    "class.mobile": "Komórkowy",
    "class.geographic": "Stacjonarny",
    "class.international": "Zagraniczny",
    "class.voip": "VoIP",
    "class.toll_free": "Bezpłatny",
    "class.shared_cost": "Wspólna opłata",
    "class.premium": "Usługi premium",
    "class.high_risk": "Wysokie ryzyko",
    "class.emergency": "Alarmowy",
    "number.contains": "Numer zawiera",
    "show": "Pokaż połączenia",
    "format": "Format pliku",
    "format.excel-pl": "Excel (polski)",
    "format.standard": "Standardowy CSV",
    "download": "Pobierz",
    "download.started": "Pobieranie rozpoczęte.",
    "started": "Początek",
    "number": "Numer",
    "destination": "Kierunek",
    "duration": "Czas",
    "cost": "Koszt",
    "result": "Wynik",
    "result.answered": "Odebrane",
    "result.noanswer": "Nieodebrane",
    "result.busy": "Zajęte",
    "result.failed": "Nieudane",
    "result.cancel": "Przerwane",
    "result.refused": "Odrzucone: {why}",
    "more": "Pokaż więcej połączeń",
    "calls.none": "Brak połączeń w tym okresie.",
    "calls.totals": "W tym okresie: połączeń {n}, odebranych {answered}, czas {time}, koszt {cost}.",
    "calls.shown": "Pokazano połączeń: {n}, od najnowszych.",
    "loading": "Wczytywanie…",
    "period.bad": "Wybierz okres: „Od” nie później niż „Do”.",
    "totals.title": "Podsumowanie",
    "month": "Miesiąc",
    "totals.show": "Pokaż podsumowanie",
    "statement.download": "Pobierz biling miesiąca (CSV)",
    "calls.count": "Połączenia",
    "total": "Razem",
    "docs.title": "Faktury i zestawienia",
    "doc.number": "Numer",
    "doc.kind": "Dokument",
    "doc.issued": "Wystawiono",
    "doc.gross": "Brutto",
    "doc.status": "Stan",
    "doc.pdf": "PDF",
    "doc.kind.invoice": "Faktura",
    "doc.kind.topup_invoice": "Faktura za doładowanie",
    "doc.kind.credit_note": "Faktura korygująca",
    "doc.status.paid": "Opłacona",
    "doc.status.unpaid": "Do zapłaty",
    "doc.status.overdue": "Po terminie",
    "doc.kind.proforma": "Faktura pro forma",
    "doc.ksef": "KSeF",
    "doc.upo.received": "UPO odebrane",
    "doc.upo.pending": "UPO w oczekiwaniu",
    "sip.title": "Konta SIP",
    "numbers.title": "Numery",
    "numbers.callerid": "Prezentowany rozmówcom",
    "sip.login": "Login SIP",
    "sip.server": "Serwer (realm)",
    "sip.devices": "Zarejestrowane urządzenia",
    "sip.none": "Brak rejestracji",
    "sip.status.active": "Aktywny",
    "sip.status.disabled": "Wyłączony",
    "sip.status.locked": "Zablokowany",
    "yes": "tak",
    "topup.link": "Doładuj online",
    "forgot": "Nie pamiętasz hasła?",
    "forgot.who": "Login lub adres e-mail",
    "forgot.send": "Wyślij odnośnik",
    "forgot.sent": "Jeśli ten login lub adres jest u nas, na zapisany adres e-mail wysłaliśmy odnośnik do ustawienia nowego hasła. Działa jeden raz, przez godzinę.",
    "forgot.off": "Zmiana hasła przez e-mail jest niedostępna: skontaktuj się z nami.",
    "reset.title": "Ustaw nowe hasło",
    "reset.password": "Nowe hasło (co najmniej 10 znaków)",
    "reset.repeat": "Powtórz nowe hasło",
    "reset.save": "Ustaw hasło",
    "reset.short": "Hasło musi mieć co najmniej 10 znaków.",
    "reset.differ": "Hasła się różnią.",
    "reset.done": "Hasło ustawione; pozostałe sesje loginu {login} zostały zakończone. Zaloguj się nowym hasłem.",
    "reset.unknown": "Ten odnośnik jest nieprawidłowy. Poproś o nowy.",
    "reset.used": "Ten odnośnik został już użyty lub zastąpiony nowszym. W razie potrzeby poproś o nowy.",
    "reset.expired": "Ten odnośnik wygasł. Poproś o nowy.",
    "reason.INSUFFICIENT_CREDIT": "brak środków",
    "reason.PREMIUM_BLOCKED": "numer premium",
    "reason.DESTINATION_BLOCKED": "kierunek zablokowany",
    "reason.NO_RATE": "brak stawki",
    "reason.ACCOUNT_SUSPENDED": "konto zawieszone",
    "reason.INVOICE_OVERDUE": "faktura po terminie",
    "reason.TOO_MANY_CALLS": "za dużo połączeń",
    "reason.RATE_LIMITED": "za dużo połączeń naraz",
    "reason.INVALID_NUMBER": "błędny numer",
  },
};

const LANG_KEY = "tollgate.lang";

const I18N = {
  lang: "pl",
  zone: "Europe/Warsaw",

  init(extra) {
    for (const [lang, words] of Object.entries(extra || {})) Object.assign(WORDS[lang], words);
    const asked = new URLSearchParams(location.search).get("lang");
    const saved = localStorage.getItem(LANG_KEY);
    const browser = (navigator.language || "pl").slice(0, 2);
    this.lang = [asked, saved, browser].find((l) => l in WORDS) || "pl";
  },

  set(lang) {
    this.lang = lang in WORDS ? lang : "pl";
    localStorage.setItem(LANG_KEY, this.lang);
    this.apply(document);
  },

  t(key, vars) {
    const text = WORDS[this.lang][key] ?? WORDS.en[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (_, name) => String((vars || {})[name] ?? ""));
  },

  // the words of the static page: data-i18n (text), data-i18n-title (document title)
  apply(root) {
    document.documentElement.lang = this.lang;
    for (const e of root.querySelectorAll("[data-i18n]")) e.textContent = this.t(e.dataset.i18n);
    const title = document.querySelector("title[data-i18n-title]");
    if (title) document.title = this.t(title.dataset.i18nTitle);
    const picker = document.getElementById("lang");
    if (picker) picker.value = this.lang;
  },

  locale() {
    return this.lang === "pl" ? "pl-PL" : "en-GB";
  },

  // money arrives as a decimal string ("336.8949"); Intl formats the string itself (exact
  // decimal), so no float ever rounds it. Balances show grosze; a call's cost may show the
  // deck's finer decimals (`digits`), so 1,2345 zł is not passed off as 1,23 zł.
  money(amount, currency, digits) {
    if (amount === null || amount === undefined || amount === "") return "";
    try {
      return new Intl.NumberFormat(this.locale(), {
        style: "currency", currency, minimumFractionDigits: 2, maximumFractionDigits: digits || 2,
      }).format(amount);
    } catch (err) {
      return `${amount} ${currency || ""}`.trim();
    }
  },

  when(iso) {
    if (!iso) return "";
    return new Intl.DateTimeFormat(this.locale(), {
      timeZone: this.zone, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
    }).format(new Date(iso));
  },

  day(isoDate) {
    if (!isoDate) return "";
    return new Intl.DateTimeFormat(this.locale(), {
      timeZone: "UTC", year: "numeric", month: "2-digit", day: "2-digit",
    }).format(new Date(`${isoDate.slice(0, 10)}T00:00:00Z`));
  },

  count(n) {
    return new Intl.NumberFormat(this.locale()).format(n);
  },

  duration(seconds) {
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = String(seconds % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  },

  // today's date (YYYY-MM-DD) in the account's zone, not the browser's, not UTC
  today() {
    return new Intl.DateTimeFormat("en-CA", {
      timeZone: this.zone, year: "numeric", month: "2-digit", day: "2-digit",
    }).format(new Date());
  },
};
