"""Schemathesis hooks for fuzzing Flowplane's REST API.

The run's credential must outlive the run: the fuzzer calls every operation, including the
ones that revoke, rotate or narrow tokens and end sessions, and it can reach its own token.
So each request carries a personal access token this hook keeps valid: when the current one
stops working, it mints another with the bootstrap admin's token, which the fuzzer never sees
(and whose id it cannot guess).
"""

import json
import os
import urllib.error
import urllib.request

import schemathesis

API = os.environ["FUZZ_API"]
MINT_TOKEN = os.environ["FUZZ_MINT_TOKEN"]
# Whom the run acts as: the platform admin, or a team's member (so authorization is fuzzed).
SCOPES = [s for s in os.environ.get("FUZZ_SCOPES", "admin:all").split(",") if s]


def call(method, path, body=None, headers=None):
    request = urllib.request.Request(
        API + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None


def mint():
    status, made = call(
        "POST",
        "/api/v1/tokens",
        {"name": "fuzz", "scopes": SCOPES},
        {"authorization": f"Bearer {MINT_TOKEN}"},
    )
    if status != 201:
        raise RuntimeError(f"the bootstrap admin could not mint a {SCOPES} token: {status}")
    return made["token"]


@schemathesis.auth(refresh_interval=1)
class KeptToken:
    token = None

    def get(self, case, ctx):
        if KeptToken.token is not None:
            status, _ = call(
                "GET", "/api/v1/tokens?limit=1", headers={"authorization": f"Bearer {KeptToken.token}"}
            )
            if status == 200:
                return KeptToken.token
        KeptToken.token = mint()
        return KeptToken.token

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
