//! The dispatcher's CPU per delivery broken down by step, from `perf` samples.
//!
//! `perf record` samples the dispatcher's every thread with its call stack (unwound with the
//! binary's `.eh_frame`, so the `bench-release` build needs no debug information) while a
//! workload runs; each sample is charged to the step of the innermost frame that names one
//! (`STEPS`), so a `malloc` or a `memcpy` counts for the step that called it. The shares times
//! the dispatcher's CPU per delivery (from `/proc`) give each step's microseconds.
//! The NATS connection's own task reads what is pulled and publish acknowledgements, and writes
//! acknowledgements and records, for every step at once: it is a step of its own.
//! Without a working `perf` (not installed, or `perf_event_paranoid` refusing it) there is no
//! breakdown, and the report says why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context as _;
use tokio::process::{Child, Command};

/// The steps, with the symbol fragments that identify a frame as one of them. Checked in this
/// order for each frame, from the innermost frame out.
const STEPS: &[(&str, &[&str])] = &[
    ("sign", &["herald_signing::", "hmac::", "sha2::"]),
    ("filter", &["herald_core::filter", "herald_core::subject"]),
    (
        "decode",
        &["herald_core::event::", "herald_dispatcher::admission::"],
    ),
    (
        "attempt record",
        &["Records::record_attempt", "herald_core::record::"],
    ),
    ("ack", &["Delivery::ack", "Delivery::reply", "ack_with"]),
    (
        "pull",
        &[
            "async_nats::jetstream::consumer::",
            "herald_nats::consumer::",
        ],
    ),
    (
        "POST (reqwest, hyper, sockets)",
        &[
            "reqwest::",
            "hyper::",
            "hyper_util::",
            "DeliveryClient",
            "herald_dispatcher::client::",
        ],
    ),
    (
        "NATS connection (reads and writes for pull, record, ack)",
        &["async_nats::"],
    ),
    (
        "scheduler",
        &["herald_dispatcher::scheduler", "herald_dispatcher::worker"],
    ),
    (
        "attempt (classify, metrics, health)",
        &["herald_dispatcher::", "herald_nats::", "prometheus::"],
    ),
];

/// What is charged to no step: tokio's scheduler and timers, idle polling, the kernel's
/// scheduling.
const OTHER: &str = "runtime and other";

/// A `perf record` running on one process.
pub(crate) struct Recorder {
    child: Child,
    data: PathBuf,
}

impl Recorder {
    /// Starts sampling `pid`; fails when `perf` cannot.
    pub(crate) async fn start(pid: u32, dir: &Path) -> anyhow::Result<Recorder> {
        let data = dir.join("dispatcher-perf.data");
        let mut child = Command::new("perf")
            .args(["record", "-q", "-F", "499", "--call-graph", "dwarf,16384"])
            .arg("-p")
            .arg(pid.to_string())
            .arg("-o")
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("perf is not installed")?;
        // perf refuses at once when it may not sample; give it that moment.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        if let Some(status) = child.try_wait()? {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                use tokio::io::AsyncReadExt as _;
                let _ = pipe.read_to_string(&mut stderr).await;
            }
            let reason = stderr.lines().next().unwrap_or("").to_owned();
            anyhow::bail!("perf record exited with {status}: {reason}");
        }
        Ok(Recorder { child, data })
    }

    /// Stops sampling and returns each step's share of the samples, largest first.
    pub(crate) async fn finish(mut self) -> anyhow::Result<Vec<(&'static str, f64)>> {
        let pid = self.child.id().context("perf should still run")?;
        // perf writes its data on SIGINT.
        Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status()
            .await?;
        self.child.wait().await?;
        let script = Command::new("perf")
            .args(["script", "-F", "ip,sym", "-i"])
            .arg(&self.data)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .await
            .context("perf script failed")?;
        let _ = std::fs::remove_file(&self.data);
        let counts = count_steps(&String::from_utf8_lossy(&script.stdout));
        let total: u64 = counts.values().sum();
        anyhow::ensure!(total > 0, "perf recorded no samples");
        let mut shares: Vec<(&'static str, f64)> = counts
            .into_iter()
            .map(|(step, count)| (step, count as f64 / total as f64))
            .collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(shares)
    }
}

/// Counts `perf script` samples (blank-line separated, innermost frame first) per step.
fn count_steps(script: &str) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    let mut step: Option<&'static str> = None;
    let mut in_sample = false;
    for line in script.lines() {
        if line.trim().is_empty() {
            if in_sample {
                *counts.entry(step.unwrap_or(OTHER)).or_insert(0) += 1;
            }
            step = None;
            in_sample = false;
            continue;
        }
        in_sample = true;
        if step.is_none() {
            step = step_of(line);
        }
    }
    if in_sample {
        *counts.entry(step.unwrap_or(OTHER)).or_insert(0) += 1;
    }
    counts
}

fn step_of(frame: &str) -> Option<&'static str> {
    STEPS.iter().find_map(|(step, fragments)| {
        fragments
            .iter()
            .any(|fragment| frame.contains(fragment))
            .then_some(*step)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_each_sample_to_its_innermost_named_frame() {
        let script = "\
\t7f01 _int_malloc
\t5501 sha2::sha256::compress
\t5502 herald_dispatcher::attempt::attempt::{{closure}}

\t5503 tokio::runtime::park
\t5504 std::thread::start

\t5505 hyper::proto::h1::encode
\t5506 async_nats::connection::Connection::poll_read_op
";
        let counts = count_steps(script);
        assert_eq!(counts.get("sign"), Some(&1));
        assert_eq!(counts.get(OTHER), Some(&1));
        assert_eq!(counts.get("POST (reqwest, hyper, sockets)"), Some(&1));
    }
}
