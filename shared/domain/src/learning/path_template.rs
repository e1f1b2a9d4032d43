//! Raw request paths → OpenAPI path templates: `/users/42/orders/7?x=1` →
//! `/users/{userId}/orders/{orderId}`.
//!
//! A segment is a parameter when it looks like an identifier a client could not have written
//! into its code: an integer, a UUID, a long hex string or a long opaque token. Everything else
//! is kept literally, so `/users/me` stays apart from `/users/{userId}`.

use super::shape::format::is_uuid;

/// Hex strings at least this long are identifiers (hashes, object ids), shorter ones may be
/// words (`cafe`, `added`).
const MIN_HEX_ID_LEN: usize = 16;

/// Tokens mixing letters and digits at least this long are identifiers (base64url keys,
/// slugs with ids); shorter ones are usually names (`v2`, `oauth2`, `h264`).
const MIN_OPAQUE_TOKEN_LEN: usize = 20;

/// Parameter names derived from a literal segment stay readable and bounded.
const MAX_NAME_BASE_LEN: usize = 48;

/// The template of a raw request path (with or without query string and fragment).
///
/// The path is normalized first: an empty path is `/`, repeated slashes collapse and a trailing
/// slash is dropped. A segment already in template form (`{name}`) stays a parameter, so
/// `template(template(p)) == template(p)`.
pub fn template(path: &str) -> String {
    let path = path.find(['?', '#']).map_or(path, |end| &path[..end]);
    let mut out = String::new();
    let mut names: Vec<String> = Vec::new();
    let mut previous_literal: Option<&str> = None;
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        let base = if let Some(name) = parameter_in(segment) {
            name.to_string()
        } else if is_variable(segment) {
            previous_literal.map_or_else(|| "id".to_string(), parameter_name)
        } else {
            out.push_str(&escape_braces(segment));
            previous_literal = Some(segment);
            continue;
        };
        let name = unique(base, &names);
        out.push('{');
        out.push_str(&name);
        out.push('}');
        names.push(name);
        previous_literal = None;
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The parameter names of a template, in path order.
pub fn parameters(template: &str) -> Vec<String> {
    template
        .split('/')
        .filter_map(parameter_in)
        .map(str::to_string)
        .collect()
}

/// `Some("userId")` for a `{userId}` segment.
pub(crate) fn parameter_in(segment: &str) -> Option<&str> {
    segment
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .filter(|name| {
            name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn is_variable(segment: &str) -> bool {
    let integer = segment.chars().all(|c| c.is_ascii_digit());
    let long_hex =
        segment.len() >= MIN_HEX_ID_LEN && segment.chars().all(|c| c.is_ascii_hexdigit());
    integer || long_hex || is_uuid(segment) || is_opaque_token(segment)
}

fn is_opaque_token(segment: &str) -> bool {
    segment.len() >= MIN_OPAQUE_TOKEN_LEN
        && segment.chars().any(|c| c.is_ascii_alphabetic())
        && segment.chars().any(|c| c.is_ascii_digit())
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~=".contains(c))
}

/// `orders` → `orderId`, `categories` → `categoryId`, `line-items` → `lineItemId`; `id` when
/// the segment has no usable word.
pub(crate) fn parameter_name(literal: &str) -> String {
    let words: Vec<&str> = literal
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let mut camel = String::new();
    for (i, word) in words.iter().enumerate() {
        let word = if i + 1 == words.len() {
            singular(word)
        } else {
            word.to_string()
        };
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            if i == 0 {
                camel.push(first.to_ascii_lowercase());
            } else {
                camel.push(first.to_ascii_uppercase());
            }
            camel.push_str(chars.as_str());
        }
    }
    camel.truncate(MAX_NAME_BASE_LEN);
    if !camel.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return "id".to_string();
    }
    camel.push_str("Id");
    camel
}

/// Naive English singular (`categories` → `category`, `orders` → `order`, but `status` and
/// `address` stay): enough for REST collection names, and a wrong guess only makes a name less
/// pretty.
fn singular(word: &str) -> String {
    if let Some(stem) = word.strip_suffix("ies").filter(|stem| !stem.is_empty()) {
        format!("{stem}y")
    } else if let Some(stem) = word
        .strip_suffix('s')
        .filter(|stem| !stem.is_empty() && !stem.ends_with(['s', 'u']))
    {
        stem.to_string()
    } else {
        word.to_string()
    }
}

/// `base`, or `base2`, `base3`… when a parameter of the path already has that name.
pub(crate) fn unique(base: String, taken: &[String]) -> String {
    if !taken.contains(&base) {
        return base;
    }
    let mut n = 2;
    loop {
        let name = format!("{base}{n}");
        if !taken.contains(&name) {
            return name;
        }
        n += 1;
    }
}

/// A literal `{` or `}` would read as a template parameter; percent-encoded it is the same
/// request path to a server.
fn escape_braces(segment: &str) -> String {
    segment.replace('{', "%7B").replace('}', "%7D")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_segments_become_parameters_named_after_their_collection() {
        let cases = [
            ("/users/42/orders/7", "/users/{userId}/orders/{orderId}"),
            ("/categories/3", "/categories/{categoryId}"),
            ("/line-items/3", "/line-items/{lineItemId}"),
            ("/status/3", "/status/{statusId}"),
            ("/address/3", "/address/{addressId}"),
            (
                "/users/6f1c7e1e-2a4b-4c1d-9a8e-0b5c2d7e9f10",
                "/users/{userId}",
            ),
            ("/blobs/0123456789abcdef0123", "/blobs/{blobId}"),
            ("/keys/Ab3dE5gH7jK9mN1pQ3sT5v", "/keys/{keyId}"),
            ("/42", "/{id}"),
            ("/users/1/2", "/users/{userId}/{id}"),
            ("/1/2/3", "/{id}/{id2}/{id3}"),
            ("/users/1/users/2", "/users/{userId}/users/{userId2}"),
        ];
        for (path, expected) in cases {
            assert_eq!(template(path), expected, "{path}");
        }
    }

    #[test]
    fn words_and_short_names_stay_literal() {
        for path in [
            "/users/me",
            "/v2/oauth2/token",
            "/cafe/added",
            "/deadbeef",
            "/getting-started-guide",
            "/files/report.pdf",
        ] {
            assert_eq!(template(path), path);
        }
    }

    #[test]
    fn paths_are_normalized() {
        assert_eq!(template(""), "/");
        assert_eq!(template("/"), "/");
        assert_eq!(template("?page=2"), "/");
        assert_eq!(template("//users///42/"), "/users/{userId}");
        assert_eq!(template("/users/42?expand=orders#top"), "/users/{userId}");
        assert_eq!(template("/search#frag?not-a-query"), "/search");
        assert_eq!(template("users/7"), "/users/{userId}");
    }

    #[test]
    fn braces_never_forge_parameters() {
        assert_eq!(template("/a{b}/c}"), "/a%7Bb%7D/c%7D");
        let learned = template("/users/42/orders/7");
        assert_eq!(template(&learned), learned, "templates are fixed points");
        assert_eq!(template("/{x}/1"), "/{x}/{id}");
        assert_eq!(template("/{id}/1"), "/{id}/{id2}");
    }

    #[test]
    fn parameters_are_listed_in_path_order() {
        assert_eq!(
            parameters("/users/{userId}/orders/{orderId}"),
            ["userId", "orderId"]
        );
        assert!(parameters("/users/me").is_empty());
    }
}
