//! Runs the selected roles in one process and stops them together.
//!
//! Start: the admin listener first (`/livez` answers, `/readyz` does not yet), then NATS with
//! its streams and buckets, migrated here only by `herald dev` and `herald all` (or with
//! `startup.migrate`), otherwise made by `herald migrate` and waited for; then the roles.
//!
//! Shutdown, bounded: readiness flips to not-ready; ingest and control serve on for
//! `shutdown.pre_stop_delay` while load balancers drain the process; then every role stops at
//! once within one grace period (ingest finishes requests in flight, each waiting for its
//! publish acknowledgement; the dispatcher stops pulling and lets attempts in flight finish;
//! control ends its replays and its calls); the NATS connection drains; finally the admin
//! listener and, in dev mode, the nats-server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use herald_nats::{Dispatchers, Nats, TopologyNeeds};
use herald_runtime::Health;
use herald_runtime::nats_server::{NatsServer, ServerOptions};
use herald_runtime::tls::{ServerTls, TlsConfig};

use crate::settings::Settings;

/// Which roles this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Roles {
    pub(crate) ingest: bool,
    pub(crate) dispatch: bool,
    pub(crate) control: bool,
}

impl Roles {
    /// No role: `herald migrate`.
    pub(crate) const NONE: Roles = Roles {
        ingest: false,
        dispatch: false,
        control: false,
    };
    pub(crate) const ALL: Roles = Roles {
        ingest: true,
        dispatch: true,
        control: true,
    };
    pub(crate) const INGEST: Roles = Roles {
        ingest: true,
        dispatch: false,
        control: false,
    };
    pub(crate) const DISPATCH: Roles = Roles {
        ingest: false,
        dispatch: true,
        control: false,
    };
    pub(crate) const CONTROL: Roles = Roles {
        ingest: false,
        dispatch: false,
        control: true,
    };

    /// The roles as one word, for telemetry: `ingest`, `dispatch`, `control` or `all`.
    pub(crate) fn label(&self) -> &'static str {
        match (self.ingest, self.dispatch, self.control) {
            (true, false, false) => "ingest",
            (false, true, false) => "dispatch",
            (false, false, true) => "control",
            _ => "all",
        }
    }
}

/// A role's task and the token that stops it.
struct RunningRole {
    name: &'static str,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Starts a nats-server child, runs every role against it, and stops the server last.
pub(crate) async fn run_dev(
    mut settings: Settings,
    data_dir: PathBuf,
    nats_port: u16,
    nats_config: Option<PathBuf>,
) -> anyhow::Result<()> {
    let options = ServerOptions {
        host: "127.0.0.1".to_owned(),
        port: nats_port,
        data_dir: data_dir.join("nats"),
        config_file: nats_config,
    };
    let server = NatsServer::start(&options)
        .await
        .context("failed to start the dev nats-server")?;
    settings.nats.url = server.url().to_owned();
    let result = Box::pin(run(settings, Roles::ALL, Some(&server))).await;
    server.stop(Duration::from_secs(10)).await;
    tracing::info!("dev nats-server stopped");
    result
}

/// Runs `roles` until SIGTERM or SIGINT, or until a role fails.
pub(crate) async fn run(
    settings: Settings,
    roles: Roles,
    dev_server: Option<&NatsServer>,
) -> anyhow::Result<()> {
    let health = Health::new();
    let registry = prometheus::Registry::new();
    // The admin listener answers /livez from the start, while NATS and the streams and buckets
    // are waited for; /readyz says not ready until every role started.
    health.register("roles_started", || false);
    let admin_listener = bind(settings.listen.admin, "admin").await?;
    let admin_address = admin_listener.local_addr()?;
    let admin_stop = CancellationToken::new();
    // Stops the admin listener however this function returns.
    let _admin_guard = admin_stop.clone().drop_guard();
    let admin_task = tokio::spawn(herald_runtime::admin::serve(
        admin_listener,
        health.clone(),
        registry.clone(),
        admin_stop.clone(),
    ));
    let nats = connect(&settings, roles).await?;
    // Signing secrets, header values and sinks are sealed at rest under the configured
    // key-encryption keys.
    let nats = match settings.keyring() {
        Some(keyring) => nats.with_keyring(keyring),
        None => nats,
    };
    let connection = nats.clone();
    health.register("nats_connected", move || connection.is_connected());

    let mut running: Vec<RunningRole> = Vec::new();
    let mut addresses: Vec<(&str, String)> = Vec::new();
    if roles.ingest {
        let listener = bind(settings.listen.ingest, "ingest").await?;
        // HTTP/1.1 only over TLS, as over TCP: hyper's refusals of request heads are rewritten
        // as problem documents on HTTP/1 connections (herald-ingest's `listener.rs`).
        let tls = load_tls(settings.tls.ingest.as_ref(), &[b"http/1.1"], "ingest")?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        addresses.push((
            "ingest",
            format!("{scheme}://{}/v1/events", listener.local_addr()?),
        ));
        // Boxed: reading the catalog is a deep future, and `run`'s is large already.
        let service = Box::pin(herald_ingest::build_with_catalog(
            Arc::new(settings.ingest.clone()),
            &settings.catalog,
            nats.publisher(),
            nats.event_types().await?,
            &registry,
        ))
        .await?;
        let service = Box::pin(service.with_producer_keys(nats.credentials().await?)).await?;
        // Endpoints confirm their consent on ingest, the public listener.
        let service = service.with_consent_callbacks(nats.subscriptions().await?);
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            match tls {
                None => Ok(service.run(listener, token).await?),
                Some(tls) => {
                    let listener = tls.listen(listener, token.clone())?;
                    let reloading = Reloading::start(tls, &token);
                    let served = service.run_tls(listener, token).await;
                    reloading.stop().await;
                    Ok(served?)
                }
            }
        });
        running.push(RunningRole {
            name: "ingest",
            stop,
            task,
        });
    }
    if roles.dispatch {
        let service = herald_dispatcher::build(
            Arc::new(settings.dispatcher.clone()),
            nats.clone(),
            settings.network_policy(),
            &registry,
        )?;
        // Not ready while a subscription's worker ended and waits for its restart.
        let unserved = service.unserved();
        health.register("dispatcher_workers", move || unserved.is_empty());
        // Not ready until the subscription watch runs and the consumers it took are set up.
        let readiness = service.readiness();
        health.register("dispatcher_started", move || readiness.is_ready());
        let stop = CancellationToken::new();
        let token = stop.clone();
        // Boxed: the dispatcher's loop holds its whole state, and this task need not.
        let task = tokio::spawn(async move { Ok(Box::pin(service.run(token)).await?) });
        running.push(RunningRole {
            name: "dispatcher",
            stop,
            task,
        });
    }
    if roles.control {
        let listener = bind(settings.listen.control, "control").await?;
        let tls = load_tls(settings.tls.control.as_ref(), &[b"h2"], "control")?;
        let scheme = if tls.is_some() { "https" } else { "grpc" };
        addresses.push(("control", format!("{scheme}://{}", listener.local_addr()?)));
        let service = Box::pin(herald_control::build_with_consent(
            Arc::new(settings.control.clone()),
            settings.consent.clone(),
            nats.clone(),
            settings.network_policy(),
            &registry,
        ))
        .await?
        .with_subscription_metrics(settings.subscription_metrics.clone());
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            match tls {
                None => Ok(service.run(listener, token).await?),
                Some(tls) => {
                    let address = listener.local_addr()?;
                    let listener = tls.listen(listener, token.clone())?;
                    let reloading = Reloading::start(tls, &token);
                    tracing::info!(%address, "control listening (tls)");
                    let served = service.run_incoming(listener.into_incoming(), token).await;
                    reloading.stop().await;
                    Ok(served?)
                }
            }
        });
        running.push(RunningRole {
            name: "control",
            stop,
            task,
        });
    }
    addresses.push(("admin", format!("http://{admin_address}/readyz")));
    health.register("roles_started", || true);
    announce(&settings, &addresses, dev_server);

    // Wait for a signal, or for a role to stop on its own (which is a failure).
    let failed_role = tokio::select! {
        signal = herald_runtime::signal::terminated() => match signal {
            Ok(signal) => {
                tracing::info!(signal, "shutting down");
                None
            }
            Err(err) => Some(anyhow::anyhow!("failed to install the SIGTERM and SIGINT handlers: {err}")),
        },
        (result, index, _) = futures_select_first(&mut running) => {
            let name = running[index].name;
            let error = match result {
                Ok(Ok(())) => anyhow::anyhow!("{name} stopped unexpectedly"),
                Ok(Err(err)) => err.context(format!("{name} failed")),
                Err(err) => anyhow::anyhow!("{name} panicked: {err}"),
            };
            running.remove(index);
            Some(error)
        }
    };

    health.set_draining();
    let mut graceful = true;
    // Readiness is false from here: ingest and control serve on while load balancers take this
    // process out of rotation, then every role stops at once.
    let pre_stop_delay = settings.shutdown.pre_stop_delay;
    if failed_role.is_none() && (roles.ingest || roles.control) && !pre_stop_delay.is_zero() {
        tracing::info!(delay = ?pre_stop_delay, "not ready; serving until load balancers drain");
        tokio::time::sleep(pre_stop_delay).await;
    }
    // One grace period for every role together, not one after another.
    let grace = settings.dispatcher.shutdown_grace_period + Duration::from_secs(5);
    for role in &running {
        role.stop.cancel();
    }
    let stopping = running.into_iter().map(|role| async move {
        let abort = role.task.abort_handle();
        let result = tokio::time::timeout(grace, role.task).await;
        if result.is_err() {
            abort.abort();
        }
        (role.name, result)
    });
    for (name, result) in futures::future::join_all(stopping).await {
        match result {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => {
                graceful = false;
                tracing::error!(
                    role = name,
                    error = format!("{err:#}"),
                    "role failed while stopping"
                );
            }
            Ok(Err(err)) => {
                graceful = false;
                tracing::error!(role = name, error = %err, "role panicked while stopping");
            }
            Err(_) => {
                graceful = false;
                tracing::warn!(
                    role = name,
                    "role did not stop within the grace period: stopped"
                );
            }
        }
    }
    // Waits until the server has read the last acknowledgements, so none is lost on exit.
    if let Err(err) = nats.close(Duration::from_secs(5)).await {
        tracing::warn!(error = %err, "failed to close the NATS connection cleanly");
    }
    admin_stop.cancel();
    let _ = admin_task.await;
    tracing::info!(graceful, "herald stopped");
    match failed_role {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// `herald migrate`: creates or updates every stream and bucket to `settings`, then closes.
pub(crate) async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let nats = Nats::connect_with(&settings.nats, &settings.nats_connection)
        .await
        .with_context(|| {
            format!(
                "failed to migrate the NATS streams and buckets at {}",
                settings.nats.url
            )
        })?;
    Box::pin(Dispatchers::open(&nats, settings.dispatcher.lease_ttl))
        .await
        .context("failed to create or update the dispatcher buckets")?;
    tracing::info!(url = %settings.nats.url, "NATS streams and buckets migrated");
    nats.close(Duration::from_secs(5))
        .await
        .context("failed to close the NATS connection")?;
    Ok(())
}

/// Connects to NATS with the streams and buckets in place: made here when this process
/// migrates (`startup.migrate`; unset, `herald dev` and `herald all` do), otherwise made by
/// `herald migrate` and waited for, at most `startup.topology_wait`, never written.
async fn connect(settings: &Settings, roles: Roles) -> anyhow::Result<Nats> {
    let connected = if settings.startup.migrate.unwrap_or(roles == Roles::ALL) {
        tracing::info!("migrating the NATS streams and buckets (startup.migrate)");
        Nats::connect_with(&settings.nats, &settings.nats_connection).await
    } else {
        let needs = TopologyNeeds {
            dispatcher_lease_ttl: roles.dispatch.then_some(settings.dispatcher.lease_ttl),
        };
        Nats::connect_existing(
            &settings.nats,
            &settings.nats_connection,
            needs,
            settings.startup.topology_wait,
        )
        .await
    };
    connected.with_context(|| format!("failed to connect to NATS at {}", settings.nats.url))
}

/// Resolves when the first role task finishes, with its result and index.
async fn futures_select_first(
    running: &mut [RunningRole],
) -> (
    Result<anyhow::Result<()>, tokio::task::JoinError>,
    usize,
    (),
) {
    if running.is_empty() {
        return std::future::pending().await;
    }
    let tasks = running.iter_mut().map(|role| &mut role.task);
    let (result, index, _) = futures::future::select_all(tasks).await;
    (result, index, ())
}

/// Loads a listener's TLS certificate and key when its settings name them (checked already when
/// the settings loaded; this reads the files again).
fn load_tls(
    config: Option<&TlsConfig>,
    alpn: &[&[u8]],
    what: &str,
) -> anyhow::Result<Option<ServerTls>> {
    config
        .map(|config| ServerTls::load(config, alpn))
        .transpose()
        .with_context(|| format!("failed to set up TLS for {what}"))
}

/// The task that serves a listener's certificate files again when they change; stopped with
/// its role.
struct Reloading {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Reloading {
    fn start(tls: ServerTls, role_stop: &CancellationToken) -> Reloading {
        let stop = role_stop.child_token();
        let task = tokio::spawn(tls.watch(stop.clone()));
        Reloading { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "the tls certificate watch panicked");
        }
    }
}

async fn bind(address: std::net::SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| {
        format!("failed to listen on {address} for {what}: is another process using it?")
    })
}

#[allow(
    clippy::print_stdout,
    reason = "the start banner is for the person who ran the command"
)]
fn announce(settings: &Settings, addresses: &[(&str, String)], dev_server: Option<&NatsServer>) {
    for (role, address) in addresses {
        tracing::info!(role, %address, "listening");
    }
    let Some(server) = dev_server else {
        return;
    };
    println!();
    println!(
        "Herald is running in DEV MODE: loopback only, no credentials, delivery to local endpoints allowed."
    );
    println!(
        "  NATS (JetStream)  {}   data in {}",
        server.url(),
        server
            .log_file()
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    for (role, address) in addresses {
        println!("  {role:<17} {address}");
    }
    let network = &settings.network;
    println!(
        "  private targets   loopback {}, private networks {}",
        allowed(network.allow_loopback),
        allowed(network.allow_private)
    );
    println!();
    println!(
        "Walk-through: README.md, \"A signed webhook in 60 seconds\" (heraldctl is in target/release/)."
    );
    println!("Stop with Ctrl-C.");
    println!();
}

fn allowed(flag: bool) -> &'static str {
    if flag { "allowed" } else { "blocked" }
}
