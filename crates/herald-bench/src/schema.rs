//! The event-type catalog's cost per event: a timing loop of `CompiledCatalog::check` (what
//! ingest runs for every event of a registered type) on a 1 KiB structured-mode event whose
//! `data` satisfies a schema of the kind a provider registers (an object with required fields,
//! string formats and lengths, number bounds, an array of line items), beside the same loop
//! without the check. The target is under 10 µs per event.
//!
//! One thread: ingest checks each event on the request's task. Schemas are compiled once, before
//! the loop, as ingest compiles them once per catalog revision.

use std::hint::black_box;
use std::time::Instant;

use bytes::Bytes;
use serde_json::json;

use herald_core::Event;
use herald_core::catalog::{CompiledCatalog, EventType, Verdict, Version};

/// What the timing loops measured, the best of several rounds each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchemaCost {
    /// Nanoseconds per `check` of one event.
    pub(crate) check_ns: f64,
    /// Size of the structured event checked, in bytes.
    pub(crate) event_bytes: usize,
    /// Checks that did not answer `Valid` (should be none).
    pub(crate) refused: u64,
    pub(crate) iterations: u64,
}

/// Times `rounds` rounds of `iterations` checks; keeps the fastest round.
pub(crate) fn measure(iterations: u64, rounds: u32) -> anyhow::Result<SchemaCost> {
    let (catalog, errors) = CompiledCatalog::compile([&order_type()]);
    anyhow::ensure!(
        errors.is_empty(),
        "the benchmark schema should compile: {errors:?}"
    );
    let event = Event::from_structured(Bytes::from(order_event()))?;
    anyhow::ensure!(
        catalog.check(&event) == Verdict::Valid,
        "the benchmark event should be valid"
    );
    let mut best = SchemaCost {
        check_ns: f64::MAX,
        event_bytes: event.structured().len(),
        refused: 0,
        iterations,
    };
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        for _ in 0..iterations {
            if black_box(&catalog).check(black_box(&event)) != Verdict::Valid {
                best.refused += 1;
            }
        }
        let check_ns = started.elapsed().as_nanos() as f64 / iterations.max(1) as f64;
        best.check_ns = best.check_ns.min(check_ns);
    }
    Ok(best)
}

/// Measures and prints the result as one JSON line.
pub(crate) fn run(quick: bool) -> anyhow::Result<()> {
    let (iterations, rounds) = if quick { (2_000, 3) } else { (20_000, 7) };
    let cost = measure(iterations, rounds)?;
    crate::report::emit(&json!({
        "benchmark": "schema_validation",
        "event_bytes": cost.event_bytes,
        "check_us_per_event": cost.check_ns / 1000.0,
        "target_us": 10,
        "refused": cost.refused,
        "iterations": cost.iterations,
    }));
    crate::report::note(&format!(
        "schema validation: {:.2} µs per {}-byte event (target < 10 µs)",
        cost.check_ns / 1000.0,
        cost.event_bytes
    ));
    Ok(())
}

fn order_type() -> EventType {
    EventType {
        name: "com.shop.order.created".to_owned(),
        description: String::new(),
        owner: String::new(),
        versions: vec![Version {
            version: "1".to_owned(),
            dataschema: None,
            schema: json!({
                "type": "object",
                "required": ["order_id", "customer", "currency", "total", "items"],
                "properties": {
                    "order_id": {"type": "string", "pattern": "^ord_[0-9a-z]{12}$"},
                    "customer": {
                        "type": "object",
                        "required": ["id", "email"],
                        "properties": {
                            "id": {"type": "string", "minLength": 1, "maxLength": 64},
                            "email": {"type": "string", "maxLength": 254},
                            "name": {"type": "string"}
                        }
                    },
                    "currency": {"enum": ["EUR", "USD", "GBP"]},
                    "total": {"type": "number", "minimum": 0},
                    "note": {"type": "string", "maxLength": 1000},
                    "items": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["sku", "quantity", "price"],
                            "properties": {
                                "sku": {"type": "string", "minLength": 1},
                                "quantity": {"type": "integer", "minimum": 1},
                                "price": {"type": "number", "minimum": 0}
                            },
                            "additionalProperties": false
                        }
                    }
                }
            }),
            examples: Vec::new(),
        }],
        deprecated: None,
    }
}

/// A structured event of about 1 KiB.
fn order_event() -> String {
    let items: Vec<serde_json::Value> = (0..8)
        .map(|index| json!({"sku": format!("sku-{index:04}"), "quantity": index + 1, "price": 9.5}))
        .collect();
    let event = json!({
        "specversion": "1.0",
        "id": "order-1",
        "source": "/shop/eu",
        "type": "com.shop.order.created",
        "datacontenttype": "application/json",
        "data": {
            "order_id": "ord_0123456789ab",
            "customer": {"id": "cus_42", "email": "someone@example.com", "name": "Some One"},
            "currency": "EUR",
            "total": 418.0,
            "note": "Leave the parcel at the door, please; ring twice. ".repeat(8),
            "items": items
        }
    });
    event.to_string()
}
