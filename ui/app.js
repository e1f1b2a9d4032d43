// Flowplane's web UI: a thin client of the same REST API the CLI uses (/api/v1), signed in
// with a session (HttpOnly cookie + CSRF token). No build step and no dependencies; every
// value from the API reaches the page as text (never as HTML).

const KINDS = [
  { path: "clusters", label: "Clusters", singular: "cluster",
    template: { name: "my-cluster", endpoints: [{ host: "127.0.0.1", port: 8080 }] } },
  { path: "route-configs", label: "Route configs", singular: "route config",
    template: { name: "my-routes", virtualHosts: [{ name: "all", domains: ["*"], routes: [
      { match: { path: { type: "prefix", value: "/" } }, action: { type: "forward", cluster: "my-cluster" } }] }] } },
  { path: "listeners", label: "Listeners", singular: "listener",
    template: { name: "my-listener", address: "0.0.0.0", port: 10000, dataplaneId: "", protocol: "HTTP",
      filterChains: [{ name: "default", filters: [{ name: "envoy.filters.network.http_connection_manager",
        type: "httpConnectionManager", routeConfigName: "my-routes", httpFilters: [{ filter: { type: "router" } }] }] }] } },
  { path: "secrets", label: "Secrets", singular: "secret",
    template: { name: "my-secret", type: "genericSecret", secret: "" } },
  { path: "dataplanes", label: "Dataplanes", singular: "dataplane",
    template: { name: "edge", description: "" } },
  { path: "api-definitions", label: "API definitions", singular: "API definition",
    template: { name: "my-api", domain: "api.example.com", listenerIsolation: "shared", routes: [
      { name: "all", path: "/", matchType: "prefix", upstream: "http://127.0.0.1:8080" }] } },
  { path: "learning-sessions", label: "Learning sessions", singular: "learning session",
    template: { name: "my-session", listener: "my-listener", pathPrefix: "/", state: "active" } },
];

/// Envelope fields the server owns: shown, never sent back.
const SERVER_FIELDS = ["id", "revision", "createdAt", "updatedAt", "status"];

const app = document.getElementById("app");
const state = { session: null, team: sessionStorage.getItem("flowplane.team") || "" };

// --- the API ---------------------------------------------------------------------------

async function api(method, path, body, extraHeaders = {}) {
  const headers = { accept: "application/json", ...extraHeaders };
  if (method !== "GET") {
    headers["x-csrf-token"] = sessionStorage.getItem("flowplane.csrf") || "";
  }
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  return { status: response.status, ok: response.ok, json, headers: response.headers };
}

// --- small DOM helpers -----------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "on") for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (value !== undefined && value !== null) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function problemBox(reply) {
  const problem = reply.json || {};
  const errors = Array.isArray(problem.errors) ? problem.errors : [];
  return el("div", { class: "problem", role: "alert", "data-testid": "problem" },
    el("strong", {}, problem.title || `HTTP ${reply.status}`),
    problem.detail && problem.detail.toLowerCase() !== (problem.title || "").toLowerCase()
      ? el("div", {}, problem.detail) : null,
    errors.length ? el("ul", {}, errors.map((e) => el("li", {}, el("code", {}, e.field || "/"), " ", e.message))) : null);
}

function go(hash) { location.hash = hash; }

// --- views -----------------------------------------------------------------------------

function loginView(message) {
  const email = el("input", { type: "email", name: "email", autocomplete: "username", required: "" });
  const password = el("input", { type: "password", name: "password", autocomplete: "current-password", required: "" });
  const feedback = el("div");
  const form = el("form", { class: "login", on: { submit: async (event) => {
    event.preventDefault();
    const reply = await api("POST", "/api/v1/auth/login", { email: email.value, password: password.value });
    if (!reply.ok) { feedback.replaceChildren(problemBox(reply)); return; }
    sessionStorage.setItem("flowplane.csrf", reply.json.csrfToken);
    await start();
  } } },
  el("h1", {}, "Sign in to Flowplane"),
  message ? el("div", { class: "notice" }, message) : null,
  el("label", {}, "Email", email),
  el("label", {}, "Password", password),
  el("button", { class: "primary", type: "submit" }, "Sign in"),
  feedback);
  app.replaceChildren(form);
}

function layout(active, content) {
  const session = state.session;
  const teams = session.teams || [];
  const teamPicker = teams.length
    ? el("select", { "aria-label": "Team", on: { change: (e) => { setTeam(e.target.value); route(); } } },
        teams.map((t) => el("option", t === state.team ? { value: t, selected: "" } : { value: t }, t)))
    : el("input", { "aria-label": "Team", placeholder: "team", value: state.team,
        on: { change: (e) => { setTeam(e.target.value.trim()); route(); } } });
  const logout = el("button", { on: { click: async () => {
    await api("POST", "/api/v1/auth/logout", {});
    sessionStorage.removeItem("flowplane.csrf");
    state.session = null;
    loginView("Signed out.");
  } } }, "Sign out");
  const nav = el("nav", {},
    KINDS.map((k) => el("a", { href: `#/${k.path}`, class: active === k.path ? "active" : "" }, k.label)),
    el("a", { href: "#/route-flows", class: active === "route-flows" ? "active" : "" }, "Route flows"),
    el("a", { href: "#/usage", class: active === "usage" ? "active" : "" }, "Usage"),
    el("a", { href: "#/tokens", class: active === "tokens" ? "active" : "" }, "Tokens"),
    el("a", { href: "#/audit", class: active === "audit" ? "active" : "" }, "Audit log"));
  app.replaceChildren(
    el("header", {}, el("span", { class: "brand" }, "Flowplane"), el("span", { class: "muted" }, "team"), teamPicker,
      el("span", { class: "spacer" }), el("span", { class: "muted" }, session.user.email), logout),
    el("main", {}, nav, el("section", {}, content)));
}

function setTeam(team) {
  state.team = team;
  sessionStorage.setItem("flowplane.team", team);
}

function statusCell(item) {
  const status = Array.isArray(item.status) ? item.status : [];
  if (!status.length) return el("td", { class: "muted" }, "not pushed yet");
  return el("td", {}, status.map((s) => el("div", { class: `state-${s.state}`, title: s.error || "" },
    `${s.dataplane}: ${s.state}`, s.error ? ` (${s.error})` : "")));
}

async function listView(kind) {
  if (!state.team) { layout(kind.path, el("p", { class: "muted" }, "Choose a team first.")); return; }
  const reply = await api("GET", `/api/v1/teams/${encodeURIComponent(state.team)}/${kind.path}?limit=500`);
  const body = reply.ok
    ? (reply.json.items.length
        ? el("table", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Revision"), el("th", {}, "Envoy status"), el("th", {}, "Updated")),
            reply.json.items.map((item) => el("tr", {},
              el("td", {}, el("a", { href: `#/${kind.path}/${encodeURIComponent(item.name)}` }, item.name)),
              el("td", {}, item.revision ?? ""), statusCell(item), el("td", { class: "muted" }, item.updatedAt || ""))))
        : el("p", { class: "muted" }, `No ${kind.label.toLowerCase()} in ${state.team} yet.`))
    : problemBox(reply);
  layout(kind.path, [
    el("h1", {}, kind.label),
    el("div", { class: "toolbar" }, el("a", { class: "button", href: `#/${kind.path}/new` }, `New ${kind.singular}`)),
    body]);
}

async function editView(kind, name) {
  const creating = name === undefined;
  const base = `/api/v1/teams/${encodeURIComponent(state.team)}/${kind.path}`;
  let etag = null;
  let document = { team: state.team, ...kind.template };
  if (creating && kind.path === "listeners") {
    // A listener is bound to a dataplane by id: start from the team's first one.
    const dataplanes = await api("GET", `/api/v1/teams/${encodeURIComponent(state.team)}/dataplanes?limit=1`);
    const first = dataplanes.ok && dataplanes.json.items[0];
    if (first) document.dataplaneId = first.id;
  }
  let current = null;
  if (!creating) {
    const reply = await api("GET", `${base}/${encodeURIComponent(name)}`);
    if (!reply.ok) { layout(kind.path, [el("h1", {}, name), problemBox(reply)]); return; }
    current = reply.json;
    etag = reply.headers.get("etag");
    document = Object.fromEntries(Object.entries(current).filter(([k]) => !SERVER_FIELDS.includes(k)));
  }
  const editor = el("textarea", { "aria-label": "Resource JSON", spellcheck: "false" }, JSON.stringify(document, null, 2));
  const feedback = el("div");
  const save = el("button", { class: "primary", on: { click: async () => {
    let parsed;
    try { parsed = JSON.parse(editor.value); } catch (e) {
      feedback.replaceChildren(el("div", { class: "problem", role: "alert", "data-testid": "problem" }, `Not JSON: ${e.message}`));
      return;
    }
    const reply = creating
      ? await api("POST", base, parsed)
      : await api("PUT", `${base}/${encodeURIComponent(name)}`, parsed, etag ? { "if-match": etag } : {});
    if (!reply.ok) { feedback.replaceChildren(problemBox(reply)); return; }
    go(`#/${kind.path}/${encodeURIComponent(reply.json.name || parsed.name)}`);
    if (!creating) route();
  } } }, creating ? "Create" : "Save");
  const remove = creating ? null : el("button", { class: "danger", on: { click: async () => {
    if (!confirm(`Delete ${name}?`)) return;
    const reply = await api("DELETE", `${base}/${encodeURIComponent(name)}`, undefined, etag ? { "if-match": etag } : {});
    if (!reply.ok) { feedback.replaceChildren(problemBox(reply)); return; }
    go(`#/${kind.path}`);
  } } }, "Delete");
  const bootstrap = kind.path === "dataplanes" && !creating
    ? el("a", { class: "button", href: `${base}/${encodeURIComponent(name)}/envoy-config`, download: `${name}-envoy.yaml` }, "Download Envoy bootstrap")
    : null;
  const learned = kind.path === "learning-sessions" && !creating
    ? await learningPanel(`${base}/${encodeURIComponent(name)}`, current, feedback)
    : null;
  layout(kind.path, [
    el("h1", {}, creating ? `New ${kind.singular}` : name),
    current ? el("p", { class: "muted" }, `Revision ${current.revision} · updated ${current.updatedAt}`) : null,
    current ? el("table", {}, el("tr", {}, el("th", {}, "Envoy status")), el("tr", {}, statusCell(current))) : null,
    el("div", { class: "toolbar" }, save, remove, bootstrap, el("a", { href: `#/${kind.path}` }, "Back")),
    feedback, learned, editor]);
}

/// A learning session's state with its activate/stop action, what it learned so far, and the
/// learned API as an OpenAPI download.
async function learningPanel(path, session, feedback) {
  const action = session.state === "active" ? "stop" : "activate";
  const toggle = el("button", { class: "primary", on: { click: async () => {
    const reply = await api("POST", `${path}/${action}`);
    if (!reply.ok) { feedback.replaceChildren(problemBox(reply)); return; }
    route();
  } } }, action === "stop" ? "Stop learning" : "Start learning");
  const reply = await api("GET", `${path}/endpoints`);
  const endpoints = !reply.ok
    ? problemBox(reply)
    : reply.json.items.length
      ? el("table", {}, el("tr", {}, el("th", {}, "Method"), el("th", {}, "Path"), el("th", {}, "Samples"), el("th", {}, "Statuses")),
          reply.json.items.map((e) => el("tr", {}, el("td", {}, e.method), el("td", {}, e.path), el("td", {}, String(e.samples)),
            el("td", {}, e.responses.map((r) => `${r.status}×${r.samples}`).join(" ")))))
      : el("p", { class: "muted" }, "Nothing learned yet.");
  return el("section", { "aria-label": "Learning" },
    el("h2", {}, "Learning"),
    el("p", {}, `State: ${session.state} · listener ${session.listener} · paths under ${session.pathPrefix}`),
    el("div", { class: "toolbar" }, toggle,
      el("a", { class: "button", href: `${path}/openapi`, download: "learned-openapi.json" }, "Download OpenAPI")),
    endpoints);
}

/// Personal access tokens for the CLI, scripts and agents: list, create (the secret is shown
/// once), revoke.
async function tokensView(created) {
  const reply = await api("GET", "/api/v1/tokens?limit=500");
  const feedback = el("div");
  const name = el("input", { "aria-label": "Token name", placeholder: "ci-deploy", required: "" });
  const scopes = el("textarea", { "aria-label": "Token scopes", class: "short", spellcheck: "false" },
    state.team ? `team:${state.team}:clusters:read` : "");
  const create = el("button", { class: "primary", on: { click: async () => {
    const wanted = scopes.value.split(/\s+/).filter(Boolean);
    const answer = await api("POST", "/api/v1/tokens", { name: name.value.trim(), scopes: wanted });
    if (!answer.ok) { feedback.replaceChildren(problemBox(answer)); return; }
    tokensView(answer.json);
  } } }, "Create token");
  const revoke = (token) => el("button", { class: "danger", on: { click: async () => {
    if (!confirm(`Revoke ${token.name}?`)) return;
    const answer = await api("DELETE", `/api/v1/tokens/${encodeURIComponent(token.id)}`);
    if (!answer.ok) { feedback.replaceChildren(problemBox(answer)); return; }
    tokensView();
  } } }, "Revoke");
  layout("tokens", [
    el("h1", {}, "Tokens"),
    created ? el("div", { class: "notice", "data-testid": "new-token" },
      el("div", {}, `Token ${created.name} created. Copy it now: it is not shown again.`),
      el("code", { "data-testid": "secret" }, created.token)) : null,
    el("div", { class: "toolbar" }, name, create),
    el("label", { class: "muted" }, "Scopes, one per line", scopes),
    feedback,
    reply.ok
      ? el("table", {}, el("tr", {}, el("th", {}, "Name"), el("th", {}, "Scopes"), el("th", {}, "Status"),
            el("th", {}, "Expires"), el("th", {})),
          reply.json.items.map((t) => el("tr", {}, el("td", {}, t.name), el("td", {}, el("code", {}, t.scopes.join(" "))),
            el("td", {}, t.status), el("td", { class: "muted" }, t.expiresAt || "never"),
            el("td", {}, t.status === "active" ? revoke(t) : null))))
      : problemBox(reply)]);
}

async function auditView() {
  const reply = await api("GET", "/api/v1/audit-logs?limit=100");
  const rows = reply.ok ? reply.json.items : [];
  layout("audit", [
    el("h1", {}, "Audit log"),
    reply.ok
      ? el("table", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "Action"), el("th", {}, "Resource"), el("th", {}, "Actor")),
          rows.map((r) => el("tr", {}, el("td", { class: "muted" }, r.occurredAt || ""), el("td", {}, r.action || ""),
            el("td", {}, [r.team, r.resourceKind, r.resourceName].filter(Boolean).join(" / ")),
            el("td", {}, r.actorUserId ? `user ${r.actorUserId}` : r.actorTokenId ? `token ${r.actorTokenId}` : ""))))
      : problemBox(reply)]);
}

/// Where each of the team's listeners sends traffic: one row per route.
async function routeFlowsView() {
  if (!state.team) { layout("route-flows", el("p", { class: "muted" }, "Choose a team first.")); return; }
  const reply = await api("GET", `/api/v1/reports/route-flows?team=${encodeURIComponent(state.team)}`);
  const destinations = (row) => row.destinations.length
    ? row.destinations.map((d) => el("div", {}, `${d.cluster} ${d.percent}% → ${d.endpoints.join(", ") || "(no endpoints)"}`))
    : row.action;
  const body = !reply.ok
    ? problemBox(reply)
    : reply.json.items.length
      ? el("table", {}, el("tr", {}, el("th", {}, "Listener"), el("th", {}, "Port"), el("th", {}, "Domains"),
            el("th", {}, "Route"), el("th", {}, "Match"), el("th", {}, "Goes to")),
          reply.json.items.map((r) => el("tr", {}, el("td", {}, r.listener), el("td", {}, String(r.port)),
            el("td", {}, r.domains.join(", ")), el("td", {}, r.route),
            el("td", {}, `${(r.methods || []).join(",")} ${r.path.type} ${r.path.value}`.trim()),
            el("td", {}, destinations(r)))))
      : el("p", { class: "muted" }, `No routes on ${state.team}'s listeners yet.`);
  layout("route-flows", [el("h1", {}, "Route flows"), body]);
}

/// Requests each listener, route and cluster served in the last hour, busiest first.
async function usageView() {
  if (!state.team) { layout("usage", el("p", { class: "muted" }, "Choose a team first.")); return; }
  const reply = await api("GET", `/api/v1/reports/usage?team=${encodeURIComponent(state.team)}`);
  const body = !reply.ok
    ? problemBox(reply)
    : reply.json.items.length
      ? el("table", {}, el("tr", {}, el("th", {}, "Listener"), el("th", {}, "Route"), el("th", {}, "Cluster"),
            el("th", {}, "Requests"), el("th", {}, "Statuses"), el("th", {}, "Mean ms")),
          reply.json.items.map((r) => el("tr", {}, el("td", {}, r.listener), el("td", {}, r.route || "(no route)"),
            el("td", {}, r.cluster || "-"), el("td", {}, String(r.requests)),
            el("td", {}, Object.entries(r.statuses).map(([c, n]) => `${c}×${n}`).join(" ")),
            el("td", {}, String(r.meanDurationMs)))))
      : el("p", { class: "muted" }, "No requests in the last hour.");
  layout("usage", [el("h1", {}, "Usage"), body]);
}

// --- routing ---------------------------------------------------------------------------

async function route() {
  if (!state.session) return;
  const [, first, second] = (location.hash || "#/clusters").slice(1).split("/");
  if (first === "audit") return auditView();
  if (first === "tokens") return tokensView();
  if (first === "route-flows") return routeFlowsView();
  if (first === "usage") return usageView();
  const kind = KINDS.find((k) => k.path === first) || KINDS[0];
  if (second === "new") return editView(kind, undefined);
  if (second) return editView(kind, decodeURIComponent(second));
  return listView(kind);
}

async function start() {
  const reply = await api("GET", "/api/v1/auth/session");
  if (!reply.ok || reply.json.authMethod !== "session" || !sessionStorage.getItem("flowplane.csrf")) {
    return loginView();
  }
  state.session = reply.json;
  const teams = state.session.teams || [];
  if (!state.team || (teams.length && !teams.includes(state.team))) setTeam(teams[0] || "");
  route();
}

window.addEventListener("hashchange", route);
start();
