//! docs/METRICS.md lists every metric Herald exports, with its type and labels: checked against
//! the metrics each crate declares in its `src/metrics.rs`, both ways, and against what the
//! roles' `Metrics::register` puts into a registry.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A metric as the table or the source describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Described {
    kind: String,
    labels: Vec<String>,
    process: String,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// The rows of docs/METRICS.md's table, by metric name.
fn documented() -> BTreeMap<String, Described> {
    let text = std::fs::read_to_string(workspace_root().join("docs/METRICS.md"))
        .expect("docs/METRICS.md should exist");
    let mut rows = BTreeMap::new();
    for line in text.lines().filter(|line| line.starts_with("| `herald_")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        assert_eq!(cells.len(), 6, "a row has six cells: {line}");
        let name = cells[0].trim_matches('`').to_owned();
        let labels = cells[2]
            .split(',')
            .map(|label| label.trim().trim_matches('`').to_owned())
            .filter(|label| !label.is_empty())
            .collect();
        assert!(!cells[3].is_empty(), "{name} needs a unit");
        assert!(!cells[5].is_empty(), "{name} needs a meaning");
        let described = Described {
            kind: cells[1].to_owned(),
            labels,
            process: cells[4].to_owned(),
        };
        assert!(
            rows.insert(name.clone(), described).is_none(),
            "{name} is listed twice"
        );
    }
    assert!(rows.len() >= 20, "the table should be found, got {rows:?}");
    rows
}

/// The process a crate's metrics are exported by.
fn process_of(crate_name: &str) -> Option<&'static str> {
    match crate_name {
        "herald-ingest" => Some("ingest"),
        "herald-dispatcher" => Some("dispatch"),
        "herald-control" => Some("control"),
        _ => None,
    }
}

/// Every metric declared in a `crates/*/src/metrics.rs`: its name (the first argument of its
/// constructor), the constructor's kind and the label list that follows it.
fn declared() -> BTreeMap<String, Described> {
    let mut metrics = BTreeMap::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("crates"))
        .unwrap()
        .flatten()
        .map(|entry| entry.path())
        .collect();
    entries.sort();
    for dir in entries {
        let path = dir.join("src/metrics.rs");
        let Ok(source) = std::fs::read_to_string(&path) else {
            continue;
        };
        let crate_name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let process = process_of(&crate_name).unwrap_or_else(|| {
            panic!("{crate_name} declares metrics: say which process exports them")
        });
        let mut rest = source.as_str();
        while let Some(start) = rest.find("\"herald_") {
            let before = &rest[..start];
            let after = &rest[start + 1..];
            let end = after.find('"').unwrap();
            let name = after[..end].to_owned();
            let after_name = &after[end + 1..];
            let kind = kind_of(before, &name);
            // Labels: the first `&[...]` before the next metric or registration, if any.
            let next = ["\"herald_", "registry"]
                .iter()
                .filter_map(|marker| after_name.find(marker))
                .min()
                .unwrap_or(after_name.len());
            let labels = match after_name[..next].find("&[") {
                Some(open) => {
                    let list = &after_name[open + 2..];
                    let close = list.find(']').unwrap();
                    list[..close]
                        .split(',')
                        .map(|label| label.trim().trim_matches('"').to_owned())
                        .filter(|label| !label.is_empty())
                        .collect()
                }
                None => Vec::new(),
            };
            let described = Described {
                kind,
                labels,
                process: process.to_owned(),
            };
            assert!(
                metrics.insert(name.clone(), described).is_none(),
                "{name} is declared twice"
            );
            rest = after_name;
        }
    }
    metrics
}

/// The kind of the metric whose name follows `before`: its nearest constructor.
fn kind_of(before: &str, name: &str) -> String {
    let constructors = [
        ("IntCounterVec::new(", "counter"),
        ("IntCounter::new(", "counter"),
        ("CounterVec::new(", "counter"),
        ("Counter::new(", "counter"),
        ("IntGaugeVec::new(", "gauge"),
        ("IntGauge::new(", "gauge"),
        ("GaugeVec::new(", "gauge"),
        ("Gauge::new(", "gauge"),
        ("HistogramVec::new(", "histogram"),
        ("Histogram::with_opts(", "histogram"),
    ];
    constructors
        .iter()
        .filter_map(|(constructor, kind)| before.rfind(constructor).map(|at| (at, *kind)))
        .max()
        .map(|(_, kind)| kind.to_owned())
        .unwrap_or_else(|| panic!("{name}: no metric constructor before it"))
}

#[test]
fn the_metrics_table_lists_every_declared_metric_and_nothing_else() {
    let documented = documented();
    let declared = declared();
    let undocumented: Vec<&String> = declared
        .keys()
        .filter(|name| !documented.contains_key(*name))
        .collect();
    assert!(
        undocumented.is_empty(),
        "add these to docs/METRICS.md: {undocumented:?}"
    );
    let gone: Vec<&String> = documented
        .keys()
        .filter(|name| !declared.contains_key(*name))
        .collect();
    assert!(
        gone.is_empty(),
        "docs/METRICS.md lists metrics no crate declares: {gone:?}"
    );
    for (name, declared) in &declared {
        assert_eq!(
            &documented[name], declared,
            "docs/METRICS.md's row of {name}"
        );
    }
}

#[test]
fn every_registered_metric_is_declared_and_documented() {
    let registry = prometheus::Registry::new();
    herald_ingest::Metrics::register(&registry).unwrap();
    herald_dispatcher::Metrics::register(&registry).unwrap();
    herald_control::Metrics::register(&registry).unwrap();
    let documented = documented();
    let declared = declared();
    let families = registry.gather();
    // Families without labels are gathered as registered; labelled ones only once a series
    // exists, which the declaration scan covers.
    assert!(!families.is_empty());
    for family in families {
        let name = family.name();
        assert!(
            declared.contains_key(name),
            "{name} is registered but not found in a metrics.rs"
        );
        let kind = match family.get_field_type() {
            prometheus::proto::MetricType::COUNTER => "counter",
            prometheus::proto::MetricType::GAUGE => "gauge",
            prometheus::proto::MetricType::HISTOGRAM => "histogram",
            other => panic!("{name}: unexpected type {other:?}"),
        };
        assert_eq!(
            documented[name].kind, kind,
            "{name}'s type in docs/METRICS.md"
        );
    }
}
