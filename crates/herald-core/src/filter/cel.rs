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

use ::cel::common::ast::{EntryExpr, Expr, IdedExpr, operators};
use ::cel::{Context, Env, Program, Value};
use serde::Deserialize;

use crate::event::{Attributes, Event, ExtensionValue, SPEC_VERSION, is_json_media_type};

/// The context attributes every event can bind (`specversion`, `id`, `source` and `type` are
/// always bound; the others when the event carries them).
const CONTEXT_ATTRIBUTES: [&str; 8] = [
    "specversion",
    "id",
    "source",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
];

/// The operators the CEL parser writes as calls, which the interpreter evaluates itself.
const OPERATORS: [&str; 21] = [
    operators::CONDITIONAL,
    operators::LOGICAL_AND,
    operators::LOGICAL_OR,
    operators::LOGICAL_NOT,
    operators::SUBSTRACT,
    operators::ADD,
    operators::MULTIPLY,
    operators::DIVIDE,
    operators::MODULO,
    operators::EQUALS,
    operators::NOT_EQUALS,
    operators::GREATER_EQUALS,
    operators::LESS_EQUALS,
    operators::GREATER,
    operators::LESS,
    operators::NEGATE,
    operators::INDEX,
    operators::OPT_INDEX,
    operators::OPT_SELECT,
    operators::NOT_STRICTLY_FALSE,
    operators::IN,
];

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

/// Checks a compiled program without an event: every function it calls must exist in the
/// environment, and every variable it reads must be one an event can bind (a context attribute,
/// an extension, whose names are lower-case ASCII letters and digits, or `data`), a type name,
/// or a comprehension variable in scope. Either mistake would fail on every event. The error
/// names the first problem by position.
pub(super) fn check(source: &str, program: &CelProgram) -> Result<(), String> {
    let mut checker = Checker {
        program: &program.program,
        scopes: Vec::new(),
        problems: Vec::new(),
    };
    checker.visit(program.program.expression());
    let first = checker
        .problems
        .into_iter()
        .min_by_key(|(offset, _)| *offset);
    match first {
        None => Ok(()),
        Some((offset, problem)) => {
            let position = source
                .get(..offset)
                .map_or(offset, |before| before.chars().count());
            Err(format!("at position {position}: {problem}"))
        }
    }
}

/// Whether an event can ever bind a variable called `name` (see [`bind_attributes`]).
fn is_bindable(name: &str) -> bool {
    let extension_shaped = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    CONTEXT_ATTRIBUTES.contains(&name) || name == "data" || extension_shaped
}

/// Whether the environment declares a function (global or member) called `name`. The `cel`
/// crate answers this only when a function is added to a context: adding one under a declared
/// name is refused.
fn is_declared(name: &str) -> bool {
    let mut probe = Context::with_env(Arc::clone(environment()));
    probe.add_function(name, || false).is_err()
}

/// Walks a program's expression, collecting (byte offset, problem) pairs.
struct Checker<'p> {
    program: &'p Program,
    /// Comprehension variables (`x` in `list.exists(x, ...)`) of the enclosing scopes.
    scopes: Vec<Vec<&'p str>>,
    problems: Vec<(usize, String)>,
}

impl<'p> Checker<'p> {
    fn offset(&self, expression: &IdedExpr) -> usize {
        self.program
            .source_info()
            .offset_for(expression.id)
            .map_or(0, |(start, _)| usize::try_from(start).unwrap_or(0))
    }

    fn in_scope(&self, name: &str) -> bool {
        self.scopes.iter().any(|scope| scope.contains(&name))
    }

    fn visit(&mut self, expression: &'p IdedExpr) {
        match &expression.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(name) => {
                let bound = name.starts_with('@')
                    || self.in_scope(name)
                    || is_bindable(name)
                    || environment().types().find_type(name).is_some();
                if !bound {
                    self.problems.push((
                        self.offset(expression),
                        format!(
                            "`{name}` is never bound: variables are the event's attributes and \
                             extensions (lower-case ASCII letters and digits) and `data`"
                        ),
                    ));
                }
            }
            Expr::Call(call) => {
                let qualified = call.target.as_deref().and_then(|target| {
                    let segments = qualified_name(&target.expr)?;
                    Some(format!("{segments}.{}", call.func_name))
                });
                // `optional.of(x)` calls the function `optional.of`: its target is no variable.
                let namespaced = qualified.as_deref().is_some_and(is_declared);
                if !namespaced {
                    let known = OPERATORS.contains(&call.func_name.as_str())
                        || is_declared(&call.func_name);
                    if !known {
                        // The call's offset is its opening parenthesis: point at the name.
                        let parenthesis = self.offset(expression);
                        let source = &self.program.source_info().source;
                        let name = source
                            .get(..parenthesis)
                            .and_then(|before| before.rfind(call.func_name.as_str()))
                            .unwrap_or(parenthesis);
                        self.problems
                            .push((name, format!("unknown function `{}`", call.func_name)));
                    }
                    if let Some(target) = &call.target {
                        self.visit(target);
                    }
                }
                for argument in &call.args {
                    self.visit(argument);
                }
            }
            Expr::Comprehension(comprehension) => {
                self.visit(&comprehension.iter_range);
                self.visit(&comprehension.accu_init);
                let mut scope = vec![
                    comprehension.iter_var.as_str(),
                    comprehension.accu_var.as_str(),
                ];
                if let Some(second) = &comprehension.iter_var2 {
                    scope.push(second);
                }
                self.scopes.push(scope);
                self.visit(&comprehension.loop_cond);
                self.visit(&comprehension.loop_step);
                self.visit(&comprehension.result);
                self.scopes.pop();
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.visit(element);
                }
            }
            Expr::Map(map) => self.visit_entries(&map.entries),
            Expr::Struct(structure) => self.visit_entries(&structure.entries),
            Expr::Select(select) => self.visit(&select.operand),
        }
    }

    fn visit_entries(&mut self, entries: &'p [::cel::common::ast::IdedEntryExpr]) {
        for entry in entries {
            match &entry.expr {
                EntryExpr::StructField(field) => self.visit(&field.value),
                EntryExpr::MapEntry(entry) => {
                    self.visit(&entry.key);
                    self.visit(&entry.value);
                }
            }
        }
    }
}

/// The dotted name an identifier or a chain of field selections on one spells (`a.b.c`).
fn qualified_name(expression: &Expr) -> Option<String> {
    let mut segments = Vec::new();
    let mut expression = expression;
    loop {
        match expression {
            Expr::Ident(name) => {
                segments.push(name.as_str());
                segments.reverse();
                return Some(segments.join("."));
            }
            Expr::Select(select) if !select.test => {
                segments.push(select.field.as_str());
                expression = &select.operand.expr;
            }
            _ => return None,
        }
    }
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

impl CelProgram {
    /// Evaluates the program for an explanation: its value as JSON (CEL's debug form when it
    /// has none), or the evaluation error.
    pub(super) fn explain(&self, activation: &Activation) -> Result<String, String> {
        let value = self
            .program
            .execute(&activation.context)
            .map_err(|err| err.to_string())?;
        Ok(match value.json() {
            Ok(json) => json.to_string(),
            Err(_) => format!("{value:?}"),
        })
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
