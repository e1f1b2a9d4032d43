"""An AI agent's session with Flowplane's MCP server, driven by the official MCP Python SDK
(`mcp` on PyPI), which negotiates its own protocol version and checks every structured tool
result against the tool's output schema, as real agent hosts do.

Run by tests/e2e/tests/mcp.rs with MCP_URL, TOKEN (mcp:write and the team's resource scopes),
READ_ONLY_TOKEN (mcp:read only), TEAM and OTHER_TEAM. Exits non-zero with the reason on the
first thing that is not as an agent needs it; prints one line per step that held.
"""

import asyncio
import os
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client

URL = os.environ["MCP_URL"]
TEAM = os.environ["TEAM"]
OTHER = os.environ["OTHER_TEAM"]

SPEC = """openapi: 3.0.3
info: {title: Pets, version: '1'}
servers: [{url: 'http://127.0.0.1:9'}]
paths:
  /pets:
    get:
      responses: {'200': {description: ok}}
"""

PROMPTS = {
    "expose-upstream": {"team": TEAM, "upstream": "http://10.0.0.5:8080", "path": "/api"},
    "import-openapi-spec": {"team": TEAM, "spec": "https://example.com/openapi.yaml"},
    "diagnose-failing-route": {"team": TEAM, "request": "GET /users/42 answers 404"},
    "diagnose-rejected-config": {"team": TEAM},
    "learn-api": {"team": TEAM, "listener": "edge"},
    "rotate-certificate": {"team": TEAM, "secret": "edge-cert"},
    "review-team-security": {"team": TEAM},
}


def check(condition, what):
    if not condition:
        sys.exit(f"FAILED: {what}")
    print(f"ok: {what}")


async def connect(token):
    return streamablehttp_client(URL, headers={"Authorization": f"Bearer {token}"})


async def agent():
    async with await connect(os.environ["TOKEN"]) as (read, write, _):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            check(init.serverInfo.name == "flowplane", f"server {init.serverInfo.name}")
            check(init.protocolVersion == "2025-11-25", f"protocol {init.protocolVersion}")

            tools = {t.name: t for t in (await session.list_tools()).tools}
            check(len(tools) >= 60, f"{len(tools)} tools")
            for name in [
                "list_clusters", "get_cluster", "create_cluster", "update_cluster",
                "delete_cluster", "list_route_configs", "create_listener", "list_secrets",
                "create_dataplane", "get_dataplane_envoy_config", "list_api_definitions",
                "import_openapi", "expose", "list_learning_sessions",
                "activate_learning_session", "export_learned_openapi", "get_route_flows",
                "get_usage", "trace_request", "validate_team", "preflight_change", "get_delivery", "get_topology", "list_filter_types",
                "get_filter_type", "list_tokens", "create_token", "list_audit_logs",
                "list_teams", "list_members", "get_session",
            ]:
                check(name in tools, f"tool {name}")
            for tool in tools.values():
                hints = tool.annotations
                check(hints is not None and hints.readOnlyHint is not None,
                      f"{tool.name} carries hints")
            check(tools["list_clusters"].annotations.readOnlyHint is True, "list is read-only")
            check(tools["delete_cluster"].annotations.destructiveHint is True,
                  "delete is destructive")
            check(tools["trace_request"].annotations.readOnlyHint is True, "trace only reads")
            check(tools["list_clusters"].outputSchema["type"] == "object",
                  "list has an output schema")
            check("body" in tools["create_cluster"].inputSchema["required"],
                  "create takes the cluster as body")

            # Write, read back, page: each structured result is checked by the SDK against
            # the tool's output schema.
            for n in range(3):
                made = await session.call_tool("create_cluster", {"team": TEAM, "body": {
                    "name": f"py-{n}", "endpoints": [{"host": "127.0.0.1", "port": 8080 + n}]}})
                check(not made.isError and made.structuredContent["name"] == f"py-{n}",
                      f"create_cluster py-{n}: {made.content[0].text[:200]}")
            first = await session.call_tool("list_clusters", {"team": TEAM, "limit": 2})
            page = first.structuredContent
            check(not first.isError and len(page["items"]) == 2 and page["nextCursor"],
                  "first page of two, with a cursor")
            rest = await session.call_tool(
                "list_clusters", {"team": TEAM, "limit": 2, "cursor": page["nextCursor"]})
            names = [c["name"] for c in page["items"] + rest.structuredContent["items"]]
            check(sorted(names) == ["py-0", "py-1", "py-2"], f"pages hold {names}")

            got = (await session.call_tool("get_cluster", {"team": TEAM, "name": "py-1"}))
            revision = got.structuredContent["revision"]
            stale = await session.call_tool("update_cluster", {
                "team": TEAM, "name": "py-1", "If-Match": f'"{revision - 1}"',
                "body": {"endpoints": [{"host": "127.0.0.1", "port": 9000}]}})
            check(stale.isError and stale.structuredContent["status"] == 412,
                  f"a stale If-Match is a conflict: {stale.content[0].text[:200]}")
            fresh = await session.call_tool("update_cluster", {
                "team": TEAM, "name": "py-1", "If-Match": f'"{revision}"',
                "body": {"endpoints": [{"host": "127.0.0.1", "port": 9000}]}})
            check(not fresh.isError
                  and fresh.structuredContent["endpoints"][0]["port"] == 9000,
                  "the current If-Match updates")

            bad = await session.call_tool("create_cluster", {"team": TEAM, "body": {
                "name": "py-bad", "endpoints": [{"host": "127.0.0.1", "port": 70000}]}})
            check(bad.isError and "/endpoints/0/port" in bad.content[0].text,
                  "a bad port names its field")
            foreign = await session.call_tool("list_clusters", {"team": OTHER})
            check(foreign.isError and foreign.structuredContent["status"] == 403,
                  "another team's tools take that team's mcp:write")

            plan = await session.call_tool("import_openapi", {
                "team": TEAM, "dryRun": True, "name": "pets", "body": SPEC})
            check(not plan.isError and plan.structuredContent["dryRun"] is True,
                  f"import dry run: {plan.content[0].text[:300]}")
            none = await session.call_tool("list_api_definitions", {"team": TEAM})
            check(none.structuredContent["items"] == [], "a dry run writes nothing")

            catalog = await session.call_tool("list_filter_types", {})
            check(not catalog.isError, "filter-type catalog")
            findings = await session.call_tool("validate_team", {"team": TEAM})
            check(not findings.isError and any(
                f["code"] == "unreferencedCluster" and f["name"] == "py-0"
                for f in findings.structuredContent["items"]),
                  f"validate_team: {findings.content[0].text[:300]}")
            tried = await session.call_tool("preflight_change", {"team": TEAM, "body": {
                "kind": "clusters", "name": "py-0"}})
            check(not tried.isError and tried.structuredContent["accepted"] is True
                  and any(f["name"] == "py-0" for f in tried.structuredContent["resolved"]),
                  f"preflight a delete: {tried.content[0].text[:300]}")
            flows = await session.call_tool("get_route_flows", {"team": TEAM})
            check(not flows.isError, "get_route_flows")
            me = await session.call_tool("get_session", {})
            check(not me.isError and me.structuredContent["authMethod"] == "token", "get_session")

            prompts = {p.name for p in (await session.list_prompts()).prompts}
            check(prompts == set(PROMPTS), f"prompts {sorted(prompts)}")
            for name, arguments in PROMPTS.items():
                prompt = await session.get_prompt(name, arguments)
                text = prompt.messages[0].content.text
                check(TEAM in text, f"prompt {name}")
                for word in text.replace("`", " ").split():
                    if "_" in word and word.islower() and word.isidentifier() \
                            and word not in ("pathprefix",):
                        check(word in tools, f"prompt {name} names tool {word}")

            read = await session.read_resource(f"flowplane://teams/{TEAM}/clusters/py-2")
            check('"py-2"' in read.contents[0].text, "a cluster as a resource")

            for n in range(3):
                gone = await session.call_tool("delete_cluster", {"team": TEAM, "name": f"py-{n}"})
                check(not gone.isError, f"delete py-{n}")


async def read_only_agent():
    async with await connect(os.environ["READ_ONLY_TOKEN"]) as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            check(len(tools) >= 60, "mcp:read lists the tools")
            refused = await session.call_tool("list_clusters", {"team": TEAM})
            check(refused.isError and refused.structuredContent["status"] == 403
                  and "mcp:write" in refused.structuredContent["detail"],
                  "mcp:read cannot call tools")


asyncio.run(agent())
asyncio.run(read_only_agent())
print("agent done")
