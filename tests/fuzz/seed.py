"""Seeds the fuzz run's team with one resource of each kind, all named `fuzz`.

Operations on a resource by name then reach an existing one (schemathesis.toml binds the
`name` path parameter to `fuzz` half of the time), rather than answering 404 for a generated
name almost always.
"""

import json
import os
import urllib.request

API = os.environ["FUZZ_API"]
TOKEN = os.environ["FUZZ_MINT_TOKEN"]
TEAM = os.environ["FUZZ_TEAM"]
PORT = int(os.environ["FUZZ_LISTENER_PORT"])


def post(path, body):
    request = urllib.request.Request(
        API + path,
        method="POST",
        data=json.dumps({"team": TEAM, "name": "fuzz", **body}).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


dataplane = post("/api/v1/dataplanes", {})
post("/api/v1/clusters", {"endpoints": [{"host": "127.0.0.1", "port": PORT}]})
post(
    "/api/v1/route-configs",
    {
        "virtualHosts": [
            {
                "name": "all",
                "domains": ["*"],
                "routes": [
                    {
                        "match": {"path": {"type": "prefix", "value": "/"}},
                        "action": {"type": "forward", "cluster": "fuzz"},
                    }
                ],
            }
        ]
    },
)
post(
    "/api/v1/listeners",
    {
        "address": "127.0.0.1",
        "port": PORT,
        "dataplaneId": dataplane["id"],
        "protocol": "HTTP",
        "filterChains": [
            {
                "name": "default",
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "type": "httpConnectionManager",
                        "routeConfigName": "fuzz",
                        "httpFilters": [{"filter": {"type": "router"}}],
                    }
                ],
            }
        ],
    },
)
post("/api/v1/secrets", {"type": "genericSecret", "secret": "fuzz-secret-value"})
post("/api/v1/learning-sessions", {"listener": "fuzz", "pathPrefix": "/"})
print("seeded team", TEAM)
