"""Polish and English texts of each kind of notice. Amounts arrive as micro-units and are
shown in the language's convention, cut (never rounded up) to the grosz so a balance just
under a threshold never reads as the threshold itself."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Any

from notify.errors import NotifyError

LANGUAGES = ("pl", "en")

# kind -> language -> (subject, body); placeholders are filled from the notice's data
_TEXTS: dict[str, dict[str, tuple[str, str]]] = {
    "low_balance": {
        "pl": (
            "Niskie saldo konta {account}",
            "Saldo konta {account} spadło poniżej {threshold} i wynosi {balance}.\n"
            "Doładuj konto, aby uniknąć blokady połączeń wychodzących.",
        ),
        "en": (
            "Low balance on account {account}",
            "The balance of account {account} fell below {threshold} and is {balance}.\n"
            "Top up the account to keep outgoing calls available.",
        ),
    },
    "balance_negative": {
        "pl": (
            "Ujemne saldo konta {account}",
            "Saldo konta {account} jest ujemne: {balance}.\n"
            "Połączenia wychodzące (poza numerami alarmowymi) są zablokowane do czasu "
            "doładowania konta.",
        ),
        "en": (
            "Negative balance on account {account}",
            "The balance of account {account} is negative: {balance}.\n"
            "Outgoing calls (emergency numbers excepted) are blocked until the account is "
            "topped up.",
        ),
    },
    "complaint_received": {
        "pl": (
            "Reklamacja nr {complaint} została przyjęta",
            "Otrzymaliśmy reklamację nr {complaint} dotyczącą konta {account}.\n"
            "Odpowiemy do {due} (koniec dnia); brak odpowiedzi w tym terminie oznacza "
            "uwzględnienie reklamacji.",
        ),
        "en": (
            "Complaint {complaint} received",
            "We received complaint {complaint} about account {account}.\n"
            "We will answer by the end of {due}; without an answer by then the complaint is "
            "deemed accepted.",
        ),
    },
    "complaint_answered": {
        "pl": (
            "Odpowiedź na reklamację nr {complaint}",
            "Reklamacja nr {complaint} (konto {account}): {decision_pl}.\n{answer}\n"
            "Uznana kwota: {credited}.",
        ),
        "en": (
            "Answer to complaint {complaint}",
            "Complaint {complaint} (account {account}): {decision_en}.\n{answer}\n"
            "Amount credited: {credited}.",
        ),
    },
    "foreign_numbers_release_warning": {
        "pl": (
            "Numery zagraniczne konta {account} zostaną usunięte {release_on}",
            "Saldo konta {account} jest ujemne od {negative_since} i wynosi {balance}.\n"
            "Zgodnie z § 5 ust. 4 regulaminu numery zagraniczne ({numbers}) zostaną usunięte "
            "{release_on}, jeżeli saldo pozostanie ujemne. Doładuj konto przed tą datą, aby "
            "je zachować.",
        ),
        "en": (
            "Foreign numbers of account {account} will be removed on {release_on}",
            "The balance of account {account} has been negative since {negative_since} and "
            "is {balance}.\n"
            "Under § 5(4) of the terms the foreign numbers ({numbers}) will be removed on "
            "{release_on} if the balance stays negative. Top up the account before that date "
            "to keep them.",
        ),
    },
    "foreign_numbers_released": {
        "pl": (
            "Numery zagraniczne konta {account} zostały usunięte",
            "Saldo konta {account} było ujemne od {negative_since} przez {days} dni.\n"
            "Zgodnie z § 5 ust. 4 regulaminu numery zagraniczne ({numbers}) zostały usunięte "
            "{released_on}.",
        ),
        "en": (
            "Foreign numbers of account {account} were removed",
            "The balance of account {account} was negative for {days} days since "
            "{negative_since}.\n"
            "Under § 5(4) of the terms the foreign numbers ({numbers}) were removed on "
            "{released_on}.",
        ),
    },
    "abuse_warning": {
        "pl": (
            "Wezwanie do zaprzestania naruszeń na koncie {account}",
            "Na koncie {account} wykryliśmy: {rule_pl} (zgłoszenie nr {finding}), co narusza "
            "zasady korzystania z usługi.\n"
            "Wzywamy do zaprzestania naruszeń do {deadline}. Jeśli będą trwały po tym terminie, "
            "połączenia wychodzące zostaną zawieszone (poza numerami alarmowymi).",
        ),
        "en": (
            "Request to stop a violation on account {account}",
            "On account {account} we detected {rule_en} (finding {finding}), which breaks the "
            "acceptable-use policy.\n"
            "Please stop by {deadline}. If it continues after then, outgoing calls (emergency "
            "numbers excepted) will be suspended.",
        ),
    },
    "abuse_suspended": {
        "pl": (
            "Zawieszenie połączeń wychodzących na koncie {account}",
            "Połączenia wychodzące konta {account} zostały zawieszone (poza numerami "
            "alarmowymi): {rule_pl} (zgłoszenie nr {finding}). {reason_pl}\n"
            "Skontaktuj się z nami, aby wyjaśnić sprawę.",
        ),
        "en": (
            "Outgoing calls suspended on account {account}",
            "Outgoing calls of account {account} are suspended (emergency numbers excepted): "
            "{rule_en} (finding {finding}). {reason_en}\n"
            "Please contact us to resolve it.",
        ),
    },
    "abuse_resumed": {
        "pl": (
            "Przywrócenie połączeń wychodzących na koncie {account}",
            "Zawieszenie połączeń wychodzących konta {account} (zgłoszenie nr {finding}) "
            "zostało zniesione.",
        ),
        "en": (
            "Outgoing calls restored on account {account}",
            "The suspension of outgoing calls of account {account} (finding {finding}) has "
            "been lifted.",
        ),
    },
    "outage_compensation": {
        "pl": (
            "Rekompensata za przerwę w świadczeniu usług",
            "Z powodu przerwy w świadczeniu usług od {start} do {end} (dni: {days}) "
            "zapisaliśmy na koncie {account} rekompensatę {amount}: 1/30 średniego "
            "miesięcznego użycia za każdy rozpoczęty dzień przerwy (§9.7 regulaminu).",
        ),
        "en": (
            "Compensation for a service outage",
            "For the outage from {start} to {end} ({days} days) we credited account {account} "
            "with {amount}: 1/30 of the average monthly use for each started day of the "
            "outage (terms §9.7).",
        ),
    },
    "outage_compensation_months": {
        "pl": (
            "Rekompensata za przerwę w świadczeniu usług",
            "Z powodu przerwy w świadczeniu usług od {start} do {end} okres abonamentowy "
            "konta {account} przedłużamy o {months} mies.: zapisaliśmy na koncie {amount}, "
            "równowartość abonamentu za ten czas. Za każde rozpoczęte 12 godzin przerwy "
            "ponad okres jednego dnia przysługuje miesiąc abonamentu (§10 lit. c regulaminu).",
        ),
        "en": (
            "Compensation for a service outage",
            "For the outage from {start} to {end} we extend the subscription of account "
            "{account} by {months} month(s): we credited it with {amount}, the subscription "
            "for that time. Each started 12 hours of outage beyond the first day is worth a "
            "month of subscription (terms §10(c)).",
        ),
    },
    "plan_fee": {
        "pl": (
            "Opłata za plan {plan} za {period}",
            "Na koncie {account} pobraliśmy z góry opłatę {amount} za plan {plan} za okres "
            "{period} ({note}; §7.2 regulaminu).",
        ),
        "en": (
            "The fee of plan {plan} for {period}",
            "We charged account {account} the fee of {amount} for plan {plan} for {period} in "
            "advance ({note}; terms §7.2).",
        ),
    },
    "trial_ending": {
        "pl": (
            "Okres próbny konta {account} kończy się {ends}",
            "Okres próbny konta {account} kończy się {ends}. Jeśli do tego czasu nie "
            "wpłacisz środków, połączenia wychodzące (poza numerami alarmowymi) zostaną "
            "zablokowane.",
        ),
        "en": (
            "The trial of account {account} ends on {ends}",
            "The trial of account {account} ends on {ends}. Without a payment by then, "
            "outgoing calls (emergency numbers excepted) will be blocked.",
        ),
    },
    "trial_blocked": {
        "pl": (
            "Okres próbny konta {account} zakończył się",
            "Okres próbny konta {account} zakończył się: połączenia wychodzące (poza numerami "
            "alarmowymi) są zablokowane do czasu wpłaty. Bez wpłaty konto zostanie zamknięte "
            "{close}.",
        ),
        "en": (
            "The trial of account {account} has ended",
            "The trial of account {account} has ended: outgoing calls (emergency numbers "
            "excepted) are blocked until a payment. Without one the account will be closed on "
            "{close}.",
        ),
    },
    "trial_closing": {
        "pl": (
            "Konto {account} zostanie zamknięte {close}",
            "Bez wpłaty konto {account} zostanie zamknięte {close}.",
        ),
        "en": (
            "Account {account} will be closed on {close}",
            "Without a payment account {account} will be closed on {close}.",
        ),
    },
    "price_change": {
        "pl": (
            "Zmiana cennika połączeń od {effective}",
            "Od {effective} rosną ceny połączeń konta {account} do {increases} kierunków "
            "(cennik {deck}, wersja {version}):\n{changes_pl}\n"
            "Połączenia rozpoczęte przed tą chwilą rozliczamy po dotychczasowych cenach. "
            "Jeśli nie akceptujesz zmian, możesz wypowiedzieć umowę przed ich wejściem w życie.",
        ),
        "en": (
            "Call prices change from {effective}",
            "From {effective} the prices of calls from account {account} to {increases} "
            "destinations go up (deck {deck}, version {version}):\n{changes_en}\n"
            "Calls started before then are charged at the current prices. If you do not "
            "accept the change, you may end the contract before it comes into force.",
        ),
    },
}

DECISIONS = {  # complaint status -> (pl, en)
    "accepted": ("uwzględniona", "accepted"),
    "deemed_accepted": ("uznana za uwzględnioną (brak odpowiedzi w terminie)", "deemed accepted"),
    "rejected": (
        "nieuwzględniona; odwołanie można wnieść w ciągu 14 dni",
        "rejected; you may appeal within 14 days",
    ),
}


def money(micro: int, currency: str, language: str) -> str:
    """12_345_678 PLN -> '12,34 PLN' (pl) or '12.34 PLN' (en)."""
    value = (Decimal(micro) / 1_000_000).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
    text = f"{value:,.2f}"  # 1,234.56
    if language == "pl":
        text = text.replace(",", "\u00a0").replace(".", ",")
    return f"{text} {currency}"


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise NotifyError("language", f"one of {', '.join(LANGUAGES)}, not {language!r}")
    return language


def render(kind: str, language: str, data: dict[str, Any]) -> tuple[str, str]:
    """The subject and body of a notice; money fields (`*_micro`) are formatted first."""
    texts = _TEXTS.get(kind)
    if texts is None:
        raise NotifyError("kind", f"no template for {kind!r}")
    subject, body = texts[check_language(language)]
    currency = str(data.get("currency", ""))
    values = dict(data)
    for name, value in data.items():
        if name.endswith("_micro"):
            values[name.removesuffix("_micro")] = money(int(value), currency, language)
    try:
        return subject.format(**values), body.format(**values)
    except KeyError as exc:
        raise NotifyError("data", f"{kind} needs {exc.args[0]!r}") from None
