"""Signing in on the development provider's own page, as a browser would, whatever its profile.

The page differs per profile (citizens for FC+ and FranceConnect, agents and identity
providers for ProConnect); the form is read from the HTML, never assumed.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import requests


class DevForm(HTMLParser):
    """The development provider's sign-in form: its action, the checked (else first) radio of
    each group, hidden and text fields, and the accept button."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._radios: dict[str, str] = {}
        self.accept: tuple[str, str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action = a.get("action", "")
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind == "radio":
                if "checked" in a or a["name"] not in self._radios:
                    self._radios[a["name"]] = a.get("value", "")
            elif kind in ("hidden", "text", "email"):
                self.fields[a["name"]] = a.get("value", "")
        elif tag == "button" and a.get("name") == "decision" and a.get("value") == "accept":
            self.accept = ("decision", "accept")

    def data(self) -> dict[str, str]:
        out = {**self.fields, **self._radios}
        if self.accept:
            out[self.accept[0]] = self.accept[1]
        return out


def sign_in_at_dev_provider(browser: requests.Session, authorize_url: str, service_base: str) -> requests.Response:
    """Follow the provider's redirects to its sign-in page, accept with the preselected (or
    first) choices; returns the provider's redirect back to the service, unfollowed."""
    response = browser.get(authorize_url, allow_redirects=False, timeout=10)
    for _ in range(5):
        if not response.is_redirect:
            break
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(service_base):
            return response
        response = browser.get(location, allow_redirects=False, timeout=10)
    assert response.status_code == 200, response.text[:500]
    form = DevForm()
    form.feed(response.text)
    assert form.action, response.text[:500]
    answer = browser.post(urljoin(response.url, form.action), data=form.data(), allow_redirects=False, timeout=10)
    assert answer.is_redirect, answer.text[:500]
    return answer
