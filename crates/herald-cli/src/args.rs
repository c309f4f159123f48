//! Command-line arguments of `heraldctl`, declared with clap's derive API.

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Receive webhooks on a local port and print them, checking their signatures.
    Listen(ListenArgs),
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
    Create(CreateArgs),
    /// List every subscription.
    List,
    /// Show one subscription.
    Get {
        /// Subscription id (`sub_...`).
        id: String,
    },
    /// Change a subscription's sink, filters or description.
    Update(UpdateArgs),
    /// Delete a subscription.
    Delete {
        /// Subscription id (`sub_...`).
        id: String,
        /// Fail unless the subscription is still at this revision.
        #[arg(long)]
        expected_revision: Option<u64>,
    },
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
    /// Signing secret (`whsec_<base64>`); generated when absent.
    #[arg(long)]
    pub(crate) secret: Option<String>,
    /// Free text for operators.
    #[arg(long, default_value = "")]
    pub(crate) description: String,
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
