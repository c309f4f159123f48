//! NATS connection options against real nats-servers that require them: user and password,
//! and a token (`nats_connection` settings, `herald_nats::ConnectOptions`).

use std::path::PathBuf;
use std::time::Duration;

use herald_nats::{ConnectOptions, Nats};
use herald_runtime::nats_server::{NatsServer, ServerOptions};

/// Starts a nats-server with JetStream and `authorization` as its configuration.
async fn server_requiring(name: &str, authorization: &str) -> (NatsServer, PathBuf) {
    let dir =
        std::env::temp_dir().join(format!("herald-it-nats-auth-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("nats.conf");
    std::fs::write(&config, format!("authorization {{ {authorization} }}\n")).unwrap();
    let server = NatsServer::start(&ServerOptions {
        host: "127.0.0.1".to_owned(),
        port: 0,
        data_dir: dir.join("data"),
        config_file: Some(config),
    })
    .await
    .expect("nats-server should start");
    (server, dir)
}

fn config(url: &str) -> herald_nats::Config {
    let mut config = herald_test_support::nats_config(url);
    // A refused connection shows as the first JetStream call timing out.
    config.request_timeout = Duration::from_secs(2);
    config
}

#[tokio::test]
async fn connects_with_user_and_password_and_is_refused_without() {
    let (server, dir) = server_requiring("user", r#"user: herald, password: "s3cret-pass""#).await;
    let options = ConnectOptions {
        user: Some("herald".to_owned()),
        password: Some("s3cret-pass".to_owned()),
        ..ConnectOptions::default()
    };
    assert!(options.problems("nats_connection").is_empty());
    let nats = Nats::connect_with(&config(server.url()), &options)
        .await
        .expect("the right password should connect");
    assert!(nats.is_connected());
    let wrong = ConnectOptions {
        password: Some("wrong".to_owned()),
        ..options.clone()
    };
    assert!(
        Nats::connect_with(&config(server.url()), &wrong)
            .await
            .is_err()
    );
    assert!(Nats::connect(&config(server.url())).await.is_err());
    assert!(!format!("{options:?}").contains("s3cret-pass"));
    server.stop(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn connects_with_a_token() {
    let (server, dir) = server_requiring("token", r#"token: "a-nats-token-0123456789""#).await;
    let options = ConnectOptions {
        token: Some("a-nats-token-0123456789".to_owned()),
        ..ConnectOptions::default()
    };
    let nats = Nats::connect_with(&config(server.url()), &options)
        .await
        .expect("the token should connect");
    assert!(nats.is_connected());
    assert!(Nats::connect(&config(server.url())).await.is_err());
    server.stop(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn refuses_conflicting_options() {
    let options = ConnectOptions {
        user: Some("herald".to_owned()),
        token: Some("t".to_owned()),
        tls_cert_file: Some("cert.pem".into()),
        ..ConnectOptions::default()
    };
    let problems = options.problems("nats_connection");
    assert_eq!(problems.len(), 3, "{problems:?}");
}
