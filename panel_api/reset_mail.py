"""The password-reset message, in Polish and English. The link carries the secret in the
URL's fragment (after `#`), which browsers never send to a server or in a Referer."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from notify.outbox import Mail

LANGUAGES = ("pl", "en")
ZONE = ZoneInfo("Europe/Warsaw")

_TEXTS = {
    "pl": (
        "Zmiana hasła do panelu klienta",
        "Dzień dobry,\n\n"
        "ktoś (zapewne Ty) poprosił o zmianę hasła do loginu {login}.\n"
        "Aby ustawić nowe hasło, otwórz ten odnośnik:\n\n{link}\n\n"
        "Odnośnik działa jeden raz, do {expires}. Po zmianie hasła wszystkie otwarte sesje "
        "tego loginu zostaną zakończone.\n"
        "Jeśli to nie Ty prosiłeś o zmianę, zignoruj tę wiadomość: hasło pozostanie bez "
        "zmian.\n",
    ),
    "en": (
        "Resetting your customer panel password",
        "Hello,\n\n"
        "someone (probably you) asked to reset the password of the login {login}.\n"
        "To set a new password, open this link:\n\n{link}\n\n"
        "The link works once, until {expires}. When the password is changed, every open "
        "session of this login is ended.\n"
        "If you did not ask for this, ignore this message: the password stays as it is.\n",
    ),
}


def language_of(wanted: str | None) -> str:
    return wanted if wanted in LANGUAGES else "pl"


def link(public_url: str, secret: str) -> str:
    return f"{public_url.rstrip('/')}/#reset={secret}"


def reset_mail(
    reset_id: int,
    login: str,
    recipient: str,
    url: str,
    expires_at: datetime,
    language: str,
) -> Mail:
    subject, body = _TEXTS[language_of(language)]
    local = expires_at.astimezone(ZONE)
    expires = local.strftime("%d.%m.%Y %H:%M" if language == "pl" else "%Y-%m-%d %H:%M")
    return Mail(
        key=f"password-reset/{reset_id}",
        recipient=recipient,
        subject=subject,
        body=body.format(login=login, link=url, expires=f"{expires} ({local.tzname()})"),
    )
