//! Command-line arguments of `heraldctl`, declared with clap's derive API.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

/// Operate Herald: manage subscriptions over the control-plane gRPC API, and receive webhooks
/// locally while developing.
#[derive(Debug, Parser)]
#[command(name = "heraldctl", version)]
pub(crate) struct Cli {
    /// Control-plane gRPC address.
    #[arg(
        long,
        global = true,
        env = "HERALD_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub(crate) server: String,
    /// Bearer token for the control plane.
    #[arg(long, global = true, env = "HERALD_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// PEM file with the CA that issued the control plane's certificate, for an `https://`
    /// server (without it, the system's trusted roots).
    #[arg(long, global = true, env = "HERALD_CA_FILE", value_name = "FILE")]
    pub(crate) ca_file: Option<PathBuf>,
    /// PEM file with a client certificate to present, for a control plane that requires one
    /// (`tls.control.client_ca_file`); with `--key`.
    #[arg(
        long,
        global = true,
        env = "HERALD_CLIENT_CERT",
        value_name = "FILE",
        requires = "key"
    )]
    pub(crate) cert: Option<PathBuf>,
    /// PEM file with the client certificate's private key; with `--cert`.
    #[arg(
        long,
        global = true,
        env = "HERALD_CLIENT_KEY",
        value_name = "FILE",
        requires = "cert"
    )]
    pub(crate) key: Option<PathBuf>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) output: OutputFormat,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Aligned columns and key/value lines, for people.
    Table,
    /// JSON with proto field names, for scripts.
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Manage subscriptions.
    #[command(subcommand)]
    Sub(SubCommand),
    /// Inspect messages producers published to NATS that Herald could not route.
    #[command(subcommand)]
    Rejected(RejectedCommand),
    /// Inspect and act on a subscription's dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Inspect the delivery attempt log.
    #[command(subcommand)]
    Attempts(AttemptsCommand),
    /// Show where one event stands for every subscription.
    Status(StatusArgs),
    /// Redeliver retained events matching a subscription's filters, from a time or a sequence.
    Replay(ReplayArgs),
    /// Receive webhooks on a local port and print them, checking their signatures.
    Listen(ListenArgs),
    /// Manage the event-type catalog: the types producers send, their versions and schemas.
    #[command(subcommand)]
    Types(TypesCommand),
    /// Manage producer keys: who may publish which events into which tenant (admin only).
    #[command(subcommand)]
    Key(crate::access::KeyCommand),
    /// Manage operator tokens: who may read or change which tenant's subscriptions (admin
    /// only).
    #[command(subcommand)]
    Token(crate::access::TokenCommand),
    /// Read the audit stream: every change made through the control plane (admin only).
    #[command(subcommand)]
    Audit(crate::access::AuditCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum TypesCommand {
    /// Register an event type with one version (or several, with --file).
    Create(TypeCreateArgs),
    /// List the registered event types.
    List,
    /// Show one event type with its versions, schemas and examples.
    Get {
        /// The event type (`com.example.order.created`).
        name: String,
    },
    /// Mark an event type deprecated; its events are still accepted, subscribing warns.
    Deprecate {
        /// The event type (`com.example.order.created`).
        name: String,
        /// Why, and what to use instead.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Write Markdown documentation of the catalog, to publish for the endpoints' owners.
    Docs {
        /// Write to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// Title of the document.
        #[arg(long, default_value = "Event types")]
        title: String,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("definition").required(true).args(["name", "file"])))]
pub(crate) struct TypeCreateArgs {
    /// The event type (`com.example.order.created`).
    pub(crate) name: Option<String>,
    /// A JSON Schema file for `data` (`-` for standard input).
    #[arg(long, value_name = "FILE", requires = "name")]
    pub(crate) schema: Option<std::path::PathBuf>,
    /// The version's name, matched against the `dataversion` extension.
    #[arg(long = "data-version", value_name = "VERSION", default_value = "1")]
    pub(crate) version: String,
    /// The `dataschema` URI events of this version carry.
    #[arg(long, value_name = "URI")]
    pub(crate) dataschema: Option<String>,
    /// An example payload file, valid against the schema; repeatable.
    #[arg(long, value_name = "FILE")]
    pub(crate) example: Vec<std::path::PathBuf>,
    #[arg(long, default_value = "")]
    pub(crate) description: String,
    /// Who to ask about the type.
    #[arg(long, default_value = "")]
    pub(crate) owner: String,
    /// The whole type as JSON instead: `{"name", "description", "owner", "versions":
    /// [{"version", "dataschema", "schema", "examples"}]}`.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "schema", "example"])]
    pub(crate) file: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RejectedCommand {
    /// List rejected messages, oldest first, with their reasons.
    List {
        /// Show at most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Start after this rejected-stream sequence (the SEQ column of a previous listing).
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum SubCommand {
    /// Create a subscription; prints its id and signing secret (shown only this once).
    Create(Box<CreateArgs>),
    /// List every subscription.
    List,
    /// Show one subscription.
    Get {
        /// Subscription id (`sub_...`).
        id: String,
    },
    /// Change a subscription's sink, filters, description, retry policy or delivery settings.
    Update(Box<UpdateArgs>),
    /// Delete a subscription.
    Delete {
        /// Subscription id (`sub_...`).
        id: String,
        /// Fail unless the subscription is still at this revision.
        #[arg(long)]
        expected_revision: Option<u64>,
    },
    /// Stop delivering; events accumulate until the subscription is resumed.
    Pause {
        /// Subscription id (`sub_...`).
        id: String,
    },
    /// Resume delivering, and reset the endpoint's health.
    Resume {
        /// Subscription id (`sub_...`).
        id: String,
    },
    /// Replace the signing secret; the old one keeps signing beside it for the overlap, so
    /// receivers can switch without losing a delivery. Prints the new secret (only this once).
    RotateSecret(RotateSecretArgs),
    /// Send one test event to the subscription now, signed as usual, whatever its filters or
    /// state, and show the endpoint's answer; it is recorded in the attempt log (outcome test).
    Test(TestArgs),
    /// Ask the endpoint for its consent again now (OPTIONS with WebHook-Request-Origin, and a
    /// new callback URL when configured) and show the answer; a pending subscription becomes
    /// active once the endpoint consents.
    Verify {
        /// Subscription id (`sub_...`).
        id: String,
    },
    /// Show, for one event, what each of a subscription's filters made of it and which decided.
    Explain {
        /// Subscription id (`sub_...`).
        id: String,
        /// A structured-mode CloudEvent in JSON, or `-` for standard input.
        #[arg(long, value_name = "FILE")]
        event: std::path::PathBuf,
    },
}

/// Retry policy flags; unset ones keep the current policy (on create: Herald's defaults).
#[derive(Debug, Default, Args)]
pub(crate) struct RetryArgs {
    /// Attempts in all, the first included.
    #[arg(long, value_name = "N")]
    pub(crate) max_attempts: Option<u32>,
    /// Fixed delays after each failed attempt, e.g. 1s,5s,1m; the last one repeats.
    #[arg(
        long,
        value_name = "DELAYS",
        value_delimiter = ',',
        value_parser = parse_duration,
        conflicts_with = "retry_exponential"
    )]
    pub(crate) retry_delays: Vec<Duration>,
    /// Exponential delays: INITIAL,MULTIPLIER,MAX, e.g. 1s,2,1h.
    #[arg(long, value_name = "INITIAL,MULTIPLIER,MAX", value_parser = parse_exponential)]
    pub(crate) retry_exponential: Option<Exponential>,
    /// Response codes that dead-letter an event at once, e.g. 400,404.
    #[arg(long, value_name = "CODES", value_delimiter = ',')]
    pub(crate) terminal_status: Vec<u16>,
    /// Events older than this are dead-lettered instead of retried, e.g. 1h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) max_age: Option<Duration>,
}

/// Delivery settings flags; unset ones keep the current settings (on create: the defaults, no
/// rate limit, the dispatcher's concurrency, unordered).
#[derive(Debug, Default, Args)]
pub(crate) struct DeliveryArgs {
    /// At most N events per second to the endpoint, or `none` to remove the limit.
    #[arg(long, value_name = "N|none", value_parser = parse_rate_limit)]
    pub(crate) rate_limit: Option<Limit>,
    /// Events that may be sent at once after a quiet period; the rate itself when not given
    /// with --rate-limit.
    #[arg(long, value_name = "N")]
    pub(crate) burst: Option<u32>,
    /// At most N requests to the endpoint at once, or `default` for the dispatcher's setting.
    #[arg(long, value_name = "N|default", value_parser = parse_max_in_flight)]
    pub(crate) max_in_flight: Option<Limit>,
    /// `key`: events with the same `partitionkey` extension are delivered one at a time, in
    /// order; `none`: no order.
    #[arg(long, value_enum)]
    pub(crate) ordering: Option<OrderingArg>,
    /// On an ordered subscription, whether a dead-lettered event blocks its key until it is
    /// redriven or purged (the default), or lets the key move on.
    #[arg(long, value_enum)]
    pub(crate) on_dead_letter: Option<OnDeadLetterArg>,
    /// How events are laid out in the request: `structured` (the default: the whole event as
    /// `application/cloudevents+json`) or `binary` (attributes as `ce-` headers, the data as the
    /// body with its own Content-Type).
    #[arg(long, value_enum)]
    pub(crate) content_mode: Option<ContentModeArg>,
    /// Split delivery into N parts (1, 2, 4, 8 or 16), each delivered by one dispatcher replica,
    /// so several replicas deliver a large subscription at once; its rate limit and max in
    /// flight are divided among the parts. Fixed at creation.
    #[arg(long, value_name = "N")]
    pub(crate) parts: Option<u32>,
}

/// A limit given as a number, or the word that removes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    At(u32),
    Removed,
}

/// Whether events are delivered in order, per `partitionkey`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OrderingArg {
    None,
    Key,
}

/// A Standard Webhooks signature scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SchemeArg {
    /// HMAC-SHA256 with a shared `whsec_` secret.
    V1,
    /// ed25519: receivers verify with the subscription's public key (`whpk_`).
    V1a,
}

#[derive(Debug, Args)]
pub(crate) struct RotateSecretArgs {
    /// Subscription id (`sub_...`).
    pub(crate) id: String,
    /// How long the old secret keeps signing beside the new one (0s: not at all).
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
    pub(crate) overlap: Duration,
    /// The new secret (`whsec_...` or `whsk_...`); generated when absent.
    #[arg(long)]
    pub(crate) secret: Option<String>,
    /// Scheme of the generated secret; the current one when absent.
    #[arg(long, value_enum)]
    pub(crate) scheme: Option<SchemeArg>,
    /// Fail unless the subscription is still at this revision.
    #[arg(long)]
    pub(crate) expected_revision: Option<u64>,
}

/// CloudEvents HTTP content mode of deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ContentModeArg {
    Structured,
    Binary,
}

/// What a dead letter does to its key on an ordered subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OnDeadLetterArg {
    Block,
    Skip,
}

/// An exponential backoff given as `INITIAL,MULTIPLIER,MAX`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Exponential {
    pub(crate) initial: Duration,
    pub(crate) multiplier: f64,
    pub(crate) max_delay: Duration,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// List a subscription's dead letters, oldest first.
    List {
        /// Subscription id (`sub_...`).
        subscription: String,
        /// Dead letters per page (at most 1000).
        #[arg(long, default_value_t = 100)]
        page_size: u32,
        /// Token from a previous page.
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Send dead letters back into delivery.
    Redrive(DlqSelection),
    /// Delete dead letters.
    Purge(DlqSelection),
}

/// Which dead letters of a subscription to act on.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("selection").required(true).args(["all", "sequences"])))]
pub(crate) struct DlqSelection {
    /// Subscription id (`sub_...`).
    pub(crate) subscription: String,
    /// Every dead letter of the subscription.
    #[arg(long)]
    pub(crate) all: bool,
    /// Dead letter sequences, as `dlq list` shows them.
    #[arg(value_name = "SEQ")]
    pub(crate) sequences: Vec<u64>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AttemptsCommand {
    /// List delivery attempts, oldest first.
    List(AttemptsListArgs),
}

#[derive(Debug, Default, Args)]
pub(crate) struct AttemptsListArgs {
    /// Only this subscription's attempts.
    #[arg(long)]
    pub(crate) subscription: Option<String>,
    /// Only this event's attempts.
    #[arg(long)]
    pub(crate) event: Option<String>,
    /// Only attempts with this outcome.
    #[arg(long, value_enum)]
    pub(crate) outcome: Option<OutcomeArg>,
    /// Only attempts started within this long, e.g. 1h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) since: Option<Duration>,
    /// Attempts per page (at most 1000).
    #[arg(long, default_value_t = 100)]
    pub(crate) page_size: u32,
    /// Token from a previous page.
    #[arg(long, default_value = "")]
    pub(crate) page_token: String,
}

/// An attempt outcome, as the attempt log names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutcomeArg {
    Delivered,
    Retry,
    Dead,
    Gone,
    /// Test sends (`sub test`).
    Test,
}

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    /// Subscription id (`sub_...`).
    pub(crate) id: String,
    /// The test event's type; `dev.herald.test` unless given.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) event_type: Option<String>,
    /// The test event's data, JSON text; a small object naming the subscription unless given.
    #[arg(long, value_name = "JSON")]
    pub(crate) data: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The event's id.
    pub(crate) event_id: String,
    /// The event's source, when several sources use the same id.
    #[arg(long)]
    pub(crate) source: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("from").required(true).args(["since", "from_time", "from_sequence"])))]
#[command(group(ArgGroup::new("to").args(["until_time", "until_sequence"])))]
pub(crate) struct ReplayArgs {
    /// Subscription id (`sub_...`).
    pub(crate) subscription: String,
    /// Replay events stored within this long, e.g. 1h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) since: Option<Duration>,
    /// Replay events stored at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) from_time: Option<time::OffsetDateTime>,
    /// Replay events from this stream sequence.
    #[arg(long, value_name = "N")]
    pub(crate) from_sequence: Option<u64>,
    /// Stop at events stored after this time (RFC 3339); default: the newest event now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub(crate) until_time: Option<time::OffsetDateTime>,
    /// Stop after this stream sequence.
    #[arg(long, value_name = "N")]
    pub(crate) until_sequence: Option<u64>,
}

/// Parses a human duration such as `5s`, `1m` or `1h 30m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|err| format!("`{text}`: {err}"))
}

/// Parses `INITIAL,MULTIPLIER,MAX`, e.g. `1s,2,1h`.
pub(crate) fn parse_exponential(text: &str) -> Result<Exponential, String> {
    let parts: Vec<&str> = text.split(',').map(str::trim).collect();
    let [initial, multiplier, max_delay] = parts.as_slice() else {
        return Err(format!(
            "`{text}`: expected INITIAL,MULTIPLIER,MAX, e.g. 1s,2,1h"
        ));
    };
    let multiplier = multiplier
        .parse::<f64>()
        .map_err(|_| format!("`{multiplier}`: the multiplier must be a number"))?;
    Ok(Exponential {
        initial: parse_duration(initial)?,
        multiplier,
        max_delay: parse_duration(max_delay)?,
    })
}

/// Parses `--rate-limit`: a number, or `none`.
pub(crate) fn parse_rate_limit(text: &str) -> Result<Limit, String> {
    parse_limit(text, "none")
}

/// Parses `--max-in-flight`: a number, or `default`.
pub(crate) fn parse_max_in_flight(text: &str) -> Result<Limit, String> {
    parse_limit(text, "default")
}

fn parse_limit(text: &str, removed: &str) -> Result<Limit, String> {
    let text = text.trim();
    if text == removed {
        return Ok(Limit::Removed);
    }
    text.parse::<u32>()
        .map(Limit::At)
        .map_err(|_| format!("`{text}`: expected a number or `{removed}`"))
}

/// Parses an RFC 3339 time such as `2025-01-02T03:04:05Z`.
pub(crate) fn parse_time(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|err| format!("`{text}` is not an RFC 3339 time: {err}"))
}

/// Filters given as flags; all of them must match an event.
#[derive(Debug, Default, Args)]
pub(crate) struct FilterArgs {
    /// Event type to deliver; repeat to accept any of several types.
    #[arg(long = "type", value_name = "TYPE")]
    pub(crate) types: Vec<String>,
    /// Event type prefix to deliver; repeat to accept any of several prefixes.
    #[arg(long = "type-prefix", value_name = "PREFIX")]
    pub(crate) type_prefixes: Vec<String>,
    /// Filter: a CESQL expression after `sql:` ('sql:source LIKE "/shop/%"'), a CEL expression
    /// after `cel:` ('cel:data.total > 100'), or the CloudEvents Subscriptions API JSON encoding
    /// ('{"exact":{"source":"/shop"}}'); repeatable.
    #[arg(long = "filter", value_name = "FILTER")]
    pub(crate) filters: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Where to deliver: an absolute http or https URL.
    #[arg(long)]
    pub(crate) sink: String,
    #[command(flatten)]
    pub(crate) filters: FilterArgs,
    /// Signing secret (`whsec_<base64>`, or `whsk_<base64>` for v1a); generated when absent.
    #[arg(long)]
    pub(crate) secret: Option<String>,
    /// Scheme of the generated secret: `v1` (HMAC, the default) or `v1a` (ed25519, with a
    /// public key for receivers; the signing key is generated here).
    #[arg(long, value_enum, conflicts_with = "secret")]
    pub(crate) scheme: Option<SchemeArg>,
    /// Free text for operators.
    #[arg(long, default_value = "")]
    pub(crate) description: String,
    #[command(flatten)]
    pub(crate) retry: RetryArgs,
    #[command(flatten)]
    pub(crate) delivery: DeliveryArgs,
    /// Ask the endpoint for consent before delivering (CloudEvents webhook handshake):
    /// `required` (nothing is delivered until it consents), `optional` (the default: asked,
    /// recorded, never waited for) or `off`.
    #[arg(long, value_enum)]
    pub(crate) consent: Option<ConsentArg>,
    /// The tenant it belongs to: an admin's choice (`default` when absent); a tenant's token
    /// creates in its own tenant.
    #[arg(long)]
    pub(crate) tenant: Option<String>,
    /// A custom header sent with every delivery, `'Name: value'` (an endpoint's API key, say);
    /// repeatable. Stored sealed like the secret; Herald shows its name only.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    #[command(flatten)]
    pub(crate) client_certificate: ClientCertificateArgs,
}

/// A client certificate for mutual TLS, read from PEM files: presented to an https endpoint
/// that asks for one.
#[derive(Debug, Default, Args)]
pub(crate) struct ClientCertificateArgs {
    /// PEM file of the client certificate (chain) deliveries present to an https endpoint that
    /// asks for one (mutual TLS); needs --client-key.
    #[arg(long = "client-cert", value_name = "PEM_FILE", requires = "client_key")]
    pub(crate) client_cert: Option<std::path::PathBuf>,
    /// PEM file of the client certificate's private key; stored sealed like the secret, never
    /// shown.
    #[arg(long = "client-key", value_name = "PEM_FILE", requires = "client_cert")]
    pub(crate) client_key: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    /// Subscription id (`sub_...`).
    pub(crate) id: String,
    /// New sink.
    #[arg(long)]
    pub(crate) sink: Option<String>,
    /// New description.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// New filters; any of --type, --type-prefix or --filter replaces all current filters.
    #[command(flatten)]
    pub(crate) filters: FilterArgs,
    /// Remove every filter, so every event is delivered.
    #[arg(long, conflicts_with_all = ["types", "type_prefixes", "filters"])]
    pub(crate) clear_filters: bool,
    /// Fail unless the subscription is still at this revision.
    #[arg(long)]
    pub(crate) expected_revision: Option<u64>,
    /// New retry settings; the ones not given keep their current values.
    #[command(flatten)]
    pub(crate) retry: RetryArgs,
    /// New delivery settings; the ones not given keep their current values.
    #[command(flatten)]
    pub(crate) delivery: DeliveryArgs,
    /// New consent mode: `required`, `optional` or `off`; turning it on asks the endpoint.
    #[arg(long, value_enum)]
    pub(crate) consent: Option<ConsentArg>,
    /// Adds a custom header, `'Name: value'`, or replaces the one of that name; repeatable.
    /// The other headers keep their values.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    /// Removes the custom header of this name; repeatable.
    #[arg(long = "remove-header", value_name = "NAME")]
    pub(crate) remove_headers: Vec<String>,
    /// Replaces the client certificate (or sets the first one).
    #[command(flatten)]
    pub(crate) client_certificate: ClientCertificateArgs,
    /// Removes the client certificate: deliveries present none.
    #[arg(long, conflicts_with_all = ["client_cert", "client_key"])]
    pub(crate) remove_client_cert: bool,
}

/// Whether the endpoint is asked for consent, and whether delivery waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ConsentArg {
    Required,
    Optional,
    Off,
}

#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    /// Port to listen on.
    #[arg(long, default_value_t = 9000)]
    pub(crate) port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) host: String,
    /// Signing secret (`whsec_<base64>`) to verify signatures with.
    #[arg(long, env = "HERALD_LISTEN_SECRET", hide_env_values = true)]
    pub(crate) secret: Option<String>,
}
