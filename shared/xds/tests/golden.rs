//! Golden-file tests: `testdata/in/<case>.json` translates to exactly `testdata/out/<case>.txt`.
//! `FLOWPLANE_UPDATE_GOLDEN=1 cargo test -p flowplane-xds --test golden` rewrites the outputs
//! and removes stale ones; review the diff like any other change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cases;

use std::collections::BTreeSet;
use std::path::PathBuf;

const REQUIRED_CASES: [&str; 13] = [
    "access_control",
    "api_md_example",
    "cluster_resilience",
    "edge_filters",
    "global_rate_limit",
    "http_filters",
    "kitchen_sink",
    "oauth2_login",
    "observability",
    "outbound_credentials",
    "tcp_proxy",
    "tls_sds",
    "wasm_plugins",
];

fn updating() -> bool {
    std::env::var("FLOWPLANE_UPDATE_GOLDEN").is_ok_and(|v| v == "1")
}

fn out_dir() -> PathBuf {
    cases::testdata().join("out")
}

#[test]
fn translations_match_the_golden_files() {
    let cases = cases::load_all();
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    for required in REQUIRED_CASES {
        assert!(
            names.contains(required),
            "testdata/in/{required}.json is missing"
        );
    }
    let mut problems = Vec::new();
    for case in &cases {
        let path = out_dir().join(format!("{}.txt", case.name));
        let actual = cases::render(case);
        if updating() {
            std::fs::write(&path, &actual).expect("golden file is writable");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => problems.push(format!(
                "{}: {}",
                case.name,
                first_difference(&expected, &actual)
            )),
            Err(_) => problems.push(format!("{} has no output file", case.name)),
        }
    }
    problems.extend(stale_outputs(&names));
    assert!(
        problems.is_empty(),
        "golden files differ (rerun with FLOWPLANE_UPDATE_GOLDEN=1 if the change is intended):\n{}",
        problems.join("\n")
    );
}

/// Outputs without an input: removed when updating, reported otherwise.
fn stale_outputs(names: &BTreeSet<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    for entry in std::fs::read_dir(out_dir()).expect("testdata/out exists") {
        let path = entry.expect("readable directory entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if names.contains(stem) && path.extension().is_some_and(|e| e == "txt") {
            continue;
        }
        if updating() {
            std::fs::remove_file(&path).expect("stale golden file is removable");
        } else {
            problems.push(format!("{} is stale (no matching input)", path.display()));
        }
    }
    problems
}

fn first_difference(expected: &str, actual: &str) -> String {
    let mut expected_lines = expected.lines();
    let mut actual_lines = actual.lines();
    for line in 1.. {
        match (expected_lines.next(), actual_lines.next()) {
            (Some(e), Some(a)) if e == a => {}
            (None, None) => break,
            (e, a) => {
                return format!("line {line}: expected {e:?}, got {a:?}");
            }
        }
    }
    "differs only in line endings".to_string()
}

#[test]
fn rendering_is_deterministic() {
    let first: Vec<String> = cases::load_all().iter().map(cases::render).collect();
    for _ in 0..5 {
        let again: Vec<String> = cases::load_all().iter().map(cases::render).collect();
        assert_eq!(first, again);
    }
}

#[test]
fn every_any_payload_is_decoded_in_the_golden_text() {
    for case in cases::load_all() {
        let text = cases::render(&case);
        // `raw_value: []` (HeaderValue's bytes form) is not an Any payload.
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("value: [")),
            "{}: undecoded Any bytes left in output",
            case.name
        );
    }
}
