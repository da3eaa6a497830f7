//! Helpers shared by the integration tests: finding and reading the conformance corpus.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// A database of its own per test on the PostgreSQL server `scripts/test` starts (shared with
/// the engine's tests).
#[path = "../../engine/tests/common/postgres.rs"]
pub mod postgres;

use serde_json::Value;

/// `../shared/conformance` next to the repository (or `STEPSTONE_CONFORMANCE_DIR`). A missing
/// corpus is a failure, never a skip: CI must run these tests.
pub fn conformance_dir() -> PathBuf {
    let dir = std::env::var_os("STEPSTONE_CONFORMANCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance"));
    assert!(
        dir.is_dir(),
        "conformance corpus not found at {}; set STEPSTONE_CONFORMANCE_DIR",
        dir.display()
    );
    dir
}

/// Every case of one corpus folder (`cases`, `validation`, `test_state`), sorted by name.
pub fn load_cases(folder: &str) -> Vec<(String, Value)> {
    let dir = conformance_dir().join(folder);
    let mut cases: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable case");
            let case: Value = serde_json::from_str(&text).expect("case is JSON");
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, case)
        })
        .collect();
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!cases.is_empty(), "no cases in {}", dir.display());
    cases
}

/// Reads an expected-failures list: `case-name  # reason` per line; `#` lines are comments.
/// Every entry must carry a reason.
pub fn expected_failures(file: &str) -> Vec<(String, String)> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, reason) = l
                .split_once('#')
                .unwrap_or_else(|| panic!("{file}: '{l}' has no '# reason'"));
            let reason = reason.trim();
            assert!(!reason.is_empty(), "{file}: '{l}' has an empty reason");
            (name.trim().to_owned(), reason.to_owned())
        })
        .collect()
}

/// The list discipline of a corpus runner: every case not listed in `list` passed (`failures`
/// holds the ones that did not), and every listed case still fails (`fixed` holds the listed
/// ones that pass now, to be taken off the list).
pub fn assert_list_discipline(list: &str, failures: &[String], fixed: &[String]) {
    assert!(
        failures.is_empty(),
        "{} unexpected failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        fixed.is_empty(),
        "these cases pass now; remove them from {list}:\n{}",
        fixed.join("\n")
    );
}

/// Steps of a placeholder path like `$.expected.output.a.b[0]`, below `expected`.
fn steps(path: &str) -> Vec<String> {
    let rest = path.trim_start_matches("$.expected");
    rest.replace('[', ".")
        .replace(']', "")
        .split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn at<'v>(v: &'v mut Value, steps: &[String]) -> Option<&'v mut Value> {
    let mut cur = v;
    for s in steps {
        cur = match cur {
            Value::Object(m) => m.get_mut(s)?,
            Value::Array(a) => a.get_mut(s.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// Applies placeholders: where the expected value stands for "any value" or holds tokens that
/// stand for any text, an actual value that fits is replaced by the expected one.
pub fn normalize(case: &Value, expected: &mut Value, actual: &mut Value) {
    let Some(placeholders) = case["placeholders"].as_array() else {
        return;
    };
    for p in placeholders {
        let steps = steps(p["path"].as_str().unwrap_or(""));
        let Some(want) = at(expected, &steps).cloned() else {
            continue;
        };
        let Some(got) = at(actual, &steps) else {
            continue;
        };
        let fits = match p["match"].as_str() {
            Some("exact") => true,
            Some("substring") => match (&want, &*got) {
                (Value::String(w), Value::String(g)) => {
                    let tokens: Vec<&str> = p["tokens"]
                        .as_array()
                        .map(|t| t.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    wildcard_match(w, &tokens, g)
                }
                _ => false,
            },
            _ => false,
        };
        if fits {
            *got = want;
        }
    }
}

/// Whether `text` equals `pattern` with each token standing for any text.
pub fn wildcard_match(pattern: &str, tokens: &[&str], text: &str) -> bool {
    // Split the pattern at its tokens into literal pieces that must appear in order.
    let mut pieces = vec![pattern.to_owned()];
    for token in tokens {
        pieces = pieces
            .iter()
            .flat_map(|p| p.split(token).map(str::to_owned).collect::<Vec<_>>())
            .collect();
    }
    let mut rest = text;
    for (i, piece) in pieces.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(piece.as_str()) else {
                return false;
            };
            rest = r;
        } else if i == pieces.len() - 1 {
            return rest.ends_with(piece.as_str());
        } else {
            let Some(at) = rest.find(piece.as_str()) else {
                return false;
            };
            rest = &rest[at + piece.len()..];
        }
    }
    pieces.len() == 1 && rest.is_empty()
}

/// Polls `check` every 50 ms until it gives a value, for at most `seconds`; past that the test
/// fails with `what` (what never happened).
pub fn wait_for<T>(
    seconds: u64,
    what: impl std::fmt::Display,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
