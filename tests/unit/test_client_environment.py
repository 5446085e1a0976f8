"""The provider client reads proxy and CA settings from the environment once, at start."""

from __future__ import annotations

import pytest

from fcplus_wsgi.client import ProviderClient


def test_proxy_from_environment_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = ProviderClient("https://op.example/api/v2")
    assert client.transport.proxies.get("https") == "http://proxy.internal:3128"


def test_no_proxy_is_honoured_for_the_issuer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "op.example")
    assert ProviderClient("https://op.example/api/v2").transport.proxies == {}


def test_ca_bundle_setting_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/env-bundle.pem")
    assert ProviderClient("https://op.example").verify == "/etc/ssl/env-bundle.pem"
    assert ProviderClient("https://op.example", ca_bundle="/etc/ssl/mine.pem").verify == "/etc/ssl/mine.pem"
