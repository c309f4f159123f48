//! Tidy checks: the architecture invariants of ARCHITECTURE.md, enforced on the source tree.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if path.is_dir() && name != "target" && !name.starts_with('.') {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn crate_dirs() -> Vec<PathBuf> {
    let dirs = crate_dirs_unchecked();
    assert!(
        dirs.len() >= 10,
        "the scan should find the crates, found {}",
        dirs.len()
    );
    dirs
}

fn crate_dirs_unchecked() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("crates"))
        .expect("crates/ should exist")
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[test]
fn every_source_file_starts_with_a_doc_paragraph() {
    let mut files = Vec::new();
    for dir in crate_dirs() {
        rust_files(&dir.join("src"), &mut files);
    }
    assert!(
        files.len() > 30,
        "the scan should find the sources, found {}",
        files.len()
    );
    let missing: Vec<String> = files
        .iter()
        .filter(|path| !path.ends_with("build.rs"))
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|path| relative(path))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! header: {missing:#?}"
    );
}

#[test]
fn crate_directories_are_named_after_their_package() {
    for dir in crate_dirs() {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let name = dir.file_name().unwrap().to_str().unwrap();
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "{name}: package name differs"
        );
        assert!(
            name.starts_with("herald-"),
            "{name}: crates are named herald-*"
        );
    }
}

#[test]
fn tests_are_never_ignored_or_expected_to_panic() {
    let mut files = Vec::new();
    rust_files(&workspace_root().join("crates"), &mut files);
    rust_files(&workspace_root().join("tests"), &mut files);
    assert!(
        files.len() > 30,
        "the scan should find the sources, found {}",
        files.len()
    );
    let attributes = [concat!("#[", "ignore"), concat!("#[", "should_panic")];
    let offenders: Vec<String> = files
        .iter()
        .filter(|path| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            attributes.iter().any(|attribute| text.contains(attribute))
        })
        .map(|path| relative(path))
        .collect();
    assert!(offenders.is_empty(), "{offenders:#?}");
}

#[test]
fn only_herald_nats_talks_to_nats() {
    // herald-bench measures raw async-nats as its B1 baseline, a documented exception.
    let allowed = ["herald-nats", "herald-bench"];
    for dir in crate_dirs() {
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        if !allowed.contains(&name.as_str()) {
            assert!(
                !manifest.contains("async-nats"),
                "{name} depends on async-nats"
            );
        }
    }
}

#[test]
fn pure_crates_depend_on_no_runtime_or_protocol_crate() {
    let forbidden = [
        "tokio",
        "axum",
        "reqwest",
        "tonic",
        "async-nats",
        "hyper",
        "prost",
    ];
    for name in ["herald-core", "herald-signing", "herald-cesql"] {
        let manifest = std::fs::read_to_string(
            workspace_root()
                .join("crates")
                .join(name)
                .join("Cargo.toml"),
        )
        .unwrap();
        let dependencies = manifest.split("[dependencies]").nth(1).unwrap_or_default();
        let dependencies = dependencies.split("\n[").next().unwrap_or_default();
        for crate_name in forbidden {
            let depends = dependencies
                .lines()
                .any(|line| line.trim_start().starts_with(crate_name) && line.contains('='));
            assert!(!depends, "{name} must not depend on {crate_name}");
        }
    }
}

#[test]
fn role_crates_never_depend_on_each_other() {
    let roles = ["herald-ingest", "herald-dispatcher", "herald-control"];
    for role in roles {
        let manifest = std::fs::read_to_string(
            workspace_root()
                .join("crates")
                .join(role)
                .join("Cargo.toml"),
        )
        .unwrap();
        for other in roles.iter().filter(|other| **other != role) {
            assert!(
                !manifest.contains(&format!("{other}.workspace")),
                "{role} depends on {other}"
            );
        }
    }
}
