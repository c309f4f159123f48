//! Logging and tracing setup: `tracing` to stderr, human-readable or JSON, filtered by
//! `RUST_LOG` syntax; and, when an OTLP endpoint is configured, every span exported over
//! OpenTelemetry OTLP as well.
//!
//! OTLP export is off by default and configured the way every OpenTelemetry SDK is: setting
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (a base URL) or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used
//! verbatim) turns it on, `OTEL_EXPORTER_OTLP_PROTOCOL` chooses `grpc` or `http/protobuf` (the
//! default), and `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)` and
//! `OTEL_BSP_*` are read by the SDK itself. The `[telemetry]` section says the same for those
//! who prefer a file; the environment wins. Spans are exported in batches from the SDK's own
//! thread with a bounded queue, so a slow or dead collector drops spans, never slows delivery.
//!
//! The W3C trace-context propagator is installed whether or not export is on, so a producer's
//! `traceparent` is carried through Herald to the endpoint in any case.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde::Deserialize;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The spans exported over OTLP: ingest's request span and each delivery attempt's.
const EXPORTED_SPANS: [&str; 2] = ["ingest", "delivery"];

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The `[telemetry]` settings; every field may be empty, and the `OTEL_*` environment wins.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP base URL (as `OTEL_EXPORTER_OTLP_ENDPOINT`); empty: export only if the environment
    /// names an endpoint.
    #[serde(default)]
    pub otlp_endpoint: String,
    /// `grpc` or `http/protobuf` (as `OTEL_EXPORTER_OTLP_PROTOCOL`); empty: `http/protobuf`.
    #[serde(default)]
    pub otlp_protocol: String,
    /// `service.name` of the exported spans (as `OTEL_SERVICE_NAME`); empty: `herald`.
    #[serde(default)]
    pub service_name: String,
}

/// Why OTLP export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry.otlp_protocol: `{0}` is neither `grpc` nor `http/protobuf`")]
    Protocol(String),
    #[error("failed to build the OTLP exporter: {0}")]
    Exporter(String),
}

/// Installed telemetry; [`Telemetry::shutdown`] exports what is still queued.
#[must_use = "spans still queued are exported by shutdown"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// True when spans are exported over OTLP.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the exporter (bounded by the SDK's export timeout).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            tracing::debug!(error = %err, "the span exporter did not shut down cleanly");
        }
    }
}

/// Where and how spans are exported, once the environment and the settings are combined.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Export {
    grpc: bool,
    /// An endpoint from the settings, when the environment names none.
    endpoint: Option<String>,
    service_name: Option<String>,
}

fn export_of(
    config: &TelemetryConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<Export>, TelemetryError> {
    let set = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|value| value.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let env_endpoint = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .or_else(|| set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        .is_some();
    let configured = !config.otlp_endpoint.trim().is_empty();
    if !env_endpoint && !configured {
        return Ok(None);
    }
    let protocol = set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| set("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| config.otlp_protocol.trim().to_owned());
    let grpc = match protocol.as_str() {
        "grpc" => true,
        "" | "http/protobuf" => false,
        other => return Err(TelemetryError::Protocol(other.to_owned())),
    };
    let endpoint = (!env_endpoint).then(|| {
        let base = config.otlp_endpoint.trim().trim_end_matches('/');
        // Like OTEL_EXPORTER_OTLP_ENDPOINT, a base URL: HTTP appends the signal's path.
        if grpc {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        }
    });
    let service_name =
        set("OTEL_SERVICE_NAME")
            .is_none()
            .then(|| match config.service_name.trim() {
                "" => "herald".to_owned(),
                name => name.to_owned(),
            });
    Ok(Some(Export {
        grpc,
        endpoint,
        service_name,
    }))
}

fn provider(export: &Export, role: &str) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = if export.grpc {
        let mut builder = builder.with_tonic();
        if let Some(endpoint) = &export.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        builder.build()
    } else {
        let mut builder = builder.with_http();
        if let Some(endpoint) = &export.endpoint {
            builder = builder.with_endpoint(endpoint.clone());
        }
        builder.build()
    }
    .map_err(|err| TelemetryError::Exporter(err.to_string()))?;
    let mut resource = opentelemetry_sdk::Resource::builder()
        .with_attribute(opentelemetry::KeyValue::new("herald.role", role.to_owned()));
    if let Some(name) = &export.service_name {
        resource = resource.with_service_name(name.clone());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Installs the global `tracing` subscriber (logs, and OTLP export when configured) and the
/// W3C trace-context propagator. Must run inside a Tokio runtime (the gRPC exporter's channel
/// lives on it). Calling it twice keeps the first subscriber.
pub fn init(
    filter: &str,
    format: LogFormat,
    config: &TelemetryConfig,
    role: &str,
) -> Result<Telemetry, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let export = export_of(config, |name| std::env::var(name).ok())?;
    let provider = export
        .as_ref()
        .map(|export| provider(export, role))
        .transpose()?;
    // Exported: Herald's request and attempt spans, whatever the log filter says; no log
    // records, no other crate's spans.
    let otel = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("herald"))
            .with_filter(
                tracing_subscriber::filter::filter_fn(|metadata| {
                    metadata.is_span()
                        && metadata.target().starts_with("herald_")
                        && EXPORTED_SPANS.contains(&metadata.name())
                })
                .with_max_level_hint(tracing::Level::INFO),
            )
    });
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.with_filter(filter).boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).with_filter(filter).boxed(),
    };
    let result = tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init();
    // A second call (tests starting several roles) keeps the subscriber already installed.
    drop(result);
    if let Some(export) = &export {
        tracing::info!(
            protocol = if export.grpc { "grpc" } else { "http/protobuf" },
            "exporting traces over OTLP"
        );
    }
    Ok(Telemetry { provider })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    }

    #[test]
    fn export_is_off_unless_an_endpoint_is_named() {
        let config = TelemetryConfig::default();
        assert_eq!(export_of(&config, env(&[])).unwrap(), None);
        let on = export_of(
            &config,
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]),
        )
        .unwrap()
        .unwrap();
        assert!(!on.grpc, "http/protobuf is the default protocol");
        assert_eq!(
            on.endpoint, None,
            "the SDK reads the environment's endpoint"
        );
        assert_eq!(on.service_name.as_deref(), Some("herald"));
        let disabled = export_of(
            &config,
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_SDK_DISABLED", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(disabled, None);
    }

    #[test]
    fn the_environment_wins_over_the_settings() {
        let config = TelemetryConfig {
            otlp_endpoint: "http://file:4317/".to_owned(),
            otlp_protocol: "grpc".to_owned(),
            service_name: "from-file".to_owned(),
        };
        let from_file = export_of(&config, env(&[])).unwrap().unwrap();
        assert!(from_file.grpc);
        assert_eq!(from_file.endpoint.as_deref(), Some("http://file:4317"));
        assert_eq!(from_file.service_name.as_deref(), Some("from-file"));
        let from_env = export_of(
            &config,
            env(&[
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://env:4318/v1/traces",
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_SERVICE_NAME", "from-env"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert!(!from_env.grpc);
        assert_eq!(from_env.endpoint, None);
        assert_eq!(
            from_env.service_name, None,
            "the SDK reads OTEL_SERVICE_NAME"
        );
        let http_file = TelemetryConfig {
            otlp_protocol: String::new(),
            ..config
        };
        assert_eq!(
            export_of(&http_file, env(&[]))
                .unwrap()
                .unwrap()
                .endpoint
                .as_deref(),
            Some("http://file:4317/v1/traces"),
            "an HTTP base URL gets the traces path"
        );
    }

    #[test]
    fn an_unknown_protocol_is_refused_by_name() {
        let config = TelemetryConfig {
            otlp_endpoint: "http://c:4318".to_owned(),
            otlp_protocol: "http/json".to_owned(),
            ..TelemetryConfig::default()
        };
        let err = export_of(&config, env(&[])).unwrap_err();
        assert!(err.to_string().contains("telemetry.otlp_protocol"), "{err}");
    }
}
