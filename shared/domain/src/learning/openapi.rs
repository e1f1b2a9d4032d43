//! Learned endpoints → an OpenAPI 3.1.0 document, shaped so Flowplane's own importer
//! ([`crate::api_definition::openapi`]) can turn it back into an API definition: the importer
//! needs an absolute `servers[0].url` for the upstream, a title to name the definition after,
//! and `{name}` parameters that fill whole segments (which [`template`](super::template)
//! guarantees).

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value, json};

use super::endpoint::{LearnedEndpoint, merge_into};

/// The methods OpenAPI has operations for. Others (`CONNECT`, WebDAV's `PROPFIND`…) cannot be
/// described and are left out.
const OPERATIONS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Used when the caller's title is blank: the importer names the definition after the title.
const DEFAULT_TITLE: &str = "Learned API";

/// The OpenAPI 3.1.0 document of `endpoints`. Endpoints with the same (method, path) are
/// merged first. Without `server_url` the document has no `servers`, and importing it needs
/// `x-flowplane-upstream` added by hand.
pub fn openapi_document(
    title: &str,
    server_url: Option<&str>,
    endpoints: &[LearnedEndpoint],
) -> Value {
    let mut merged = BTreeMap::new();
    for endpoint in endpoints {
        merge_into(&mut merged, endpoint.clone());
    }
    let mut by_path: BTreeMap<&str, Vec<&LearnedEndpoint>> = BTreeMap::new();
    for endpoint in merged.values() {
        by_path.entry(&endpoint.path).or_default().push(endpoint);
    }

    let mut operation_ids = HashSet::new();
    let mut paths = Map::new();
    for (path, endpoints) in by_path {
        let mut item = Map::new();
        for endpoint in endpoints {
            let method = endpoint.method.to_ascii_lowercase();
            if !OPERATIONS.contains(&method.as_str()) {
                continue;
            }
            let id = unique(operation_id(&method, path), &mut operation_ids);
            item.insert(method, operation(endpoint, id));
        }
        if item.is_empty() {
            continue;
        }
        paths.insert(path.to_string(), Value::Object(item));
    }

    let title = if title.trim().is_empty() {
        DEFAULT_TITLE
    } else {
        title
    };
    let mut document = Map::new();
    document.insert("openapi".into(), json!("3.1.0"));
    document.insert("info".into(), json!({"title": title, "version": "learned"}));
    if let Some(url) = server_url {
        document.insert("servers".into(), json!([{ "url": url }]));
    }
    document.insert("paths".into(), Value::Object(paths));
    Value::Object(document)
}

fn operation(endpoint: &LearnedEndpoint, operation_id: String) -> Value {
    let mut operation = Map::new();
    operation.insert("operationId".into(), json!(operation_id));
    // Per operation: each method saw its own values.
    let parameters = endpoint.parameters();
    if !parameters.is_empty() {
        operation.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(shape) = &endpoint.request_body {
        operation.insert(
            "requestBody".into(),
            json!({
                // Required only when every request seen carried a JSON body.
                "required": shape.samples() >= endpoint.samples,
                "content": {"application/json": {"schema": shape.to_json_schema()}}
            }),
        );
    }
    // A status outside 100-599 (Envoy logs 0 when no response was sent) is not a response
    // OpenAPI can describe.
    let responses: Map<String, Value> = endpoint
        .responses
        .iter()
        .filter(|(status, _)| (100..=599).contains(*status))
        .map(|(status, response)| {
            let mut described = Map::new();
            described.insert("description".into(), json!(reason(*status)));
            if let Some(body) = &response.body {
                described.insert(
                    "content".into(),
                    json!({"application/json": {"schema": body.to_json_schema()}}),
                );
            }
            (status.to_string(), Value::Object(described))
        })
        .collect();
    // OpenAPI 3.1 lets an operation omit `responses`, but not list none.
    if !responses.is_empty() {
        operation.insert("responses".into(), Value::Object(responses));
    }
    operation.insert("x-flowplane-samples".into(), json!(endpoint.samples));
    Value::Object(operation)
}

/// `get` + `/users/{userId}` → `getUsersUserId`; `get` + `/` → `getRoot`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_string();
    for word in path
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            id.push(first.to_ascii_uppercase());
            id.push_str(chars.as_str());
        }
    }
    if id == method {
        id.push_str("Root");
    }
    id
}

/// `base`, or `base2`, `base3`… when the document already has that operation id (`/a-b` and
/// `/aB` read the same).
fn unique(base: String, taken: &mut HashSet<String>) -> String {
    let mut id = base.clone();
    let mut n = 2;
    while !taken.insert(id.clone()) {
        id = format!("{base}{n}");
        n += 1;
    }
    id
}

/// The status code's reason phrase (RFC 9110), or `Response` for codes without one.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Response",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::api_definition::openapi::{ImportOptions, parse_document, to_definition};
    use crate::learning::endpoint::Observation;
    use crate::route_config::PathMatchType;

    fn endpoints() -> Vec<LearnedEndpoint> {
        let exchange = |method: &str,
                        path: &str,
                        status: u16,
                        request: Option<Value>,
                        response: Option<Value>| {
            LearnedEndpoint::from_observation(&Observation {
                method: method.into(),
                path: path.into(),
                status,
                request_body: request,
                response_body: response,
            })
        };
        vec![
            exchange(
                "GET",
                "/users/1",
                200,
                None,
                Some(json!({"id": 1, "email": "a@example.com"})),
            ),
            exchange(
                "GET",
                "/users/2",
                404,
                None,
                Some(json!({"error": "not found"})),
            ),
            exchange("GET", "/users", 200, None, Some(json!([{"id": 1}]))),
            exchange(
                "POST",
                "/users",
                201,
                Some(json!({"name": "a"})),
                Some(json!({"id": 3})),
            ),
            exchange("POST", "/users", 400, None, None),
            exchange("DELETE", "/users/1/orders/9", 204, None, None),
            exchange("GET", "/", 200, None, None),
            exchange("PROPFIND", "/users", 207, None, None),
            exchange("GET", "/users/3", 0, None, None),
        ]
    }

    #[test]
    fn the_document_describes_each_learned_operation() {
        let doc = openapi_document(
            "Users API",
            Some("http://users.internal:8080"),
            &endpoints(),
        );
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(
            doc["info"],
            json!({"title": "Users API", "version": "learned"})
        );
        assert_eq!(
            doc["servers"],
            json!([{"url": "http://users.internal:8080"}])
        );
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(
            paths.keys().collect::<Vec<_>>(),
            [
                "/",
                "/users",
                "/users/{userId}",
                "/users/{userId}/orders/{orderId}"
            ]
        );

        let get_user = &doc["paths"]["/users/{userId}"]["get"];
        assert_eq!(get_user["operationId"], "getUsersUserId");
        assert_eq!(get_user["x-flowplane-samples"], 3);
        assert_eq!(get_user["responses"]["200"]["description"], "OK");
        assert_eq!(
            get_user["responses"]["200"]["content"]["application/json"]["schema"],
            json!({
                "type": "object",
                "properties": {"email": {"type": "string", "format": "email"}, "id": {"type": "integer"}},
                "required": ["email", "id"]
            })
        );
        assert_eq!(get_user["responses"]["404"]["description"], "Not Found");
        assert!(
            get_user["responses"].get("0").is_none(),
            "status 0 is no response"
        );
        assert!(get_user.get("requestBody").is_none());
        // Typed from the values seen: ids were integers.
        assert_eq!(
            get_user["parameters"],
            json!([{"name": "userId", "in": "path", "required": true, "schema": {"type": "integer"}}])
        );
        assert_eq!(
            doc["paths"]["/users/{userId}/orders/{orderId}"]["delete"]["parameters"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );

        let create = &doc["paths"]["/users"]["post"];
        assert_eq!(create["operationId"], "postUsers");
        assert_eq!(
            create["requestBody"],
            json!({
                "required": false,
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}},
                    "required": ["name"]
                }}}
            })
        );
        assert_eq!(
            create["responses"]["400"],
            json!({"description": "Bad Request"})
        );
        assert!(doc["paths"]["/users"].get("propfind").is_none());
        assert_eq!(doc["paths"]["/"]["get"]["operationId"], "getRoot");
    }

    #[test]
    fn operation_ids_are_unique_and_the_output_is_deterministic() {
        let a = LearnedEndpoint::from_observation(&Observation {
            method: "GET".into(),
            path: "/a-b".into(),
            status: 200,
            ..Observation::default()
        });
        let b = LearnedEndpoint {
            path: "/aB".into(),
            ..a.clone()
        };
        let doc = openapi_document("t", None, &[b.clone(), a.clone()]);
        assert_eq!(doc["paths"]["/a-b"]["get"]["operationId"], "getAB");
        assert_eq!(doc["paths"]["/aB"]["get"]["operationId"], "getAB2");
        assert!(doc.get("servers").is_none());
        assert_eq!(doc, openapi_document("t", None, &[a, b]));
    }

    #[test]
    fn duplicate_endpoints_are_merged_and_a_blank_title_gets_a_default() {
        let mut list = endpoints();
        list.extend(endpoints());
        let doc = openapi_document(" ", None, &list);
        assert_eq!(doc["info"]["title"], DEFAULT_TITLE);
        assert_eq!(
            doc["paths"]["/users/{userId}"]["get"]["x-flowplane-samples"],
            6
        );
    }

    #[test]
    fn flowplane_imports_the_export_as_routes_for_the_learned_paths() {
        let doc = openapi_document(
            "Users API",
            Some("http://users.internal:8080/api"),
            &endpoints(),
        );
        let text = serde_json::to_string(&doc).unwrap();
        let (name, spec) = parse_document(&text)
            .and_then(|doc| to_definition(&doc, &ImportOptions::default()))
            .unwrap_or_else(|e| panic!("{:?}", e.into_errors()));
        assert_eq!(name, "users-api");
        let routes: Vec<(String, PathMatchType, String)> = spec
            .routes
            .iter()
            .map(|r| (r.methods.join(","), r.match_type, r.path.clone()))
            .collect();
        assert_eq!(
            routes,
            [
                ("GET".into(), PathMatchType::Exact, "/api/".into()),
                ("GET".into(), PathMatchType::Exact, "/api/users".into()),
                ("POST".into(), PathMatchType::Exact, "/api/users".into()),
                (
                    "GET".into(),
                    PathMatchType::Template,
                    "/api/users/{userId}".into()
                ),
                (
                    "DELETE".into(),
                    PathMatchType::Template,
                    "/api/users/{userId}/orders/{orderId}".into()
                ),
            ]
        );
        assert!(
            spec.routes
                .iter()
                .all(|r| r.upstream == "http://users.internal:8080")
        );
        assert_eq!(spec.routes[0].name.as_deref(), Some("getroot"));
    }
}
