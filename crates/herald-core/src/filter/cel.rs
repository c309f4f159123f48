//! The `cel` dialect, a Herald extension: Common Expression Language expressions over an event's
//! context attributes and its JSON `data`, as Google Eventarc's advanced filters offer.
//!
//! Every attribute the event carries is a variable of its name (`type`, `source`, `subject`,
//! extensions with their Boolean, integer or string value); `data` is the payload when it is
//! JSON. An event without a JSON payload has no `data` variable, so an expression that reads it
//! fails to evaluate: the filter does not match and the failure is counted as an evaluation
//! error. Programs are parsed once per subscription revision and share one standard
//! environment. No I/O.

use std::sync::{Arc, OnceLock};

use ::cel::{Context, Env, Program, Value};
use serde::Deserialize;

use crate::event::{Attributes, Event, ExtensionValue, SPEC_VERSION, is_json_media_type};

/// A parsed CEL program and whether it reads `data`.
#[derive(Debug)]
pub(super) struct CelProgram {
    program: Program,
    reads_data: bool,
}

/// The variables of one event, built at most once per event and shared by every `cel` filter.
pub(super) struct Activation {
    context: Context<'static, 'static>,
}

/// Parses a CEL expression; the error names the position and the problem.
pub(super) fn compile(source: &str) -> Result<CelProgram, String> {
    let program = environment().compile(source).map_err(|errors| {
        let Some(first) = errors.errors.first() else {
            return "invalid expression".to_owned();
        };
        let position = position_of(source, first.pos);
        format!("at position {position}: {}", first.msg)
    })?;
    let reads_data = program.references().has_variable("data");
    Ok(CelProgram {
        program,
        reads_data,
    })
}

impl CelProgram {
    /// Returns whether the expression reads the event's `data`.
    pub(super) fn reads_data(&self) -> bool {
        self.reads_data
    }

    /// Evaluates the program: `Ok(matched)`, or the evaluation error, which means no match.
    pub(super) fn evaluate(&self, activation: &Activation) -> Result<bool, String> {
        match self.program.execute(&activation.context) {
            Ok(Value::Bool(matched)) => Ok(matched),
            Ok(other) => Err(format!(
                "expression evaluated to {}, not a bool",
                other.type_of()
            )),
            Err(err) => Err(err.to_string()),
        }
    }
}

impl Activation {
    /// Binds the event's attributes, and its JSON `data` when `with_data` and it has one.
    pub(super) fn new(event: &Event, with_data: bool) -> Activation {
        let mut context = Context::with_env(Arc::clone(environment()));
        bind_attributes(&mut context, event.attributes());
        if with_data && let Some(data) = json_data(event) {
            context.add_variable_from_value("data", data);
        }
        Activation { context }
    }
}

fn bind_attributes(context: &mut Context<'static, 'static>, attributes: &Attributes) {
    let mut text = |name: &str, value: &str| {
        context.add_variable_from_value(name.to_owned(), Value::String(Arc::new(value.to_owned())));
    };
    text("specversion", SPEC_VERSION);
    text("id", &attributes.id);
    text("source", &attributes.source);
    text("type", &attributes.ty);
    let optional = [
        ("datacontenttype", &attributes.datacontenttype),
        ("dataschema", &attributes.dataschema),
        ("subject", &attributes.subject),
        ("time", &attributes.time),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            text(name, value);
        }
    }
    for (name, value) in &attributes.extensions {
        let value = match value {
            ExtensionValue::String(text) => Value::String(Arc::new(text.clone())),
            ExtensionValue::Boolean(flag) => Value::Bool(*flag),
            ExtensionValue::Integer(number) => Value::Int(i64::from(*number)),
        };
        context.add_variable_from_value(name.clone(), value);
    }
}

/// Returns the event's `data` as a CEL value when the payload is JSON: the data content type is
/// absent or a JSON media type, and the event has a `data` member (not `data_base64`).
fn json_data(event: &Event) -> Option<Value> {
    #[derive(Deserialize)]
    struct DataOnly {
        data: Option<serde_json::Value>,
    }
    let is_json = event
        .attributes()
        .datacontenttype
        .as_deref()
        .is_none_or(is_json_media_type);
    if !is_json {
        return None;
    }
    let parsed: DataOnly = serde_json::from_slice(event.structured()).ok()?;
    ::cel::to_value(parsed.data?).ok()
}

/// The standard CEL environment, built once: programs and activations share it.
fn environment() -> &'static Arc<Env> {
    static ENVIRONMENT: OnceLock<Arc<Env>> = OnceLock::new();
    ENVIRONMENT.get_or_init(|| Arc::new(Env::stdlib()))
}

/// Converts a (line, column) pair as the CEL parser reports it (both counted from 1) to a
/// 0-based character position in `source`, as CESQL errors report it.
fn position_of(source: &str, (line, column): (isize, isize)) -> usize {
    let line = usize::try_from(line).unwrap_or(1).max(1);
    let column = usize::try_from(column).unwrap_or(1).saturating_sub(1);
    let line_start: usize = source
        .split('\n')
        .take(line - 1)
        .map(|text| text.chars().count() + 1)
        .sum();
    line_start + column
}
