//! Names of executions, state machines and activities, checked as Step Functions checks them;
//! and the names Stepstone gives a distributed Map's child executions.
//!
//! AWS (StartExecution, CreateStateMachine): 1 to 80 characters, none of them whitespace,
//! brackets `< > { } [ ]`, wildcards `? *`, special characters `" # % \ ^ | ~ ` $ & , ; : /`,
//! or control characters (U+0000-001F, U+007F-009F). Stepstone relies on the same rule for
//! more than parity: a name is part of file names (`logs/<name>.log`) and never a path.

/// The longest name AWS accepts, in characters.
pub const MAX_NAME_CHARS: usize = 80;

/// Why a name was refused: AWS's InvalidName, with what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("InvalidName: {what} '{shown}' {problem}")]
pub struct NameError {
    /// What was named ("execution name", "state machine name").
    pub what: &'static str,
    /// The name, with control characters escaped so that it prints on one line.
    pub shown: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Checks `name` (`what` says what it names, for the message).
pub fn check_name(what: &'static str, name: &str) -> Result<(), NameError> {
    let refuse = |problem: String| NameError {
        what,
        shown: name.escape_debug().take(100).collect(),
        problem,
    };
    let chars = name.chars().count();
    if chars == 0 {
        return Err(refuse("is empty: names have 1 to 80 characters".into()));
    }
    if chars > MAX_NAME_CHARS {
        return Err(refuse(format!(
            "has {chars} characters: names have 1 to {MAX_NAME_CHARS}"
        )));
    }
    if let Some(c) = name.chars().find(|&c| !allowed(c)) {
        let which = if c.is_whitespace() {
            "whitespace".to_owned()
        } else if c.is_control() {
            format!("the control character U+{:04X}", c as u32)
        } else {
            format!("'{c}'")
        };
        return Err(refuse(format!(
            "contains {which}: names cannot contain whitespace, control characters or any of \
             < > {{ }} [ ] ? * \" # % \\ ^ | ~ ` $ & , ; : /"
        )));
    }
    Ok(())
}

fn allowed(c: char) -> bool {
    !(c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '<' | '>'
                | '{'
                | '}'
                | '['
                | ']'
                | '?'
                | '*'
                | '"'
                | '#'
                | '%'
                | '\\'
                | '^'
                | '|'
                | '~'
                | '`'
                | '$'
                | '&'
                | ','
                | ';'
                | ':'
                | '/'
        ))
}

/// The name of child `index` of Map Run `map_run_arn`: UUID-shaped, the Map Run in its first
/// half and the index in its second, so that one Map Run's children's names (and the store's
/// keys made of them) sort in index order: the children of a save are written side by side,
/// not scattered over the store's pages (scattered, a 100,000-item Map wrote 570 MB).
pub(crate) fn child_execution_name(map_run_arn: &str, index: usize) -> String {
    let index = index as u64;
    format!(
        "{}-8{:03x}-{:012x}",
        child_name_prefix(map_run_arn),
        (index >> 48) & 0xfff,
        index & 0xffff_ffff_ffff
    )
}

/// The ARNs of a Map Run's children: (their state machine's, the prefix of their executions',
/// to which a child's name is added). `arn:aws:states:R:A:mapRun:MACHINE/LABEL:ID` gives
/// `arn:aws:states:R:A:stateMachine:MACHINE/LABEL` and `arn:aws:states:R:A:execution:MACHINE/LABEL:`.
pub(crate) fn child_arns(map_run_arn: &str) -> (String, String) {
    let (prefix, rest) = map_run_arn
        .split_once(":mapRun:")
        .unwrap_or((map_run_arn, ""));
    let machine = rest.rsplit_once(':').map_or(rest, |(m, _)| m);
    (
        format!("{prefix}:stateMachine:{machine}"),
        format!("{prefix}:execution:{machine}:"),
    )
}

/// What the names of Map Run `map_run_arn`'s children begin with (18 characters: a hash of
/// the Map Run's ARN), so that the store lists a Map Run's children by it.
pub(crate) fn child_name_prefix(map_run_arn: &str) -> String {
    let mut run = crate::tokens::uuid_from(map_run_arn.as_bytes());
    run.truncate(18);
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_aws_accepts() {
        for name in [
            "deploy-1",
            "a",
            "Deploy_eu.west.1",
            "déploiement",
            &"x".repeat(80),
        ] {
            assert_eq!(check_name("execution name", name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_paths_whitespace_and_special_characters() {
        for (name, says) in [
            ("", "is empty"),
            (&"x".repeat(81) as &str, "81 characters"),
            ("/tmp/x/victim", "'/'"),
            ("../../v", "'/'"),
            ("a b", "whitespace"),
            ("a\nb", "whitespace"),
            ("a\tb", "whitespace"),
            ("a\u{1}b", "U+0001"),
            ("a\u{85}b", "whitespace"),
            ("a\u{9f}b", "U+009F"),
            ("run:1", "':'"),
            ("$x", "'$'"),
            ("a`b", "'`'"),
        ] {
            let e = check_name("execution name", name).unwrap_err();
            assert!(e.to_string().contains(says), "{name:?}: {e}");
            assert!(e.to_string().starts_with("InvalidName: execution name"));
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }
}
