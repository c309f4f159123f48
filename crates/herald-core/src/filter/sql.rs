//! The `sql` dialect: CESQL v1 expressions (`herald-cesql`) over an event's context attributes.
//!
//! Attributes are offered with their CloudEvents types: extensions keep their Boolean or Integer
//! type, every other attribute is its canonical string. No I/O.

use herald_cesql::{EventAttributes, Expression, Value};

use crate::event::{Attributes, ExtensionValue, SPEC_VERSION};
use crate::filter::Checks;

/// Parses a CESQL expression and, with [`Checks::Static`], refuses calls of unknown functions
/// or with the wrong number of arguments; the error names the position and the problem.
pub(super) fn compile(source: &str, checks: Checks) -> Result<Expression, String> {
    let expression = herald_cesql::parse(source).map_err(|err| err.to_string())?;
    if checks == Checks::Static {
        expression.check().map_err(|err| err.to_string())?;
    }
    Ok(expression)
}

/// Evaluates an expression: `Ok(matched)`, or the evaluation error, which means no match.
pub(super) fn evaluate(expression: &Expression, attributes: &Attributes) -> Result<bool, String> {
    let evaluation = expression.evaluate(attributes);
    match evaluation.error {
        Some(err) => Err(format!("{}: {}", err.kind(), err.message())),
        None => Ok(evaluation.value.is_true()),
    }
}

/// Evaluates an expression for an explanation: its value as JSON, and its error, if any.
pub(super) fn explain(
    expression: &Expression,
    attributes: &Attributes,
) -> (String, Option<String>) {
    let evaluation = expression.evaluate(attributes);
    let value = match &evaluation.value {
        Value::Boolean(flag) => serde_json::Value::Bool(*flag),
        Value::Integer(number) => serde_json::Value::from(*number),
        Value::String(text) => serde_json::Value::String(text.clone()),
    };
    let error = evaluation
        .error
        .map(|err| format!("{}: {}", err.kind(), err.message()));
    (value.to_string(), error)
}

impl EventAttributes for Attributes {
    fn attribute(&self, name: &str) -> Option<Value> {
        let text = |value: &Option<String>| value.clone().map(Value::String);
        match name {
            "specversion" => Some(Value::from(SPEC_VERSION.to_owned())),
            "id" => Some(Value::String(self.id.clone())),
            "source" => Some(Value::String(self.source.clone())),
            "type" => Some(Value::String(self.ty.clone())),
            "datacontenttype" => text(&self.datacontenttype),
            "dataschema" => text(&self.dataschema),
            "subject" => text(&self.subject),
            "time" => text(&self.time),
            _ => self.extensions.get(name).map(|value| match value {
                ExtensionValue::String(text) => Value::String(text.clone()),
                ExtensionValue::Boolean(flag) => Value::Boolean(*flag),
                ExtensionValue::Integer(number) => Value::Integer(*number),
            }),
        }
    }

    fn has_attribute(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}
