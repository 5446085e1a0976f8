"""The sealed login cookie (fcplus_wsgi/pending.py): what it accepts, what it refuses, its caps."""

from __future__ import annotations

import secrets

import pytest

from fcplus_wsgi.pending import MAX_COOKIE_CHARS, MAX_ENTRIES, LoginCookie, PendingSealer, state_tag

NOW, TTL = 1_000_000.0, 600.0
RECORD = {"nonce": "n" * 64, "verifier": "v" * 43, "return_to": "/private/page", "acr": ["eidas2"], "cid": "c",
          "t": NOW}


@pytest.fixture
def sealer() -> PendingSealer:
    return PendingSealer("client-secret-" + "x" * 40, "client", "https://issuer.example")


def test_a_sealed_entry_opens_once_for_its_state_in_its_cookie(sealer: PendingSealer) -> None:
    state = sealer.new_state()
    cookie = sealer.add(None, state, RECORD).render()
    assert sealer.open(cookie, state, now=NOW + 1, ttl=TTL) == ("open", RECORD)
    assert sealer.open(cookie, sealer.new_state(), now=NOW, ttl=TTL) == ("absent", None)
    spent = LoginCookie.parse(cookie)
    assert spent is not None
    assert sealer.open(spent.spent(state).render(), state, now=NOW, ttl=TTL) == ("spent", None)
    assert sealer.open(cookie, state, now=NOW + TTL, ttl=TTL) == ("spent", None)  # expired
    assert sealer.open(cookie, state, now=NOW - 1, ttl=TTL) == ("spent", None)  # from the future


def test_entries_cannot_be_forged_moved_or_opened_with_another_key(sealer: PendingSealer) -> None:
    state = sealer.new_state()
    cookie = sealer.add(None, state, RECORD)
    tag, blob = cookie.entries[0]
    flipped = blob[:20] + ("A" if blob[20] != "A" else "B") + blob[21:]
    assert sealer.open(LoginCookie(cookie.secret, ((tag, flipped),)).render(), state, now=NOW, ttl=TTL)[0] == "absent"
    other_browser = LoginCookie(secrets.token_urlsafe(32), cookie.entries).render()
    assert sealer.open(other_browser, state, now=NOW, ttl=TTL) == ("absent", None)
    other_service = PendingSealer("another-secret-" + "y" * 40, "client", "https://issuer.example")
    assert other_service.open(cookie.render(), state, now=NOW, ttl=TTL) == ("absent", None)


def test_only_states_this_service_minted_are_recognised(sealer: PendingSealer) -> None:
    state = sealer.new_state()
    assert len(state) == 64 and sealer.minted(state)
    assert not sealer.minted(secrets.token_hex(32))
    assert not sealer.minted(state[:-1] + ("0" if state[-1] != "0" else "1"))
    assert not sealer.minted("zz" * 32) and not sealer.minted("")
    assert not PendingSealer("another-secret-" + "y" * 40, "client", "https://issuer.example").minted(state)


def test_the_cookie_keeps_the_newest_entries_within_its_caps(sealer: PendingSealer) -> None:
    value = None
    states = [sealer.new_state() for _ in range(20)]
    for state in states:
        value = sealer.add(value, state, RECORD).render()
    cookie = LoginCookie.parse(value)
    assert cookie is not None and len(cookie.entries) == MAX_ENTRIES and len(value or "") <= MAX_COOKIE_CHARS
    assert [tag for tag, _ in cookie.entries] == [state_tag(s) for s in states[-MAX_ENTRIES:]]
    long_record = {**RECORD, "return_to": "/" + "a" * 2047}  # the longest return-to accepted
    for state in states[:3]:
        value = sealer.add(value, state, long_record).render()
    assert len(value or "") <= MAX_COOKIE_CHARS
    assert sealer.open(value, states[2], now=NOW, ttl=TTL) == ("open", long_record)


@pytest.mark.parametrize("value", [
    "", "short", "P" * 43 + "." + "Q" * 43,  # the secrets-only format of earlier releases
    "P" * 43 + "." + "A" * 15 + "~", "P" * 43 + "." + "A" * 16 + "~A=", "P" * 43 + "." + "A" * 16 + "~AB",
    "P" * 43 + ("." + "A" * 16 + "~") * (MAX_ENTRIES + 1),
])
def test_a_cookie_that_is_not_ours_is_replaced(sealer: PendingSealer, value: str) -> None:
    assert LoginCookie.parse(value) is None
    fresh = sealer.add(value, sealer.new_state(), RECORD)
    assert not fresh.render().startswith(value or "x") and len(fresh.entries) == 1
