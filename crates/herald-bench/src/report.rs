//! Results: one JSON line per workload on stdout, and the Markdown report (docs/BENCHMARKS.md)
//! with the machine, the versions, the baselines, each figure against its target, and the
//! per-role CPU and memory.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Instant;

/// One line of the results table.
pub(crate) struct Row {
    pub(crate) workload: String,
    pub(crate) profile: String,
    pub(crate) figure: String,
    pub(crate) target: String,
    /// `Some(true)` met, `Some(false)` missed, `None` no target (a baseline or a report).
    pub(crate) met: Option<bool>,
}

/// CPU seconds per 1,000 events and peak RSS of each process during one workload.
pub(crate) struct CostRow {
    pub(crate) workload: String,
    pub(crate) profile: String,
    pub(crate) events: u64,
    /// (process, CPU seconds per 1,000 events, peak RSS in MiB).
    pub(crate) processes: Vec<(&'static str, f64, f64)>,
    /// Share of the machine's CPU time taken by the hypervisor during the workload, in percent.
    pub(crate) steal_percent: f64,
}

/// Prints one result as a JSON line.
#[allow(
    clippy::print_stdout,
    reason = "the JSON lines on stdout are the benchmark's output"
)]
pub(crate) fn emit(line: &serde_json::Value) {
    println!("{line}");
}

/// Prints a progress note on stderr, so stdout stays JSON lines only, with the seconds since the
/// suite's first note: where the suite's wall time goes.
#[allow(
    clippy::print_stderr,
    reason = "progress for the person waiting; stdout carries the results"
)]
pub(crate) fn note(text: &str) {
    static STARTED: OnceLock<Instant> = OnceLock::new();
    let elapsed = STARTED.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("herald-bench [{elapsed:6.1} s]: {text}");
}

/// Describes the machine and the versions under test.
pub(crate) fn environment() -> Vec<(&'static str, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_else(|| "unknown".to_owned());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    let nats = herald_runtime::nats_server::locate()
        .ok()
        .map(|path| command_output(&path.to_string_lossy(), &["--version"]))
        .unwrap_or_default();
    let dirty =
        !command_output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let sha = command_output("git", &["rev-parse", "--short=12", "HEAD"]);
    vec![
        ("cores", cores),
        ("cpu", model),
        ("kernel", kernel),
        ("rustc", command_output("rustc", &["--version"])),
        ("nats-server", nats),
        (
            "herald",
            if dirty {
                format!("{sha} (with uncommitted changes)")
            } else {
                sha
            },
        ),
    ]
}

fn command_output(program: &str, args: &[&str]) -> String {
    std::process::Command::new(program)
        .args(args)
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Writes the Markdown report.
pub(crate) fn write_markdown(
    path: &Path,
    quick: bool,
    environment: &[(&str, String)],
    rows: &[Row],
    costs: &[CostRow],
    wall_seconds: f64,
) -> std::io::Result<()> {
    let mut text = String::new();
    let command = if quick {
        "make bench-quick"
    } else {
        "make bench"
    };
    let _ = writeln!(text, "# Herald benchmarks\n");
    let _ = writeln!(
        text,
        "Written by `{command}` (crate `herald-bench`); reproduce with `{command}` from a clean checkout."
    );
    let _ = writeln!(
        text,
        "Everything runs on loopback on one machine: nats-server (file storage), `herald ingest`, `herald dispatch` and `herald control` as separate processes, the load generator and the receiver (keep-alive HTTP/1.1, signature verification on)."
    );
    let _ = writeln!(
        text,
        "The machine is shared and noisy, so compare the ratios against the baselines measured in the same run rather than the absolute figures."
    );
    let _ = writeln!(
        text,
        "What bounds each figure, and the changes measured on the way, is in [PERFORMANCE.md](PERFORMANCE.md)."
    );
    if quick {
        let _ = writeln!(
            text,
            "\n**Quick mode**: short runs for a smoke test; the figures are not meaningful."
        );
    }
    let _ = writeln!(text, "\n## Machine and versions\n");
    let _ = writeln!(text, "| | |\n|---|---|");
    for (key, value) in environment {
        let _ = writeln!(text, "| {key} | {value} |");
    }
    let _ = writeln!(text, "| suite wall time | {wall_seconds:.0} s |");
    let _ = writeln!(text, "\n## Results\n");
    let _ = writeln!(
        text,
        "| workload | profile | result | target | met |\n|---|---|---|---|---|"
    );
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {met} |",
            row.workload, row.profile, row.figure, row.target
        );
    }
    let _ = writeln!(text, "\n## CPU and memory per process\n");
    let _ = writeln!(
        text,
        "CPU seconds (user + system, from `/proc/<pid>/stat`) per 1,000 events during the workload, and peak RSS (`VmHWM`) at its end. *bench* is herald-bench itself: the load generator and the receiver. *steal* is the share of the machine's CPU time (`/proc/stat`) the hypervisor gave to other guests during the workload."
    );
    let _ = writeln!(
        text,
        "\n| workload | profile | events | ingest | dispatcher | control | nats-server | bench | steal |\n|---|---|---|---|---|---|---|---|---|"
    );
    for cost in costs {
        let cell = |name: &str| {
            cost.processes
                .iter()
                .find(|(process, _, _)| *process == name)
                .map(|(_, cpu, rss)| format!("{cpu:.3} s, {rss:.0} MiB"))
                .unwrap_or_default()
        };
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0}% |",
            cost.workload,
            cost.profile,
            cost.events,
            cell("ingest"),
            cell("dispatcher"),
            cell("control"),
            cell("nats"),
            cell("bench"),
            cost.steal_percent,
        );
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)
}
