//! Checks of the public API: parse error reporting, the filter decision,
//! attribute discovery and the nesting limit. No I/O.

use std::collections::{BTreeMap, HashMap};

use herald_cesql::{
    ErrorKind, EvalError, Evaluation, EventAttributes, Expression, MAX_NESTING_DEPTH, ParseError,
    Value, parse,
};

fn event(pairs: &[(&str, Value)]) -> HashMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn parse_error(input: &str) -> ParseError {
    match parse(input) {
        Ok(expression) => panic!("{input:?} should not parse, got {expression:?}"),
        Err(e) => e,
    }
}

#[test]
fn parse_error_reports_position_and_lowercase_message() {
    let e = parse_error("ABC(");
    assert_eq!(e.position(), 4);
    assert_eq!(
        e.to_string(),
        "at position 4: expected an expression, found end of input"
    );
    assert_eq!(e.kind(), ErrorKind::Parse);

    let e = parse_error("(a = 1");
    assert_eq!(
        e.to_string(),
        "at position 6: expected ')', found end of input"
    );

    let e = parse_error("x LIKE 123");
    assert_eq!(e.position(), 7);
    assert!(
        e.message()
            .starts_with("expected a string literal pattern after LIKE")
    );

    for input in [
        "",
        "1 2",
        "a_b = 1",
        "f1(2)",
        "2147483648",
        "'open",
        "a NOT 1",
        "EXISTS 1",
        "1 IN ()",
        "#",
    ] {
        let e = parse_error(input);
        let message = e.message();
        // Sentence-style lowercase (SQL keywords are quoted in uppercase),
        // no trailing period.
        assert!(!message.ends_with('.'), "{input:?}: {message}");
        assert!(
            message.starts_with(|c: char| c.is_ascii_lowercase()),
            "{input:?}: {message}"
        );
    }
}

#[test]
fn integer_literals_cover_the_whole_32_bit_range() {
    let empty = HashMap::new();
    let min = parse("-2147483648").expect("i32::MIN should parse");
    assert_eq!(min.evaluate(&empty).value, Value::Integer(i32::MIN));
    let max = parse("+2147483647").expect("i32::MAX should parse");
    assert_eq!(max.evaluate(&empty).value, Value::Integer(i32::MAX));
    parse_error("-2147483649");
}

#[test]
fn matches_requires_true_and_no_error() {
    let ok = Evaluation {
        value: Value::Boolean(true),
        error: None,
    };
    assert!(ok.matches());
    let not_bool = Evaluation {
        value: Value::Integer(1),
        error: None,
    };
    assert!(!not_bool.matches());

    let e = event(&[("type", Value::from("a"))]);
    // `NOT 10` is true, but with a cast error, so it is not a match.
    let evaluation = parse("NOT 10").expect("should parse").evaluate(&e);
    assert_eq!(evaluation.value, Value::Boolean(true));
    assert!(!evaluation.matches());
    let error: &EvalError = evaluation.error.as_ref().expect("there should be an error");
    assert_eq!(error.kind(), ErrorKind::Cast);
    assert_eq!(error.kind().as_str(), "cast");
}

#[test]
fn referenced_attributes_lists_each_name_once_in_order() {
    let expression = parse(
        "Type = 'x' AND (EXISTS subject OR LOWER(type) IN (myext, 'a')) AND subject LIKE 'a%'",
    )
    .expect("should parse");
    assert_eq!(
        expression.referenced_attributes(),
        vec!["type", "subject", "myext"]
    );
    assert!(
        parse("1 = 1")
            .expect("should parse")
            .referenced_attributes()
            .is_empty()
    );
}

#[test]
fn expression_keeps_source_and_parses_from_str() {
    let expression: Expression = "id = '1'".parse().expect("should parse");
    assert_eq!(expression.source(), "id = '1'");
    assert_eq!(expression.to_string(), "id = '1'");
    let e = event(&[("id", Value::from("1"))]);
    assert!(expression.evaluate(&e).matches());
}

#[test]
fn btreemap_and_custom_types_provide_attributes() {
    let map: BTreeMap<String, Value> = [("myint".to_owned(), Value::Integer(3))].into();
    let expression = parse("myint * 2 = 6 AND EXISTS myint").expect("should parse");
    assert!(expression.evaluate(&map).matches());

    struct Fixed;
    impl EventAttributes for Fixed {
        fn attribute(&self, name: &str) -> Option<Value> {
            (name == "source").then(|| Value::from("https://example.com"))
        }
    }
    assert!(
        parse("source LIKE 'https://%'")
            .expect("should parse")
            .evaluate(&Fixed)
            .matches()
    );
    assert!(
        !parse("EXISTS subject")
            .expect("should parse")
            .evaluate(&Fixed)
            .matches()
    );
}

#[test]
fn unary_operators_bind_tighter_than_binary_operators() {
    let e = event(&[("a", Value::Boolean(false))]);
    // (NOT a) = true, not NOT (a = true).
    let evaluation = parse("NOT a = true").expect("should parse").evaluate(&e);
    assert_eq!(evaluation.value, Value::Boolean(true));
    // (-2) * 3
    let evaluation = parse("-2 * 3 + 1").expect("should parse").evaluate(&e);
    assert_eq!(evaluation.value, Value::Integer(-5));
}

#[test]
fn logical_operators_share_one_level_left_to_right() {
    let empty = HashMap::new();
    // (TRUE OR FALSE) AND FALSE
    let evaluation = parse("TRUE OR FALSE AND FALSE")
        .expect("should parse")
        .evaluate(&empty);
    assert_eq!(evaluation.value, Value::Boolean(false));
    // Comparisons bind tighter than logic.
    let evaluation = parse("1 = 1 AND 2 > 1")
        .expect("should parse")
        .evaluate(&empty);
    assert_eq!(evaluation.value, Value::Boolean(true));
}

#[test]
fn like_and_in_bind_tighter_than_binary_operators() {
    let empty = HashMap::new();
    // 'ab' = ('ab' LIKE 'a%') compares the string with "true".
    let evaluation = parse("'true' = 'ab' LIKE 'a%'")
        .expect("should parse")
        .evaluate(&empty);
    assert_eq!(evaluation.value, Value::Boolean(true));
    let evaluation = parse("1 + 1 IN (1)")
        .expect("should parse")
        .evaluate(&empty);
    assert_eq!(evaluation.value, Value::Integer(2));
}

#[test]
fn deep_nesting_is_a_parse_error_not_a_stack_overflow() {
    let depth = 100_000;
    let inputs = [
        format!("{}1{}", "(".repeat(depth), ")".repeat(depth)),
        format!("{}TRUE", "NOT ".repeat(depth)),
        format!("{}1", "- ".repeat(depth)),
        format!("{}1{}", "ABS(".repeat(depth), ")".repeat(depth)),
        format!("1{}", " IN (1)".repeat(depth)),
        format!("'a'{}", " LIKE 'a'".repeat(depth)),
        "(".repeat(depth),
    ];
    for input in &inputs {
        let e = parse_error(input);
        assert!(
            e.message().contains("nested too deeply"),
            "{}: {e}",
            &input[..20]
        );
    }
}

#[test]
fn nesting_up_to_the_limit_is_accepted() {
    let depth = MAX_NESTING_DEPTH - 1;
    let input = format!("{}1{}", "(".repeat(depth), ")".repeat(depth));
    let expression = parse(&input).expect("nesting below the limit should parse");
    assert_eq!(
        expression.evaluate(&HashMap::new()).value,
        Value::Integer(1)
    );
}

#[test]
fn long_flat_chains_do_not_count_as_nesting() {
    let terms = 20_000;
    let input = vec!["x = 1"; terms].join(" OR ") + " OR x = 2";
    let expression = parse(&input).expect("a long OR chain should parse");
    let e = event(&[("x", Value::Integer(2))]);
    assert!(expression.evaluate(&e).matches());

    let input = vec!["1"; terms].join(" + ");
    let expression = parse(&input).expect("a long sum should parse");
    assert_eq!(expression.evaluate(&e).value, Value::Integer(20_000));

    let set = vec!["0"; terms].join(", ");
    let expression = parse(&format!("x IN ({set}, 2)")).expect("a big set should parse");
    assert!(expression.evaluate(&e).matches());
}

#[test]
fn expressions_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Expression>();
    assert_send_sync::<Evaluation>();
    assert_send_sync::<ParseError>();
}

fn check_error(input: &str) -> herald_cesql::CheckError {
    let expression = parse(input).unwrap();
    match expression.check() {
        Ok(()) => panic!("{input:?} should fail its check"),
        Err(e) => e,
    }
}

#[test]
fn check_refuses_unknown_functions_and_wrong_arity_with_their_position() {
    let e = check_error("FOO(type)");
    assert_eq!(e.kind(), ErrorKind::MissingFunction);
    assert_eq!(e.to_string(), "at position 0: unknown function FOO");

    let e = check_error("type = 'a' AND abs(1, 2) = 1");
    assert_eq!(e.position(), 15);
    assert_eq!(
        e.message(),
        "function ABS takes 1 argument, not 2 arguments"
    );

    let e = check_error("CONCAT_WS() = ''");
    assert_eq!(
        e.message(),
        "function CONCAT_WS takes at least 1 argument, not 0 arguments"
    );

    // Inside arguments, IN sets, LIKE operands and after NOT: the first in reading order.
    let e = check_error("NOT (LOWER(NOPE(1)) IN ('a', BAR()))");
    assert_eq!((e.position(), e.message()), (11, "unknown function NOPE"));
    let e = check_error("'é' = x OR y IN (1, SUBSTRING('a'))");
    assert_eq!(e.position(), 20);
    assert_eq!(
        e.message(),
        "function SUBSTRING takes 2 or 3 arguments, not 1 argument"
    );
}

#[test]
fn check_accepts_every_built_in_at_its_arities() {
    for input in [
        "LENGTH('a') = 1",
        "CONCAT() = '' AND CONCAT('a', 'b', 'c') = 'abc'",
        "CONCAT_WS(',') = '' AND concat_ws(',', 'a') = 'a'",
        "LOWER(type) = UPPER(type) OR TRIM(type) = type",
        "LEFT(type, 1) = RIGHT(type, 1)",
        "SUBSTRING(type, 1) = SUBSTRING(type, 1, 2)",
        "ABS(-1) = INT('1') AND BOOL('true') AND STRING(1) = '1'",
        "IS_INT('1') AND IS_BOOL('true')",
        "type LIKE 'a%' AND EXISTS subject AND NOT (1 IN (1, 2))",
    ] {
        let expression = parse(input).unwrap();
        assert_eq!(expression.check(), Ok(()), "{input}");
    }
}
