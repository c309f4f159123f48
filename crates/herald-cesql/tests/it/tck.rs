//! Runs every case of the CESQL TCK (copied into `tests/cesql-tck`) and
//! reports all failures at once. Reads the YAML files from disk.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use herald_cesql::{ErrorKind, Value, parse};
use serde::Deserialize;
use serde_json::Value as Json;

const TCK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cesql-tck");

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    name: String,
    tests: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Case {
    name: String,
    /// Read as the raw scalar text, so `expression: TRUE` stays `TRUE`.
    expression: String,
    #[serde(default)]
    result: Option<Json>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    event: Option<BTreeMap<String, Json>>,
    #[serde(default)]
    event_overrides: Option<BTreeMap<String, Json>>,
}

fn error_kind(name: &str) -> Option<ErrorKind> {
    let kind = match name {
        "parse" => ErrorKind::Parse,
        "math" => ErrorKind::Math,
        "cast" => ErrorKind::Cast,
        "missingFunction" => ErrorKind::MissingFunction,
        "functionEvaluation" => ErrorKind::FunctionEvaluation,
        "missingAttribute" => ErrorKind::MissingAttribute,
        "generic" => ErrorKind::Generic,
        _ => return None,
    };
    Some(kind)
}

/// JSON event attribute to CESQL value: strings, booleans and 32-bit
/// integers map directly, anything else becomes its JSON text.
fn to_value(json: &Json) -> Value {
    match json {
        Json::Bool(b) => Value::Boolean(*b),
        Json::String(s) => Value::String(s.clone()),
        Json::Number(n) => match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
            Some(i) => Value::Integer(i),
            None => Value::String(n.to_string()),
        },
        other => Value::String(other.to_string()),
    }
}

/// The case's event, or a minimal valid event, with the overrides applied.
fn event_of(case: &Case) -> BTreeMap<String, Value> {
    let mut event: BTreeMap<String, Value> = match &case.event {
        Some(event) => event
            .iter()
            .map(|(k, v)| (k.clone(), to_value(v)))
            .collect(),
        None => [
            ("specversion", "1.0"),
            ("id", "1"),
            ("source", "/source"),
            ("type", "type"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::from(v)))
        .collect(),
    };
    if let Some(overrides) = &case.event_overrides {
        for (k, v) in overrides {
            event.insert(k.clone(), to_value(v));
        }
    }
    event
}

/// Checks one case; `Err` describes the mismatch.
fn run_case(case: &Case) -> Result<(), String> {
    let expected_error = match case.error.as_deref() {
        None => None,
        Some(name) => {
            Some(error_kind(name).ok_or_else(|| format!("unknown TCK error kind {name:?}"))?)
        }
    };
    let parsed = parse(&case.expression);
    if expected_error == Some(ErrorKind::Parse) {
        return match parsed {
            Err(_) => Ok(()),
            Ok(_) => Err("expected a parse error, but the expression parsed".to_owned()),
        };
    }
    let expression = parsed.map_err(|e| format!("unexpected parse error: {e}"))?;
    let evaluation = expression.evaluate(&event_of(case));

    let mut problems = Vec::new();
    match &case.result {
        Some(result) => {
            let expected = to_value(result);
            if evaluation.value != expected {
                problems.push(format!(
                    "expected value {expected:?}, got {:?}",
                    evaluation.value
                ));
            }
        }
        None => problems.push("case has no expected result".to_owned()),
    }
    let actual_error = evaluation.error.as_ref().map(|e| e.kind());
    if actual_error != expected_error {
        problems.push(format!(
            "expected error {expected_error:?}, got {:?}",
            evaluation.error
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn suite_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(TCK_DIR)
        .expect("the TCK directory should be readable")
        .map(|entry| {
            entry
                .expect("the TCK directory entry should be readable")
                .path()
        })
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn every_tck_case_passes() {
    let mut run = 0;
    let mut failures = Vec::new();
    let files = suite_files();
    assert!(!files.is_empty(), "no TCK files found in {TCK_DIR}");
    for path in &files {
        let text = fs::read_to_string(path).expect("the TCK file should be readable");
        let suite: Suite = match serde_yaml::from_str(&text) {
            Ok(suite) => suite,
            Err(e) => {
                failures.push(format!("{}: cannot load: {e}", file_name(path)));
                continue;
            }
        };
        assert!(!suite.name.is_empty());
        for case in &suite.tests {
            run += 1;
            if let Err(problem) = run_case(case) {
                failures.push(format!(
                    "{} / {} ({}): {problem}",
                    file_name(path),
                    case.name,
                    case.expression
                ));
            }
        }
    }
    assert!(run > 0, "no TCK cases were run");
    assert!(
        failures.is_empty(),
        "{} of {run} TCK cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn tck_expressions_keep_their_exact_text() {
    // `expression: TRUE` must reach the parser as `TRUE`, not as a YAML
    // boolean re-rendered in lowercase.
    let text = "name: x\ntests:\n  - name: y\n    expression: TRUE\n    result: true\n";
    let suite: Suite = serde_yaml::from_str(text).expect("the snippet should load");
    assert_eq!(suite.tests[0].expression, "TRUE");
}
