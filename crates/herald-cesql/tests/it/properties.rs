//! Property tests: parsing arbitrary text and evaluating generated
//! expressions against generated events never panics, and evaluation is
//! deterministic. No I/O.

use std::collections::HashMap;

use herald_cesql::{Value, parse};
use proptest::prelude::*;

const ATTRIBUTES: [&str; 8] = [
    "id", "source", "type", "subject", "myint", "mybool", "mystr", "missing",
];

const FUNCTIONS: [&str; 17] = [
    "LENGTH",
    "CONCAT",
    "CONCAT_WS",
    "LOWER",
    "UPPER",
    "TRIM",
    "LEFT",
    "RIGHT",
    "SUBSTRING",
    "ABS",
    "INT",
    "BOOL",
    "STRING",
    "IS_INT",
    "IS_BOOL",
    "NOPE",
    "int",
];

const BINARY: [&str; 17] = [
    "AND", "OR", "XOR", "=", "!=", "<>", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "and", "Or",
];

/// Text made of CESQL tokens, most of it invalid in interesting ways.
fn token_soup() -> impl Strategy<Value = String> {
    let tokens = vec![
        "(",
        ")",
        ",",
        "NOT",
        "-",
        "+",
        "*",
        "/",
        "%",
        "=",
        "<>",
        "!=",
        "<",
        ">=",
        "AND",
        "OR",
        "XOR",
        "LIKE",
        "IN",
        "EXISTS",
        "TRUE",
        "false",
        "0",
        "2147483647",
        "2147483648",
        "-2147483648",
        "'a%_\\%'",
        "\"x\\\"\"",
        "'",
        "\"",
        "\\",
        "id",
        "myint",
        "ABS",
        "SUBSTRING",
        "CONCAT_WS",
        "a_b",
        "1abc",
        "é",
        "\u{0}",
    ];
    prop::collection::vec(prop::sample::select(tokens), 0..40).prop_map(|parts| parts.join(" "))
}

fn string_literal() -> impl Strategy<Value = String> {
    // Backslashes are left out so every literal is terminated.
    "[a-zA-Z0-9 %_.é]{0,6}".prop_map(|s| format!("'{s}'"))
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i32>().prop_map(|i| i.to_string()),
        (-3i32..40).prop_map(|i| i.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        string_literal(),
        prop::sample::select(ATTRIBUTES.to_vec()).prop_map(str::to_owned),
        prop::sample::select(ATTRIBUTES.to_vec()).prop_map(|a| format!("EXISTS {a}")),
    ]
}

/// Syntactically valid expressions (fully parenthesized).
fn expression() -> impl Strategy<Value = String> {
    leaf().prop_recursive(6, 64, 4, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop::sample::select(BINARY.to_vec()),
                inner.clone()
            )
                .prop_map(|(l, op, r)| format!("({l} {op} {r})")),
            inner.clone().prop_map(|e| format!("NOT ({e})")),
            inner.clone().prop_map(|e| format!("-({e})")),
            (
                inner.clone(),
                any::<bool>(),
                "[a%_]{0,4}(\\\\[%_])?[a%_]{0,3}"
            )
                .prop_map(|(e, negated, pattern)| {
                    let not = if negated { "NOT " } else { "" };
                    format!("({e} {not}LIKE '{pattern}')")
                }),
            (
                inner.clone(),
                any::<bool>(),
                prop::collection::vec(inner.clone(), 1..4)
            )
                .prop_map(|(e, negated, set)| {
                    let not = if negated { "NOT " } else { "" };
                    format!("({e} {not}IN ({}))", set.join(", "))
                }),
            (
                prop::sample::select(FUNCTIONS.to_vec()),
                prop::collection::vec(inner, 0..4)
            )
                .prop_map(|(name, args)| format!("{name}({})", args.join(", "))),
        ]
    })
}

fn attribute_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Boolean),
        any::<i32>().prop_map(Value::Integer),
        (-3i32..10).prop_map(Value::Integer),
        "[a-zA-Z0-9 %_]{0,8}".prop_map(Value::String),
        prop::sample::select(vec!["true", "FALSE", "12", "-7", "", "é"]).prop_map(Value::from),
    ]
}

fn event() -> impl Strategy<Value = HashMap<String, Value>> {
    prop::collection::hash_map(
        prop::sample::select(ATTRIBUTES[..7].to_vec()).prop_map(str::to_owned),
        attribute_value(),
        0..7,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_arbitrary_text(input in "\\PC{0,80}") {
        let _ = parse(&input);
    }

    #[test]
    fn parse_never_panics_on_token_soup(input in token_soup()) {
        if let Ok(expression) = parse(&input) {
            let _ = expression.check();
            let _ = expression.evaluate(&HashMap::new());
        }
    }

    #[test]
    fn evaluate_never_panics_and_is_deterministic(text in expression(), event in event()) {
        let expression = match parse(&text) {
            Ok(expression) => expression,
            Err(e) => {
                // Only the nesting limit may reject generated expressions.
                prop_assert!(e.message().contains("nested too deeply"), "{text}: {e}");
                return Ok(());
            }
        };
        let first = expression.evaluate(&event);
        let second = expression.evaluate(&event);
        prop_assert_eq!(&first, &second);
        if first.error.is_some() {
            prop_assert!(!first.matches());
        }
        // What the static check lets through never fails for a missing function.
        if expression.check().is_ok() {
            let kind = first.error.as_ref().map(|e| e.kind());
            prop_assert_ne!(kind, Some(herald_cesql::ErrorKind::MissingFunction), "{}", text);
        }
        for name in expression.referenced_attributes() {
            prop_assert_eq!(name, name.to_ascii_lowercase());
        }
    }
}
