//! `weir new`: a scaffolded stage project builds with its one command and passes `weir test` on
//! its own pipeline out of the box (Rust and Python here); bad requests are refused clearly.
//!
//! Projects are created under `target/scaffold/` (recreated on every run, at the same paths, so
//! the builds and the compiled-module cache are reused across runs).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{repo, weir_cli};

fn scaffold_dir() -> PathBuf {
    let dir = repo().join("target/scaffold");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fresh project directory path (not created).
fn project(name: &str) -> PathBuf {
    let dir = scaffold_dir().join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    dir
}

fn run(dir: &Path, program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        // A nested cargo builds for itself, into a target directory kept across runs.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env("CARGO_TARGET_DIR", scaffold_dir().join("cargo-target"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `weir new`, `./build.sh`, `weir test pipeline.toml`.
fn scaffold_build_and_test(lang: &str, name: &str) {
    let dir = project(name);
    let path = dir.display().to_string();
    let (ok, stdout, stderr) = weir_cli(&["new", "--lang", lang, &path]);
    assert!(ok, "weir new --lang {lang} failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("./build.sh"), "{stdout}");
    for file in ["build.sh", "pipeline.toml", "README.md"] {
        assert!(dir.join(file).is_file(), "{lang}: no {file}");
    }

    let (ok, out) = run(&dir, "./build.sh", &[]);
    assert!(ok, "{lang}: ./build.sh failed:\n{out}");
    let module = dir.join(format!("{}.wasm", name.replace('-', "_")));
    assert!(
        module.is_file(),
        "{lang}: ./build.sh made no {}",
        module.display()
    );

    let pipeline = dir.join("pipeline.toml").display().to_string();
    let (ok, stdout, stderr) = weir_cli(&["test", &pipeline]);
    assert!(ok, "{lang}: weir test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("2 passed, 0 failed"), "{lang}: {stdout}");
}

#[test]
fn a_rust_project_builds_and_passes_its_tests() {
    scaffold_build_and_test("rust", "hello-rust");
}

#[test]
fn a_python_project_builds_and_passes_its_tests() {
    scaffold_build_and_test("python", "hello-python");
}

#[test]
fn bad_requests_are_refused_clearly() {
    let existing = project("already-there");
    std::fs::create_dir_all(&existing).unwrap();
    let path = existing.display().to_string();
    let (ok, _, stderr) = weir_cli(&["new", "--lang", "rust", &path]);
    assert!(!ok && stderr.contains("already exists"), "{stderr}");

    for bad in ["Hello", "1st", "my stage", "my.stage"] {
        let path = scaffold_dir().join(bad).display().to_string();
        let (ok, _, stderr) = weir_cli(&["new", "--lang", "rust", &path]);
        assert!(
            !ok && stderr.contains("invalid stage name"),
            "{bad}: {stderr}"
        );
        assert!(
            !Path::new(&path).exists(),
            "{bad}: a directory was left behind"
        );
    }

    let path = project("hello-cobol").display().to_string();
    let (ok, _, stderr) = weir_cli(&["new", "--lang", "cobol", &path]);
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("invalid value 'cobol'") && stderr.contains("python"),
        "{stderr}"
    );

    let (ok, _, stderr) = weir_cli(&["new", "--lang", "rust", "--sdk", "/nonexistent", &path]);
    assert!(!ok && stderr.contains("SDK directory"), "{stderr}");
}
