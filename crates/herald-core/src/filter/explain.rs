//! Explanations: what each filter of a subscription made of one event, for `heraldctl sub
//! explain`. The filters are evaluated exactly as [`CompiledFilters::matches`] evaluates them
//! (in order, stopping at the first deciding member, three-valued), and every filter, nested
//! ones included, reports its outcome, the value it evaluated and its error. No I/O.

use std::collections::BTreeMap;

use crate::event::Event;
use crate::filter::cel::Activation;
use crate::filter::compiled::{CompiledFilters, Evaluation, Node, Truth};
use crate::filter::sql;

/// What a subscription's filters made of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    /// Whether the event matches, as [`CompiledFilters::matches`] says.
    pub matched: bool,
    /// The top-level filter that decided a non-match (`filters[1]`): the first that did not
    /// match, else the first that failed to evaluate. `None` when the event matches.
    pub decided_by: Option<String>,
    /// Every filter, nested ones after their parent, in order.
    pub steps: Vec<Step>,
}

/// One filter's part in an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The filter's path, as validation names it (`filters[0].any[1]`).
    pub path: String,
    /// Its dialect (`exact`, `sql`, ...).
    pub dialect: &'static str,
    /// How deeply it is nested: 0 for a top-level filter.
    pub depth: usize,
    pub outcome: Outcome,
    /// What was evaluated: for `sql` and `cel` the expression's value as JSON, for `exact`,
    /// `prefix` and `suffix` the event's values of the named attributes as a JSON object
    /// (`null` when missing); `None` for compositions and skipped filters.
    pub value: Option<String>,
    /// The evaluation error of a `sql` or `cel` filter.
    pub error: Option<String>,
}

/// A filter's outcome on one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Matched,
    NotMatched,
    /// An expression failed to evaluate (or, for a composition, decided nothing because one
    /// did): never a match, not even under `not`.
    Unknown,
    /// Not evaluated: an earlier member of the same list decided.
    Skipped,
}

impl Outcome {
    /// Returns the outcome as heraldctl prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Matched => "matched",
            Outcome::NotMatched => "not matched",
            Outcome::Unknown => "unknown",
            Outcome::Skipped => "skipped",
        }
    }
}

impl From<Truth> for Outcome {
    fn from(truth: Truth) -> Outcome {
        match truth {
            Truth::True => Outcome::Matched,
            Truth::False => Outcome::NotMatched,
            Truth::Unknown => Outcome::Unknown,
        }
    }
}

impl CompiledFilters {
    /// Evaluates the filters on `event` as [`CompiledFilters::matches`] does, recording what
    /// each one made of it.
    pub fn explain(&self, event: &Event) -> Explanation {
        let mut explainer = Explainer {
            evaluation: Evaluation {
                event,
                reads_data: self.reads_data,
                activation: None,
                errors: Vec::new(),
            },
            steps: Vec::new(),
        };
        let mut decided_by = None;
        let mut first_unknown = None;
        let mut decided = false;
        for (index, node) in self.nodes.iter().enumerate() {
            let path = format!("filters[{index}]");
            if decided {
                explainer.skip(node, &path, 0);
                continue;
            }
            match explainer.node(node, &path, 0) {
                Truth::False => {
                    decided_by = Some(path);
                    decided = true;
                }
                Truth::Unknown => {
                    first_unknown.get_or_insert(path);
                }
                Truth::True => {}
            }
        }
        let decided_by = decided_by.or(first_unknown);
        Explanation {
            matched: decided_by.is_none(),
            decided_by,
            steps: explainer.steps,
        }
    }
}

struct Explainer<'e> {
    evaluation: Evaluation<'e>,
    steps: Vec<Step>,
}

impl Explainer<'_> {
    fn node(&mut self, node: &Node, path: &str, depth: usize) -> Truth {
        let index = self.steps.len();
        self.steps.push(Step {
            path: path.to_owned(),
            dialect: node.dialect(),
            depth,
            outcome: Outcome::Skipped,
            value: None,
            error: None,
        });
        let (truth, value, error) = match node {
            Node::Exact(pairs) | Node::Prefix(pairs) | Node::Suffix(pairs) => {
                let attributes = self.evaluation.event.attributes();
                let values: BTreeMap<&str, Option<String>> = pairs
                    .iter()
                    .map(|(name, _)| (name.as_str(), attributes.get(name).map(|v| v.into_owned())))
                    .collect();
                let truth = self.evaluation.node(node);
                let value = serde_json::to_string(&values).ok();
                (truth, value, None)
            }
            Node::All(nodes) | Node::Any(nodes) => {
                let is_all = matches!(node, Node::All(_));
                let deciding = if is_all { Truth::False } else { Truth::True };
                let mut result = if is_all { Truth::True } else { Truth::False };
                let mut decided = false;
                for (position, member) in nodes.iter().enumerate() {
                    let member_path = format!("{path}.{}[{position}]", node.dialect());
                    if decided {
                        self.skip(member, &member_path, depth + 1);
                        continue;
                    }
                    match self.node(member, &member_path, depth + 1) {
                        truth if truth == deciding => {
                            result = deciding;
                            decided = true;
                        }
                        Truth::Unknown => result = Truth::Unknown,
                        _ => {}
                    }
                }
                (result, None, None)
            }
            Node::Not(inner) => {
                let truth = match self.node(inner, &format!("{path}.not"), depth + 1) {
                    Truth::True => Truth::False,
                    Truth::False => Truth::True,
                    Truth::Unknown => Truth::Unknown,
                };
                (truth, None, None)
            }
            Node::Sql(expression) => {
                let (value, _) = sql::explain(expression, self.evaluation.event.attributes());
                let (truth, error) = self.leaf(node);
                (truth, Some(value), error)
            }
            Node::Cel(program) => {
                let (event, reads_data) = (self.evaluation.event, self.evaluation.reads_data);
                let activation = self
                    .evaluation
                    .activation
                    .get_or_insert_with(|| Activation::new(event, reads_data));
                let value = program.explain(activation).ok();
                let (truth, error) = self.leaf(node);
                (truth, value, error)
            }
        };
        if let Some(step) = self.steps.get_mut(index) {
            step.outcome = Outcome::from(truth);
            step.value = value;
            step.error = error;
        }
        truth
    }

    /// Evaluates a `sql` or `cel` leaf as matching does: its truth and its error, if any.
    fn leaf(&mut self, node: &Node) -> (Truth, Option<String>) {
        let errors_before = self.evaluation.errors.len();
        let truth = self.evaluation.node(node);
        let error = self
            .evaluation
            .errors
            .get(errors_before)
            .map(|error| error.message.clone());
        (truth, error)
    }

    /// Records `node` and everything under it as not evaluated.
    fn skip(&mut self, node: &Node, path: &str, depth: usize) {
        self.steps.push(Step {
            path: path.to_owned(),
            dialect: node.dialect(),
            depth,
            outcome: Outcome::Skipped,
            value: None,
            error: None,
        });
        match node {
            Node::All(nodes) | Node::Any(nodes) => {
                for (position, member) in nodes.iter().enumerate() {
                    self.skip(
                        member,
                        &format!("{path}.{}[{position}]", node.dialect()),
                        depth + 1,
                    );
                }
            }
            Node::Not(inner) => self.skip(inner, &format!("{path}.not"), depth + 1),
            Node::Exact(_) | Node::Prefix(_) | Node::Suffix(_) | Node::Sql(_) | Node::Cel(_) => {}
        }
    }
}
