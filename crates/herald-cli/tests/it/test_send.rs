//! `heraldctl sub test` against an in-process control service and dispatcher: the endpoint's
//! answer printed for people and as JSON, the attempt in `attempts list`, and the refusals.

use std::sync::Arc;

use axum::http::StatusCode;
use tokio_util::sync::CancellationToken;

use herald_core::network::NetworkPolicy;
use herald_nats::Nats;
use herald_test_support::NatsServer;

use crate::support::{failure_of, heraldctl, stdout_of};

/// Control and a dispatcher over their own nats-server, both allowing loopback sinks.
struct Herald {
    server: String,
    control: CancellationToken,
    dispatcher: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    _nats: NatsServer,
}

impl Herald {
    async fn start() -> Herald {
        let nats_server = NatsServer::start().await;
        let config = herald_test_support::nats_config(&nats_server.url());
        let nats = Box::pin(Nats::connect(&config))
            .await
            .expect("nats should connect");
        let control_config = herald_control::Config {
            auth: herald_control::AuthConfig {
                disabled: true,
                api_tokens: Vec::new(),
            },
        };
        let control = Box::pin(herald_control::build(
            Arc::new(control_config),
            nats.clone(),
            NetworkPolicy::new(true, true),
            &prometheus::Registry::new(),
        ))
        .await
        .expect("the control service should build");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = format!("http://{}", listener.local_addr().unwrap());
        let control_stop = CancellationToken::new();
        tokio::spawn(control.run(listener, control_stop.clone()));

        let dispatcher_config = herald_dispatcher::Config {
            request_timeout: std::time::Duration::from_secs(5),
            connect_timeout: std::time::Duration::from_secs(2),
            pool_idle_timeout: std::time::Duration::from_secs(4),
            max_response_body_bytes: 64 * 1024,
            disable_after: std::time::Duration::from_secs(3600),
            max_in_flight_per_subscription: 8,
            max_in_flight_per_host: 64,
            shutdown_grace_period: std::time::Duration::from_secs(5),
            lease_ttl: std::time::Duration::from_secs(10),
            park_after: std::time::Duration::from_secs(30),
            parked_recheck: std::time::Duration::from_secs(300),
            egress_proxy: None,
            endpoint_ca_file: None,
        };
        let dispatcher = herald_dispatcher::build(
            Arc::new(dispatcher_config),
            nats,
            NetworkPolicy::new(true, true),
            &prometheus::Registry::new(),
        )
        .expect("the dispatcher should build");
        let dispatcher_stop = CancellationToken::new();
        let token = dispatcher_stop.clone();
        let task = tokio::spawn(async move {
            Box::pin(dispatcher.run(token))
                .await
                .expect("the dispatcher should run");
        });
        Herald {
            server,
            control: control_stop,
            dispatcher: Some((dispatcher_stop, task)),
            _nats: nats_server,
        }
    }

    async fn heraldctl(&self, args: &[&str]) -> std::process::Output {
        let mut full_args = vec!["--server", self.server.as_str()];
        full_args.extend_from_slice(args);
        heraldctl(&full_args).await
    }

    async fn stop_dispatcher(&mut self) {
        if let Some((stop, task)) = self.dispatcher.take() {
            stop.cancel();
            task.await.unwrap();
        }
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        self.control.cancel();
        if let Some((stop, _)) = &self.dispatcher {
            stop.cancel();
        }
    }
}

/// An endpoint answering 500 with a text body and an `x-request-id`.
async fn failing_endpoint() -> (String, CancellationToken) {
    let router = axum::Router::new().fallback(|| async {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("x-request-id", "req-7"), ("content-type", "text/plain")],
            "database unavailable",
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let until = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(until)
            .await
            .unwrap();
    });
    (url, stop)
}

#[tokio::test]
async fn sub_test_prints_the_endpoints_answer_and_attempts_list_shows_it() {
    let mut herald = Herald::start().await;
    let (sink, _endpoint) = failing_endpoint().await;
    let created = stdout_of(
        &herald
            .heraldctl(&["--output", "json", "sub", "create", "--sink", &sink])
            .await,
    );
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    let shown = stdout_of(
        &herald
            .heraldctl(&[
                "sub",
                "test",
                &id,
                "--type",
                "com.example.ping",
                "--data",
                r#"{"n": 1}"#,
            ])
            .await,
    );
    let lines: Vec<&str> = shown.lines().collect();
    assert!(
        lines[0].starts_with("sent test event test_")
            && lines[0].ends_with(&format!("(com.example.ping) to {id}")),
        "{shown}"
    );
    assert!(lines[1].starts_with("status 500 (5xx) in "), "{shown}");
    assert!(lines.contains(&"x-request-id: req-7"), "{shown}");
    assert!(lines.contains(&"content-type: text/plain"), "{shown}");
    assert_eq!(lines.last(), Some(&"database unavailable"), "{shown}");

    let json = stdout_of(
        &herald
            .heraldctl(&["--output", "json", "sub", "test", &id])
            .await,
    );
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["attempt"]["outcome"], "ATTEMPT_OUTCOME_TEST");
    assert_eq!(json["attempt"]["status_code"], 500);
    assert_eq!(json["attempt"]["response_body"], "database unavailable");
    assert_eq!(json["event"]["heraldtest"], true);
    assert_eq!(json["event"]["type"], "dev.herald.test");
    assert_eq!(json["recorded"], true);

    let listed = stdout_of(
        &herald
            .heraldctl(&[
                "attempts",
                "list",
                "--subscription",
                &id,
                "--outcome",
                "test",
            ])
            .await,
    );
    let rows: Vec<&str> = listed.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{listed}");
    assert!(
        rows.iter()
            .all(|row| row.contains(" 500 ") && row.contains(" test ")),
        "{listed}"
    );

    let refused = failure_of(
        &herald
            .heraldctl(&["sub", "test", &id, "--data", "{not json"])
            .await,
    );
    assert!(
        refused.starts_with("error: INVALID_ARGUMENT: data: not valid JSON"),
        "{refused}"
    );

    herald.stop_dispatcher().await;
    let unavailable = failure_of(&herald.heraldctl(&["sub", "test", &id]).await);
    assert_eq!(
        unavailable.trim_end(),
        "error: UNAVAILABLE: no dispatcher is running to send the test event"
    );
}
