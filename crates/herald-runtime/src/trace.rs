//! Between Herald's carried trace context ([`herald_core::trace::TraceContext`]) and `tracing`
//! spans: a span continues the context it was handed, and a span's own context is what Herald
//! stores or sends on.
//!
//! When spans are not exported (no OpenTelemetry layer), a span has no context of its own, and
//! the context handed in is passed on unchanged, so a producer's trace still reaches the
//! endpoint.

use std::collections::HashMap;

use herald_core::trace::{self, TraceContext};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Makes `span` a child of `parent`'s span (when spans are exported).
pub fn continue_trace(span: &tracing::Span, parent: Option<&TraceContext>) {
    let Some(parent) = parent else {
        return;
    };
    let mut carrier = HashMap::new();
    carrier.insert(
        trace::TRACEPARENT.to_owned(),
        parent.traceparent().to_owned(),
    );
    if let Some(state) = parent.tracestate() {
        carrier.insert(trace::TRACESTATE.to_owned(), state.to_owned());
    }
    let context = TraceContextPropagator::new().extract(&carrier);
    // Fails only when no OpenTelemetry layer is installed: nothing is exported then.
    let _ = span.set_parent(context);
}

/// The context to store or send on for work done in `span`: the span's own when spans are
/// exported, otherwise `handed` unchanged.
pub fn context_of(span: &tracing::Span, handed: Option<TraceContext>) -> Option<TraceContext> {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return handed;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    let parent = carrier.get(trace::TRACEPARENT)?;
    TraceContext::parse(parent, carrier.get(trace::TRACESTATE).map(String::as_str)).or(handed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_exported_spans_the_handed_context_passes_through() {
        let handed = TraceContext::parse(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            None,
        );
        let span = tracing::info_span!("ingest");
        continue_trace(&span, handed.as_ref());
        assert_eq!(context_of(&span, handed.clone()), handed);
        assert_eq!(context_of(&span, None), None);
    }
}
