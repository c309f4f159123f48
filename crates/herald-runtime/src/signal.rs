//! Waiting for the operating system to ask the process to stop.

/// Resolves on SIGTERM or SIGINT (Ctrl-C), returning the signal's name; fails at once when the
/// handlers cannot be installed.
pub async fn terminated() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = sigterm.recv() => "SIGTERM",
        _ = sigint.recv() => "SIGINT",
    })
}
