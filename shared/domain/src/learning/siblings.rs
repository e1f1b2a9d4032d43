//! Path templates from the evidence across sibling paths.
//!
//! [`template`](super::template) decides one path at a time, so it keeps words, slugs and
//! short tokens literal (`/anything/bravo-echo`, `/basic-auth/alice/s3cret`). Across a
//! session's endpoints there is more evidence: paths of one method that agree up to a segment,
//! have the same length, and differ at that segment in at least [`MIN_SIBLINGS`] values whose
//! exchanges [resemble](LearnedEndpoint::resembles) each other are instances of one template,
//! and are merged into it. A literal beside an existing template joins it on the same
//! evidence, so no concrete instance is left beside its template. A literal seen far more often
//! than its siblings (`/users/me` among ids) is kept: clients write it into their code. The
//! first segment is never generalized (`/get`, `/ip` and `/headers` are operations, not
//! values). No IO; the result depends only on the endpoints, not their order.

use std::collections::{BTreeMap, BTreeSet};

use super::endpoint::{LearnedEndpoint, merge_into, segment_value};
use super::path_template::{parameter_in, parameter_name, unique};
use super::shape::Shape;

/// Distinct literal values at one position before they are taken for a parameter.
pub const MIN_SIBLINGS: usize = 3;

/// A literal seen more than this many times its siblings' median is kept literal.
pub const FREQUENT: u64 = 4;

/// The endpoints with sibling instances merged into templates, ordered by (method, path).
pub fn generalize(endpoints: Vec<LearnedEndpoint>) -> Vec<LearnedEndpoint> {
    let deepest = endpoints
        .iter()
        .map(|e| segments(&e.path).len())
        .max()
        .unwrap_or(0);
    let mut current = endpoints;
    for position in 1..deepest {
        current = generalize_at(current, position);
    }
    current
}

fn segments(path: &str) -> Vec<&str> {
    path.split('/').filter(|s| !s.is_empty()).collect()
}

/// One pass at segment `position`: groups of endpoints with the same method, length and
/// segments before `position`; in each, the literals that are instances become the group's
/// parameter.
fn generalize_at(endpoints: Vec<LearnedEndpoint>, position: usize) -> Vec<LearnedEndpoint> {
    let mut groups: BTreeMap<(&str, usize, Vec<&str>), Vec<usize>> = BTreeMap::new();
    for (k, e) in endpoints.iter().enumerate() {
        let parts = segments(&e.path);
        if parts.len() > position {
            groups
                .entry((e.method.as_str(), parts.len(), parts[..position].to_vec()))
                .or_default()
                .push(k);
        }
    }
    let mut renamed: BTreeMap<usize, String> = BTreeMap::new();
    for members in groups.values() {
        let at = |k: usize| segments(&endpoints[k].path)[position];
        let template = members
            .iter()
            .copied()
            .find(|&k| parameter_in(at(k)).is_some());
        let literals: Vec<usize> = members
            .iter()
            .copied()
            .filter(|&k| parameter_in(at(k)).is_none())
            .collect();
        let mut per_value: BTreeMap<&str, u64> = BTreeMap::new();
        for &k in &literals {
            *per_value.entry(at(k)).or_default() += endpoints[k].samples;
        }
        if per_value.is_empty() || (template.is_none() && per_value.len() < MIN_SIBLINGS) {
            continue;
        }
        // The typical value's samples (the lower median), the template counted as one value.
        let mut counts: Vec<u64> = per_value.values().copied().collect();
        counts.extend(template.map(|t| endpoints[t].samples));
        counts.sort_unstable();
        let median = counts[(counts.len() - 1) / 2].max(1);
        // Instances resemble the template, or (with none yet) most of their siblings.
        let instance = |k: usize| {
            let e = &endpoints[k];
            let typical = match template {
                Some(t) => e.resembles(&endpoints[t]),
                None => {
                    let alike = literals
                        .iter()
                        .filter(|&&o| o != k && at(o) != at(k) && e.resembles(&endpoints[o]))
                        .count();
                    alike + 1 >= MIN_SIBLINGS.min(literals.len())
                }
            };
            typical && per_value[at(k)] <= FREQUENT.saturating_mul(median)
        };
        let chosen: Vec<usize> = literals.iter().copied().filter(|&k| instance(k)).collect();
        let values: BTreeSet<&str> = chosen.iter().map(|&k| at(k)).collect();
        if values.is_empty() || (template.is_none() && values.len() < MIN_SIBLINGS) {
            continue;
        }
        for k in chosen {
            let parts = segments(&endpoints[k].path);
            let name = match template {
                Some(t) => parameter_in(at(t)).unwrap_or("id").to_string(),
                None => {
                    let taken: Vec<String> = parts[..position]
                        .iter()
                        .filter_map(|s| parameter_in(s))
                        .map(str::to_string)
                        .collect();
                    let base = parameter_in(parts[position - 1])
                        .map_or_else(|| parameter_name(parts[position - 1]), |_| "id".into());
                    unique(base, &taken)
                }
            };
            let mut path = String::new();
            for (j, part) in parts.iter().enumerate() {
                path.push('/');
                if j == position {
                    path.push('{');
                    path.push_str(&name);
                    path.push('}');
                } else {
                    path.push_str(part);
                }
            }
            renamed.insert(k, path);
        }
    }
    let mut merged = BTreeMap::new();
    for (k, mut e) in endpoints.into_iter().enumerate() {
        if let Some(path) = renamed.remove(&k) {
            let value = segment_value(segments(&e.path)[position]);
            e.path_values
                .entry(position)
                .or_default()
                .merge(&Shape::of(&value));
            e.path = path;
        }
        merge_into(&mut merged, e);
    }
    merged.into_values().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::learning::Observation;

    fn seen(method: &str, path: &str, body: Value) -> LearnedEndpoint {
        LearnedEndpoint::from_observation(&Observation {
            method: method.into(),
            path: path.into(),
            status: 200,
            request_body: None,
            response_body: Some(body),
        })
    }

    fn paths(endpoints: &[LearnedEndpoint]) -> Vec<String> {
        endpoints
            .iter()
            .map(|e| format!("{} {} ({})", e.method, e.path, e.samples))
            .collect()
    }

    fn echo(url: &str) -> Value {
        json!({"args": {}, "headers": {"Host": "x"}, "method": "GET", "origin": "1.2.3.4", "url": url})
    }

    #[test]
    fn words_that_vary_where_siblings_vary_become_one_template() {
        let learned = generalize(vec![
            seen("GET", "/anything/bravo-echo", echo("a")),
            seen("GET", "/anything/alpha", echo("b")),
            seen("GET", "/anything/zulu-kilo", echo("c")),
            seen("GET", "/anything/x1", echo("d")),
        ]);
        assert_eq!(paths(&learned), ["GET /anything/{anythingId} (4)"]);
    }

    #[test]
    fn each_varying_segment_becomes_a_parameter() {
        let auth = |u: &str| json!({"authenticated": true, "user": u});
        let learned = generalize(vec![
            seen("GET", "/basic-auth/alice/s3cret", auth("alice")),
            seen("GET", "/basic-auth/bob/hunter2", auth("bob")),
            seen("GET", "/basic-auth/carol/pa55word", auth("carol")),
        ]);
        assert_eq!(paths(&learned), ["GET /basic-auth/{basicAuthId}/{id} (3)"]);
    }

    #[test]
    fn operations_at_the_root_and_different_resources_stay_apart() {
        let learned = generalize(vec![
            seen("GET", "/get", echo("a")),
            seen("GET", "/ip", json!({"origin": "1.2.3.4"})),
            seen("GET", "/headers", json!({"headers": {}})),
            seen(
                "GET",
                "/api/users",
                json!([{"id": 1, "name": "a", "email": "e"}]),
            ),
            seen(
                "GET",
                "/api/orders",
                json!([{"id": 1, "total": 2.5, "lines": []}]),
            ),
            seen("GET", "/api/products", json!([{"sku": "x", "price": 1}])),
        ]);
        assert_eq!(learned.len(), 6, "{:?}", paths(&learned));
    }

    #[test]
    fn an_instance_beside_its_template_joins_it_but_a_frequent_literal_stays() {
        let user = |id: Value| json!({"id": id, "name": "n"});
        let mut endpoints = vec![
            seen("GET", "/users/42", user(json!(42))),
            seen("GET", "/users/7", user(json!(7))),
            seen("GET", "/users/jdoe", user(json!(99))),
        ];
        for _ in 0..20 {
            endpoints.push(seen("GET", "/users/me", user(json!(1))));
        }
        let mut merged = BTreeMap::new();
        for e in endpoints {
            merge_into(&mut merged, e);
        }
        let learned = generalize(merged.into_values().collect());
        assert_eq!(
            paths(&learned),
            ["GET /users/me (20)", "GET /users/{userId} (3)"]
        );
    }

    #[test]
    fn fewer_than_three_siblings_are_no_evidence() {
        let learned = generalize(vec![
            seen("GET", "/docs/intro", echo("a")),
            seen("GET", "/docs/setup", echo("b")),
        ]);
        assert_eq!(learned.len(), 2);
    }

    #[test]
    fn the_result_does_not_depend_on_the_order() {
        let make = || {
            vec![
                seen("GET", "/anything/a-b", echo("a")),
                seen("GET", "/anything/c-d", echo("b")),
                seen("GET", "/anything/e-f", echo("c")),
                seen("POST", "/anything/e-f", echo("c")),
            ]
        };
        let forward = generalize(make());
        let mut reversed = make();
        reversed.reverse();
        assert_eq!(forward, generalize(reversed));
    }
}
