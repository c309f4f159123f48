//! Latency samples and their percentiles, and per-process CPU and memory read from `/proc`.
//!
//! Samples are kept raw (nanoseconds) and sorted once: a run holds at most a few hundred
//! thousand, so exact percentiles are cheaper than a histogram's bookkeeping.

use std::time::Duration;

/// Exact percentiles of a set of latency samples.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub(crate) struct Percentiles {
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
}

/// Returns the percentiles of `samples` (nanoseconds); all zero when there are none.
pub(crate) fn percentiles(mut samples: Vec<u64>) -> Percentiles {
    if samples.is_empty() {
        return Percentiles::default();
    }
    samples.sort_unstable();
    let at = |quantile: f64| {
        let index = ((samples.len() as f64 - 1.0) * quantile).round() as usize;
        samples[index] as f64 / 1e6
    };
    Percentiles {
        p50_ms: round3(at(0.50)),
        p99_ms: round3(at(0.99)),
        max_ms: round3(at(1.0)),
    }
}

/// Rounds to three decimals, so JSON lines stay readable.
pub(crate) fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Returns the current time as unix nanoseconds (the clock the receiver compares against).
pub(crate) fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or_default()
}

/// SplitMix64: a well-spread pseudo-random number from a counter (the receiver's failure draw,
/// the load generator's choice of key).
pub(crate) fn mix(counter: u64) -> u64 {
    let mut z = counter.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// CPU time and memory of one process, from `/proc/<pid>/stat` and `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ProcessSample {
    pub(crate) cpu: Duration,
    pub(crate) rss_bytes: u64,
    pub(crate) peak_rss_bytes: u64,
}

/// Reads a process's user + system CPU time and its current and peak resident set size.
pub(crate) fn sample_process(pid: u32) -> ProcessSample {
    let ticks_per_second = 100.0; // USER_HZ; the kernel reports 100 on every Linux we target.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |index: usize| -> f64 {
        fields
            .get(index - 3)
            .and_then(|value| value.parse::<f64>().ok())
            .unwrap_or_default()
    };
    let cpu_seconds = (field(14) + field(15)) / ticks_per_second;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or_default()
            * 1024
    };
    ProcessSample {
        cpu: Duration::from_secs_f64(cpu_seconds),
        rss_bytes: kib("VmRSS:"),
        peak_rss_bytes: kib("VmHWM:"),
    }
}

/// Machine-wide CPU time from the first line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MachineSample {
    total: u64,
    steal: u64,
}

impl MachineSample {
    /// Share of the machine's CPU time the hypervisor gave to other guests since `earlier`, in
    /// percent: time this machine wanted to run and could not.
    pub(crate) fn steal_percent_since(&self, earlier: &MachineSample) -> f64 {
        let total = self.total.saturating_sub(earlier.total);
        if total == 0 {
            return 0.0;
        }
        self.steal.saturating_sub(earlier.steal) as f64 / total as f64 * 100.0
    }
}

/// Reads the machine's CPU time: the sum of every state, and steal.
pub(crate) fn sample_machine() -> MachineSample {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    parse_machine(&stat)
}

fn parse_machine(stat: &str) -> MachineSample {
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else {
        return MachineSample::default();
    };
    // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already
    // counted in user and nice.
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|value| value.parse().ok())
        .collect();
    MachineSample {
        total: values.iter().sum(),
        steal: values.get(7).copied().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_machine, percentiles};

    #[test]
    fn steal_is_the_share_of_all_cpu_time_the_hypervisor_took() {
        let before = parse_machine("cpu  100 0 50 800 0 0 0 50 0 0\ncpu0 1 2 3\n");
        let after = parse_machine("cpu  200 0 100 1500 0 0 0 200 0 0\ncpu0 1 2 3\n");
        assert!((after.steal_percent_since(&before) - 15.0).abs() < 1e-9);
        assert_eq!(after.steal_percent_since(&after), 0.0);
    }

    #[test]
    fn percentiles_of_a_uniform_range() {
        let samples: Vec<u64> = (1..=100).map(|ms| ms * 1_000_000).collect();
        let result = percentiles(samples);
        assert_eq!(
            (result.p50_ms, result.p99_ms, result.max_ms),
            (51.0, 99.0, 100.0)
        );
    }

    #[test]
    fn percentiles_of_nothing_are_zero() {
        assert_eq!(percentiles(Vec::new()).max_ms, 0.0);
    }
}
