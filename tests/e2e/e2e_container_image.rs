//! The container image: where a Docker daemon with BuildKit answers, the test builds the
//! workspace's `Dockerfile` under a tag of its own, runs `herald --help` and `heraldctl --help`
//! in it the way the manifests run it (read-only root filesystem, no capabilities), checks that
//! the image runs as a non-root user, and removes the image. Elsewhere it prints one line
//! `skipped: <why>` to stderr and passes: the build needs a daemon, and a cold build takes many
//! minutes, so nothing starts unless `docker info` answers within a few seconds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long `docker info` and `docker buildx version` may take before the daemon counts as
/// unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// A cold build compiles the whole workspace in release mode.
const BUILD_TIMEOUT: Duration = Duration::from_secs(90 * 60);
/// Running one binary's `--help` in a container, pulling nothing.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// Runs `docker <args>` to completion or until `timeout`, when it is killed; `Err` says why it
/// gave no output (not found, timed out).
fn docker(args: &[&str], timeout: Duration) -> Result<Output, String> {
    let mut child = Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("`docker` could not be started: {err}"))?;
    // Drain both pipes on threads so a chatty build never blocks on a full pipe.
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let read_out = std::thread::spawn(move || read_all(stdout));
    let read_err = std::thread::spawn(move || read_all(stderr));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`docker {}` did not finish within {} s",
                    args.join(" "),
                    timeout.as_secs()
                ));
            }
            Err(err) => return Err(format!("waiting for `docker`: {err}")),
        }
    };
    Ok(Output {
        status,
        stdout: read_out.join().unwrap_or_default(),
        stderr: read_err.join().unwrap_or_default(),
    })
}

fn read_all(mut pipe: impl std::io::Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = pipe.read_to_end(&mut bytes);
    bytes
}

fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or("no output")
        .to_owned()
}

/// Returns why the image cannot be built here, or `None` when a daemon with BuildKit answers.
fn why_no_docker() -> Option<String> {
    match docker(&["info", "--format", "{{.ServerVersion}}"], PROBE_TIMEOUT) {
        Err(why) => return Some(why),
        Ok(output) if !output.status.success() => {
            return Some(format!(
                "no Docker daemon reachable (`docker info`: {})",
                first_line(&output.stderr)
            ));
        }
        Ok(_) => {}
    }
    // The Dockerfile's cache mounts (`RUN --mount=type=cache`) need BuildKit, which the docker
    // CLI reaches through its buildx plugin; the legacy builder refuses them.
    match docker(&["buildx", "version"], PROBE_TIMEOUT) {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(format!(
            "the Docker daemon answers but BuildKit (docker buildx) is missing, and the \
             Dockerfile's cache mounts need it (`docker buildx version`: {})",
            first_line(&output.stderr)
        )),
        Err(why) => Some(why),
    }
}

/// Removes the test's image when the test ends, passed or failed.
struct ImageGuard(String);

impl Drop for ImageGuard {
    fn drop(&mut self) {
        let _ = docker(&["image", "rm", "--force", &self.0], RUN_TIMEOUT);
    }
}

/// Runs one binary of the image with `--help`, as the manifests run the image (read-only root
/// filesystem, every capability dropped, no privilege escalation); returns its standard output.
fn run_help(tag: &str, entrypoint: &str) -> String {
    let output = docker(
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--read-only",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--entrypoint",
            entrypoint,
            tag,
            "--help",
        ],
        RUN_TIMEOUT,
    )
    .unwrap_or_else(|why| panic!("{entrypoint} --help in the image: {why}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{entrypoint} --help should exit 0 in the image, got {}: {}{}",
        output.status,
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[allow(
    clippy::print_stderr,
    reason = "a skipped test says so, and why, on standard error"
)]
fn report_skip(why: &str) {
    eprintln!("skipped: {why}");
}

#[test]
fn the_container_image_builds_and_runs_both_binaries_as_a_non_root_user() {
    if let Some(why) = why_no_docker() {
        report_skip(&why);
        return;
    }
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    let tag = format!("herald-e2e-image:{}-{nanos}", std::process::id());
    let _guard = ImageGuard(tag.clone());

    let root = workspace_root();
    let dockerfile = root.join("Dockerfile");
    let root_text = root.to_string_lossy().into_owned();
    let dockerfile_text = dockerfile.to_string_lossy().into_owned();
    let output = docker(
        &[
            "build",
            "--tag",
            &tag,
            "--file",
            &dockerfile_text,
            &root_text,
        ],
        BUILD_TIMEOUT,
    )
    .unwrap_or_else(|why| panic!("building the image: {why}"));
    assert!(
        output.status.success(),
        "the image should build, got {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );

    let herald = run_help(&tag, "/usr/local/bin/herald");
    assert!(herald.contains("Usage: herald"), "herald --help: {herald}");
    for role in ["ingest", "dispatch", "control"] {
        assert!(
            herald.contains(role),
            "herald --help should list `{role}`: {herald}"
        );
    }
    let heraldctl = run_help(&tag, "/usr/local/bin/heraldctl");
    assert!(
        heraldctl.contains("Usage: heraldctl"),
        "heraldctl --help: {heraldctl}"
    );

    // The default command is `herald --help`, so the image runs as it is, too.
    let output = docker(&["run", "--rm", "--network", "none", &tag], RUN_TIMEOUT)
        .unwrap_or_else(|why| panic!("running the image: {why}"));
    assert!(
        output.status.success(),
        "the image's default command should exit 0"
    );

    // The runtime image has no shell or `id`: its user is read from the image's configuration.
    let output = docker(
        &["image", "inspect", "--format", "{{.Config.User}}", &tag],
        RUN_TIMEOUT,
    )
    .unwrap_or_else(|why| panic!("inspecting the image: {why}"));
    let user = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let uid = user.split(':').next().unwrap_or_default();
    assert!(
        !uid.is_empty() && uid != "0" && uid != "root",
        "the image should run as a non-root user, its user is {user:?}"
    );
    assert_eq!(
        user, "65532:65532",
        "the user the manifests' securityContext expects"
    );
}
