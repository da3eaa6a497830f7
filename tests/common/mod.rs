//! Helpers shared by the integration tests: finding and reading the conformance corpus.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

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
