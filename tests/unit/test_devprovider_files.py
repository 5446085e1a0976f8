"""The development provider's --clients and --identities files: every mistake named."""

from __future__ import annotations

from typing import Any

import pytest

from fcplus_wsgi.devprovider import ConfigError
from fcplus_wsgi.devprovider.config import clients_from_json
from fcplus_wsgi.devprovider.identities import identities_from_json

CLIENT = {"client_id": "a", "client_secret": "b" * 40, "redirect_uris": ["http://127.0.0.1/cb"],
          "jwks_uri": "http://127.0.0.1/jwks"}


@pytest.mark.parametrize(("data", "message"), [
    ([], "non-empty JSON list of client objects"),
    ({"client_id": "a"}, "non-empty JSON list of client objects"),
    ([3], "item #0 is not a JSON object"),
    ([{"client_id": "a"}], "item #0 lacks the required field 'client_secret'"),
    ([{**CLIENT, "bogus": 1}], "item #0 has unknown field 'bogus'"),
    ([CLIENT, {**CLIENT, "redirect_uris": "not-a-list"}], "item #1"),
])
def test_bad_clients_file(data: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        clients_from_json(data, "clients.json")


def test_good_clients_file() -> None:
    [client] = clients_from_json([CLIENT], "clients.json")
    assert client.client_id == "a" and client.redirect_uris == ["http://127.0.0.1/cb"]


def test_bad_identities_file() -> None:
    with pytest.raises(ConfigError, match="item #0 lacks the required field 'given_name'"):
        identities_from_json([{"uid": "x"}], "identities.json")
    with pytest.raises(ConfigError, match="non-empty JSON list of identity objects"):
        identities_from_json([], "identities.json")
