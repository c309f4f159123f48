//! The process configuration: one TOML document with a section per role, layered from the
//! compiled-in defaults, the dev profile, `--config FILE`, `HERALD_*` environment variables and
//! flags, and validated once.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Deserialize;

use herald_core::network::{Network, NetworkPolicy};
use herald_runtime::tls::{ServerTls, TlsConfig};

use crate::app::Roles;

const DEFAULTS: &str = include_str!("herald.default.toml");
const DEV_PROFILE: &str = include_str!("dev.toml");

/// Everything the process reads at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    pub(crate) nats: herald_nats::Config,
    /// Credentials and TLS of the NATS connection; a section of its own so that
    /// `herald_nats::Config`'s literal users are unaffected.
    #[serde(default)]
    pub(crate) nats_connection: herald_nats::ConnectOptions,
    pub(crate) network: NetworkSettings,
    pub(crate) secrets: SecretsSettings,
    pub(crate) listen: ListenSettings,
    /// TLS of the ingest and control listeners; off while a listener's section is absent.
    #[serde(default)]
    pub(crate) tls: TlsSettings,
    pub(crate) ingest: herald_ingest::Config,
    /// How ingest checks events against the event-type catalog; a section of its own so that
    /// `herald_ingest::Config`'s literal users are unaffected.
    pub(crate) catalog: herald_ingest::CatalogConfig,
    pub(crate) dispatcher: herald_dispatcher::Config,
    pub(crate) control: herald_control::Config,
    /// How Herald asks endpoints for consent (control) and serves their callbacks (ingest); a
    /// section of its own so that `herald_control::Config`'s literal users are unaffected.
    #[serde(default)]
    pub(crate) consent: herald_control::ConsentConfig,
    /// The control role's per-subscription gauges; a section of its own so that
    /// `herald_control::Config`'s literal users are unaffected.
    pub(crate) subscription_metrics: herald_control::SubscriptionMetricsConfig,
    pub(crate) log: LogSettings,
    pub(crate) telemetry: herald_runtime::telemetry::TelemetryConfig,
    pub(crate) startup: StartupSettings,
    pub(crate) shutdown: ShutdownSettings,
}

/// How a process gets its NATS streams and buckets: made by `herald migrate`, or by itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartupSettings {
    /// Create or update the streams and buckets at start, as `herald migrate` does; unset:
    /// `herald dev` and `herald all` do, single roles do not.
    #[serde(default)]
    pub(crate) migrate: Option<bool>,
    /// How long a process that does not migrate waits for the streams and buckets.
    #[serde(with = "humantime_serde")]
    pub(crate) topology_wait: std::time::Duration,
}

/// How a process stops on SIGTERM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShutdownSettings {
    /// How long ingest and control keep serving, not ready, before they stop accepting.
    #[serde(with = "humantime_serde")]
    pub(crate) pre_stop_delay: std::time::Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkSettings {
    pub(crate) allow_loopback: bool,
    pub(crate) allow_private: bool,
    /// Networks (CIDR) delivery may reach whatever their range, cloud metadata excepted.
    pub(crate) allow: Vec<Network>,
}

/// Key-encryption keys that seal signing secrets, header values and sinks in the subscriptions
/// bucket.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SecretsSettings {
    /// `ID:BASE64` entries (32-byte keys); the first seals, every one opens.
    pub(crate) keys: Vec<String>,
}

impl std::fmt::Debug for SecretsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretsSettings")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// The key-encryption key of `herald dev` when `secrets.keys` is empty: fixed and published
/// here, so it protects nothing; it only keeps dev mode on the same code path as production.
const DEV_KEK: &str = "dev:ZGV2LW1vZGUta2V5LW5vdC1hLXNlY3JldC0wMDAwMDA=";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListenSettings {
    pub(crate) ingest: SocketAddr,
    pub(crate) control: SocketAddr,
    pub(crate) admin: SocketAddr,
}

/// TLS of the listeners: `[tls.ingest]` and `[tls.control]`, each with its certificate and key
/// files and, optionally, the CA that client certificates must chain to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSettings {
    #[serde(default)]
    pub(crate) ingest: Option<TlsConfig>,
    #[serde(default)]
    pub(crate) control: Option<TlsConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogSettings {
    pub(crate) filter: String,
    pub(crate) format: String,
}

/// Flag values that override the configuration (`None` when not given).
#[derive(Debug, Default, serde::Serialize)]
pub(crate) struct Overrides {
    #[serde(skip_serializing_if = "serde_json::Map::is_empty")]
    pub(crate) values: serde_json::Map<String, serde_json::Value>,
}

impl Overrides {
    /// Sets `section.key` when `value` is given.
    pub(crate) fn set(&mut self, section: &str, key: &str, value: Option<String>) {
        let Some(value) = value else {
            return;
        };
        let entry = self
            .values
            .entry(section.to_owned())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if let serde_json::Value::Object(map) = entry {
            map.insert(key.to_owned(), serde_json::Value::String(value));
        }
    }
}

impl Settings {
    /// Loads and validates the settings of the roles this process runs; the error lists every
    /// problem.
    pub(crate) fn load(
        dev: bool,
        file: Option<&Path>,
        overrides: Overrides,
        roles: Roles,
    ) -> Result<Settings, String> {
        let mut figment = Figment::new().merge(Toml::string(DEFAULTS));
        if dev {
            figment = figment.merge(Toml::string(DEV_PROFILE));
        }
        if let Some(file) = file {
            if !file.is_file() {
                return Err(format!("config file {} does not exist", file.display()));
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            // Only nested keys (HERALD_NATS__URL) are settings; HERALD_NATS_SERVER and friends
            // belong to other tools.
            .merge(
                Env::prefixed("HERALD_")
                    .filter(|key| key.as_str().contains("__"))
                    .split("__"),
            )
            .merge(Serialized::defaults(overrides.values));
        let mut settings: Settings = figment.extract().map_err(|err| err.to_string())?;
        let mut problems = Vec::new();
        if dev && settings.secrets.keys.is_empty() {
            settings.secrets.keys.push(DEV_KEK.to_owned());
        }
        if roles.dispatch || roles.control {
            problems.extend(secrets_problem(&settings.secrets));
        }
        problems.extend(settings.nats_connection.problems("nats_connection"));
        if roles.ingest {
            problems.extend(tls_problems("tls.ingest", settings.tls.ingest.as_ref()));
            problems.extend(settings.ingest.problems());
            if !dev {
                problems.extend(auth_disabled_problem(
                    "ingest",
                    settings.ingest.auth.disabled,
                ));
            }
        }
        if roles.dispatch {
            problems.extend(settings.dispatcher.problems());
        }
        if roles.control {
            problems.extend(tls_problems("tls.control", settings.tls.control.as_ref()));
            problems.extend(settings.control.problems());
            problems.extend(settings.consent.problems());
            problems.extend(settings.subscription_metrics.problems());
            if !dev {
                problems.extend(auth_disabled_problem(
                    "control",
                    settings.control.auth.disabled,
                ));
            }
        }
        if !matches!(settings.log.format.as_str(), "text" | "json") {
            problems.push("log.format must be \"text\" or \"json\"".to_owned());
        }
        if problems.is_empty() {
            Ok(settings)
        } else {
            Err(problems.join("; "))
        }
    }

    /// Returns the keyring that seals subscription secrets; `None` when no key is configured
    /// (only possible for a process running ingest alone, which never reads them).
    pub(crate) fn keyring(&self) -> Option<herald_signing::kek::Keyring> {
        herald_signing::kek::Keyring::parse(&self.secrets.keys).ok()
    }

    pub(crate) fn network_policy(&self) -> NetworkPolicy {
        NetworkPolicy::new(self.network.allow_loopback, self.network.allow_private)
            .with_allowed(self.network.allow.clone())
    }
}

/// Returns why the key-encryption keys are unusable: missing (outside dev mode, which has its
/// own) or malformed. Roles that read or write subscriptions need them.
fn secrets_problem(secrets: &SecretsSettings) -> Option<String> {
    if secrets.keys.is_empty() {
        return Some(
            "secrets.keys is required outside dev mode: set HERALD_SECRETS__KEYS to a JSON list \
             of key-encryption keys, `[\"ID:BASE64\"]` with 32 random bytes (`openssl rand \
             -base64 32`), the one that seals first"
                .to_owned(),
        );
    }
    herald_signing::kek::Keyring::parse(&secrets.keys)
        .err()
        .map(|err| format!("secrets.keys: {err}"))
}

/// Returns why a listener's TLS settings are unusable: the certificate, key or client CA
/// does not load (missing, unreadable, not PEM, a key that does not match), or the reload
/// interval is zero. Loading them is the check, so a start never fails later on a file.
fn tls_problems(section: &str, config: Option<&TlsConfig>) -> Vec<String> {
    let Some(config) = config else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    if config.reload_interval.is_zero() {
        problems.push(format!("{section}.reload_interval must be positive"));
    }
    if let Err(err) = ServerTls::load(config, &[]) {
        problems.push(format!("{section}: {err}"));
    }
    problems
}

/// Returns why `<section>.auth.disabled` is refused outside dev mode, whatever the listen
/// address: an API without authentication is only for `herald dev`. A loopback listener is no
/// exception, since every local user and process (a sidecar, a port forward, a proxy) reaches it;
/// local tests and benchmarks configure tokens like any deployment.
fn auth_disabled_problem(section: &str, disabled: bool) -> Option<String> {
    if !disabled {
        return None;
    }
    let variable = format!("HERALD_{}__AUTH__API_TOKENS", section.to_ascii_uppercase());
    Some(format!(
        "{section}.auth.disabled is only for dev mode, whatever listen.{section} is: remove it \
         and set {variable} (a JSON list of tokens, 16+ characters each), or run `herald dev`"
    ))
}
