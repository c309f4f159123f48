//! CESQL values and the type casts between them (CESQL specification,
//! sections "Type system" and "Type casting"). Pure data conversions, no I/O.

use std::borrow::Cow;
use std::fmt;

use crate::error::EvalError;

/// A CESQL value: one of the three primitive types of the CESQL type system.
///
/// CloudEvents attributes of other types (URI, URI-reference, timestamp,
/// binary) are represented as [`Value::String`] in their canonical string
/// encoding (section "CloudEvent context identifiers and types").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    /// A boolean.
    Boolean(bool),
    /// A signed 32-bit integer.
    Integer(i32),
    /// A sequence of Unicode characters.
    String(String),
}

impl Value {
    /// `true` when the value is `Boolean(true)`.
    pub fn is_true(&self) -> bool {
        matches!(self, Self::Boolean(true))
    }
}

/// Formats the value as the CESQL cast to String would: `true`, `-12`, or the
/// string itself without quotes.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Boolean(b) => write!(f, "{b}"),
            Self::Integer(i) => write!(f, "{i}"),
            Self::String(s) => f.write_str(s),
        }
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Self::Boolean(value)
    }
}

impl From<i32> for Value {
    fn from(value: i32) -> Self {
        Self::Integer(value)
    }
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

/// The three primitive CESQL types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    Boolean,
    Integer,
    String,
}

/// The value representation used during evaluation. Strings borrow from the
/// compiled expression where possible, so evaluating literals allocates
/// nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val<'a> {
    Boolean(bool),
    Integer(i32),
    String(Cow<'a, str>),
}

impl<'a> Val<'a> {
    /// The zero value of a type (section "Type system").
    pub(crate) fn zero(ty: Type) -> Self {
        match ty {
            Type::Boolean => Self::Boolean(false),
            Type::Integer => Self::Integer(0),
            Type::String => Self::String(Cow::Borrowed("")),
        }
    }

    pub(crate) fn borrowed(value: &'a Value) -> Self {
        match value {
            Value::Boolean(b) => Self::Boolean(*b),
            Value::Integer(i) => Self::Integer(*i),
            Value::String(s) => Self::String(Cow::Borrowed(s)),
        }
    }

    pub(crate) fn owned(value: Value) -> Self {
        match value {
            Value::Boolean(b) => Self::Boolean(b),
            Value::Integer(i) => Self::Integer(i),
            Value::String(s) => Self::String(Cow::Owned(s)),
        }
    }

    pub(crate) fn into_value(self) -> Value {
        match self {
            Self::Boolean(b) => Value::Boolean(b),
            Self::Integer(i) => Value::Integer(i),
            Self::String(s) => Value::String(s.into_owned()),
        }
    }

    pub(crate) fn value_type(&self) -> Type {
        match self {
            Self::Boolean(_) => Type::Boolean,
            Self::Integer(_) => Type::Integer,
            Self::String(_) => Type::String,
        }
    }
}

/// Integer -> String, Boolean -> String: always succeeds (section "Type
/// casting").
pub(crate) fn to_string(value: Val<'_>) -> Cow<'_, str> {
    match value {
        Val::Boolean(true) => Cow::Borrowed("true"),
        Val::Boolean(false) => Cow::Borrowed("false"),
        Val::Integer(i) => Cow::Owned(i.to_string()),
        Val::String(s) => s,
    }
}

/// String -> Integer and Boolean -> Integer (section "Type casting"). A
/// string that is not a base 10 32-bit integer, with an optional leading
/// sign, yields `0` and a cast error.
pub(crate) fn to_integer(value: &Val<'_>) -> (i32, Option<EvalError>) {
    match value {
        Val::Integer(i) => (*i, None),
        Val::Boolean(b) => (i32::from(*b), None),
        Val::String(s) => match parse_integer(s) {
            Some(i) => (i, None),
            None => (
                0,
                Some(EvalError::cast(
                    "cannot cast string to integer: not a 32-bit base 10 integer",
                )),
            ),
        },
    }
}

/// The explicit cast to Boolean used by `BOOL(x)` (section "Type casting"):
/// integers are `true` unless `0`; strings must be `true` or `false` in any
/// letter case, otherwise the result is `false` and a cast error.
pub(crate) fn to_boolean_explicit(value: &Val<'_>) -> (bool, Option<EvalError>) {
    match value {
        Val::Integer(i) => (*i != 0, None),
        _ => to_boolean_implicit(value),
    }
}

/// The implicit cast to Boolean applied to operands of `NOT`, `AND`, `OR`,
/// `XOR`, and to the left operand of `=` / `IN` when the other side is a
/// Boolean.
///
/// Deliberate interpretation: the conformance suite (`not_operator.yaml`,
/// "Invalid int cast": `NOT 10` is `true` with a cast error) requires that an
/// Integer is not implicitly converted to Boolean, although the casting table
/// lists Integer -> Boolean; that conversion is therefore only available
/// explicitly through `BOOL(x)`. Implicitly it yields `false` and a cast
/// error.
pub(crate) fn to_boolean_implicit(value: &Val<'_>) -> (bool, Option<EvalError>) {
    match value {
        Val::Boolean(b) => (*b, None),
        Val::Integer(_) => (
            false,
            Some(EvalError::cast(
                "cannot implicitly cast integer to boolean, use BOOL()",
            )),
        ),
        Val::String(s) => match parse_boolean(s) {
            Some(b) => (b, None),
            None => (
                false,
                Some(EvalError::cast(
                    "cannot cast string to boolean: expected 'true' or 'false'",
                )),
            ),
        },
    }
}

/// Casts `value` implicitly to `target`, returning the target type's zero
/// value and a cast error when that fails.
pub(crate) fn cast_implicit<'a>(value: Val<'a>, target: Type) -> (Val<'a>, Option<EvalError>) {
    match target {
        Type::String => (Val::String(to_string(value)), None),
        Type::Integer => {
            let (i, error) = to_integer(&value);
            (Val::Integer(i), error)
        }
        Type::Boolean => {
            let (b, error) = to_boolean_implicit(&value);
            (Val::Boolean(b), error)
        }
    }
}

/// Equality as used by `=`, `!=`, `<>` and `IN`: `other` is cast to the type
/// of `reference` and then compared (section "Type casting", ambiguous binary
/// operators and the special rule for `IN`).
pub(crate) fn equal_as(reference: &Val<'_>, other: Val<'_>) -> (bool, Option<EvalError>) {
    let (other, error) = cast_implicit(other, reference.value_type());
    (*reference == other, error)
}

/// Interprets a string as a base 10 signed 32-bit integer; a leading `+` or
/// `-` is allowed, nothing else (no whitespace, no other digits).
pub(crate) fn parse_integer(s: &str) -> Option<i32> {
    s.parse::<i32>().ok()
}

/// `true` / `false`, compared case-insensitively.
pub(crate) fn parse_boolean(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn s(text: &str) -> Val<'_> {
        Val::String(Cow::Borrowed(text))
    }

    #[test]
    fn string_to_integer_accepts_sign_and_rejects_whitespace() {
        assert_eq!(to_integer(&s("+42")), (42, None));
        assert_eq!(to_integer(&s("-2147483648")), (i32::MIN, None));
        for bad in [" 1", "1 ", "", "-", "2147483648", "1.0", "0x10", "١"] {
            let (value, error) = to_integer(&s(bad));
            assert_eq!(value, 0, "{bad}");
            assert_eq!(error.map(|e| e.kind()), Some(ErrorKind::Cast), "{bad}");
        }
    }

    #[test]
    fn string_to_boolean_is_case_insensitive_and_exact() {
        assert_eq!(to_boolean_implicit(&s("TrUe")), (true, None));
        assert_eq!(to_boolean_implicit(&s("FALSE")), (false, None));
        let (value, error) = to_boolean_implicit(&s("yes"));
        assert!(!value);
        assert_eq!(error.map(|e| e.kind()), Some(ErrorKind::Cast));
    }

    #[test]
    fn integer_to_boolean_is_explicit_only() {
        assert_eq!(to_boolean_explicit(&Val::Integer(-50)), (true, None));
        assert_eq!(to_boolean_explicit(&Val::Integer(0)), (false, None));
        let (value, error) = to_boolean_implicit(&Val::Integer(10));
        assert!(!value);
        assert_eq!(error.map(|e| e.kind()), Some(ErrorKind::Cast));
    }

    #[test]
    fn equality_casts_to_the_reference_type() {
        // `true = 'TRUE'`: the left boolean becomes the string "true".
        assert_eq!(equal_as(&s("TRUE"), Val::Boolean(true)), (false, None));
        // `'TRUE' = true`: the left string becomes a boolean.
        assert_eq!(equal_as(&Val::Boolean(true), s("TRUE")), (true, None));
        assert_eq!(equal_as(&Val::Integer(5), s("5")), (true, None));
    }

    #[test]
    fn display_matches_string_cast() {
        assert_eq!(Value::Boolean(false).to_string(), "false");
        assert_eq!(Value::Integer(-7).to_string(), "-7");
        assert_eq!(Value::from("a'b").to_string(), "a'b");
    }
}
