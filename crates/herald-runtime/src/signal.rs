//! Waiting for the operating system to ask the process to stop.

/// Resolves on SIGTERM or SIGINT (Ctrl-C), returning the signal's name.
pub async fn terminated() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm =
        signal(SignalKind::terminate()).expect("installing a SIGTERM handler should work");
    let mut sigint =
        signal(SignalKind::interrupt()).expect("installing a SIGINT handler should work");
    tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    }
}
