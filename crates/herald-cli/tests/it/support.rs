//! Runs `heraldctl` as a process and starts the control service it talks to.

use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use herald_core::network::NetworkPolicy;
use herald_nats::Nats;
use herald_test_support::NatsServer;

/// The one token the test control service accepts when authentication is enabled.
pub(crate) const TOKEN: &str = "cli-token-0123456789";

/// A control service on a loopback port, over its own nats-server.
pub(crate) struct Control {
    pub(crate) server: String,
    /// The service's NATS connection, to write records behind its back.
    pub(crate) nats: Nats,
    shutdown: CancellationToken,
    _nats: NatsServer,
}

impl Control {
    pub(crate) async fn start(auth_disabled: bool) -> Control {
        let nats_server = NatsServer::start().await;
        let nats = Box::pin(Nats::connect(&herald_test_support::nats_config(
            &nats_server.url(),
        )))
        .await
        .expect("nats should connect");
        let config = herald_control::Config {
            auth: herald_control::AuthConfig {
                disabled: auth_disabled,
                api_tokens: vec![TOKEN.to_owned()],
            },
        };
        let service = Box::pin(herald_control::build(
            Arc::new(config),
            nats.clone(),
            NetworkPolicy::public_only(),
            &prometheus::Registry::new(),
        ))
        .await
        .expect("the control service should build");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(service.run(listener, shutdown.clone()));
        Control {
            server,
            nats,
            shutdown,
            _nats: nats_server,
        }
    }

    /// Runs `heraldctl --server <this> <args>`.
    pub(crate) async fn heraldctl(&self, args: &[&str]) -> Output {
        let mut full_args = vec!["--server", self.server.as_str()];
        full_args.extend_from_slice(args);
        heraldctl(&full_args).await
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Returns a `heraldctl` command isolated from the caller's `HERALD_*` environment.
pub(crate) fn command(args: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_heraldctl"));
    command
        .args(args)
        .env_remove("HERALD_SERVER")
        .env_remove("HERALD_TOKEN")
        .env_remove("HERALD_LISTEN_SECRET")
        .env_remove("HERALD_CA_FILE")
        .env_remove("HERALD_CLIENT_CERT")
        .env_remove("HERALD_CLIENT_KEY")
        .kill_on_drop(true);
    command
}

/// Runs `heraldctl <args>` to completion.
pub(crate) async fn heraldctl(args: &[&str]) -> Output {
    let run = command(args).output();
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("heraldctl should finish within 30 s")
        .expect("heraldctl should start")
}

/// Returns standard output, asserting the command succeeded.
pub(crate) fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "heraldctl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("output should be UTF-8")
}

/// Returns standard error, asserting the command failed with exit code 1.
pub(crate) fn failure_of(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr.clone()).expect("errors should be UTF-8")
}
