//! `herald`: the Herald server. One binary, a subcommand per role (`ingest`, `dispatch`,
//! `control`), `all` for every role against an existing NATS, `dev` for an all-in-one local
//! Herald with its own nats-server, and `migrate`, which creates or updates the NATS streams
//! and buckets. Thin: parse flags, load settings, run the roles.

mod app;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::app::Roles;
use crate::settings::{Overrides, Settings};

/// EX_USAGE: the configuration is invalid.
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: a webhook and CloudEvents router on NATS JetStream"
)]
struct Cli {
    /// Configuration file (TOML), layered over the built-in defaults.
    #[arg(long, global = true, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    /// Log filter (RUST_LOG syntax), overrides log.filter.
    #[arg(long, global = true, env = "HERALD_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// All-in-one local Herald: starts its own nats-server, every role, loopback only, no auth.
    Dev(DevArgs),
    /// Every role in one process, against an existing NATS.
    All(RoleArgs),
    /// Edge ingest only: accepts CloudEvents over HTTP.
    Ingest(RoleArgs),
    /// Dispatcher only: delivers events to subscriptions' endpoints.
    Dispatch(RoleArgs),
    /// Control plane only: the gRPC API over subscriptions.
    Control(RoleArgs),
    /// Creates or updates the NATS streams and buckets to these settings, then exits; run it
    /// before starting or rolling out single roles, which only wait for them (`herald dev`,
    /// `herald all` and `startup.migrate = true` migrate at start too).
    Migrate(MigrateArgs),
}

#[derive(Args)]
struct MigrateArgs {
    /// NATS URL, overrides nats.url.
    #[arg(long)]
    nats_url: Option<String>,
}

#[derive(Args)]
struct RoleArgs {
    /// NATS URL, overrides nats.url.
    #[arg(long)]
    nats_url: Option<String>,
    /// Ingest listen address, overrides listen.ingest.
    #[arg(long)]
    ingest_listen: Option<String>,
    /// Control gRPC listen address, overrides listen.control.
    #[arg(long)]
    control_listen: Option<String>,
    /// Admin (health, metrics) listen address, overrides listen.admin.
    #[arg(long)]
    admin_listen: Option<String>,
}

#[derive(Args)]
struct DevArgs {
    #[command(flatten)]
    roles: RoleArgs,
    /// Where the dev nats-server keeps its data.
    #[arg(long, default_value = ".herald")]
    data_dir: PathBuf,
    /// Client port of the dev nats-server (0 picks a free one).
    #[arg(long, default_value_t = 4222)]
    nats_port: u16,
    /// nats-server configuration (durability profile) for the dev server.
    #[arg(long)]
    nats_config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut migrate = false;
    let (roles, role_args, dev) = match cli.command {
        Command::Dev(dev) => (
            Roles::ALL,
            dev.roles,
            Some((dev.data_dir, dev.nats_port, dev.nats_config)),
        ),
        Command::All(args) => (Roles::ALL, args, None),
        Command::Ingest(args) => (Roles::INGEST, args, None),
        Command::Dispatch(args) => (Roles::DISPATCH, args, None),
        Command::Control(args) => (Roles::CONTROL, args, None),
        Command::Migrate(args) => {
            migrate = true;
            let args = RoleArgs {
                nats_url: args.nats_url,
                ingest_listen: None,
                control_listen: None,
                admin_listen: None,
            };
            (Roles::NONE, args, None)
        }
    };
    let mut overrides = Overrides::default();
    overrides.set("nats", "url", role_args.nats_url);
    overrides.set("listen", "ingest", role_args.ingest_listen);
    overrides.set("listen", "control", role_args.control_listen);
    overrides.set("listen", "admin", role_args.admin_listen);
    overrides.set("log", "filter", cli.log);
    let settings = match Settings::load(dev.is_some(), cli.config.as_deref(), overrides, roles) {
        Ok(settings) => settings,
        Err(problems) => {
            report_config_error(&problems);
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let format = match settings.log.format.as_str() {
        "json" => herald_runtime::telemetry::LogFormat::Json,
        _ => herald_runtime::telemetry::LogFormat::Text,
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            report_start_error(&format!("failed to start the async runtime: {err}"));
            return ExitCode::FAILURE;
        }
    };
    // The OTLP gRPC exporter's channel lives on the runtime.
    let telemetry = {
        let _entered = runtime.enter();
        herald_runtime::telemetry::init(
            &settings.log.filter,
            format,
            &settings.telemetry,
            if migrate { "migrate" } else { roles.label() },
        )
    };
    let telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(err) => {
            report_config_error(&err.to_string());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let result = runtime.block_on(async move {
        match dev {
            Some((data_dir, nats_port, nats_config)) => {
                app::run_dev(settings, data_dir, nats_port, nats_config).await
            }
            None if migrate => app::migrate(&settings).await,
            None => Box::pin(app::run(settings, roles, None)).await,
        }
    });
    // Spans still queued are exported (bounded by the exporter's timeout).
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "herald failed");
            ExitCode::FAILURE
        }
    }
}

#[allow(
    clippy::print_stderr,
    reason = "configuration errors are reported before logging exists"
)]
fn report_config_error(problems: &str) {
    eprintln!("herald: invalid configuration: {problems}");
}

#[allow(
    clippy::print_stderr,
    reason = "the runtime failed before logging exists"
)]
fn report_start_error(problem: &str) {
    eprintln!("herald: {problem}");
}
