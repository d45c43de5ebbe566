//! The command line without a broker: every example pipeline validates and passes its tests;
//! modules of the wrong world or contract version are refused at load with a clear reason.

use crate::harness::{module, one_stage_pipeline, repo, weir_cli, weir_cli_code, write_pipeline};

/// A source that is never contacted: these tests stop before Kafka.
const OFFLINE_SOURCE: &str =
    "[source]\nbrokers = \"127.0.0.1:9\"\ntopics = [\"in\"]\ngroup = \"g\"\n";

fn example_pipelines() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(repo().join("pipelines"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| p.display().to_string())
        .collect();
    v.sort();
    assert!(!v.is_empty());
    v
}

#[test]
fn every_example_pipeline_validates_and_passes_its_tests() {
    let pipelines = example_pipelines();
    let mut args = vec!["validate"];
    args.extend(pipelines.iter().map(String::as_str));
    let (ok, stdout, stderr) = weir_cli(&args);
    assert!(ok, "validate failed:\n{stdout}\n{stderr}");

    let mut args = vec!["test"];
    args.extend(pipelines.iter().map(String::as_str));
    let (ok, stdout, stderr) = weir_cli(&args);
    assert!(ok, "weir test failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
    assert!(
        !stdout.contains("0 passed"),
        "the examples have test cases: {stdout}"
    );
}

fn pipeline_with(module_name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    write_pipeline(&one_stage_pipeline(
        "load",
        OFFLINE_SOURCE,
        "s",
        &module(module_name),
        "",
        "out",
        "dlq",
    ))
}

#[test]
fn a_module_built_against_another_contract_version_is_refused_at_load() {
    let (_d, p) = pipeline_with("wrong_version");
    let (ok, _, stderr) = weir_cli(&["validate", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("was built against contract weir:stage@0.2.0")
            && stderr.contains("implements weir:stage@0.1.0"),
        "{stderr}"
    );
}

#[test]
fn a_module_of_another_world_is_refused_at_load() {
    let (_d, p) = pipeline_with("wrong_world");
    let (ok, _, stderr) = weir_cli(&["validate", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("does not export `weir:stage/enrich@0.1.0`"),
        "{stderr}"
    );
}

#[test]
fn a_stage_that_refuses_its_config_is_refused_at_load() {
    let (_d, p) = write_pipeline(&one_stage_pipeline(
        "load",
        OFFLINE_SOURCE,
        "enrich",
        &module("json_enrich"),
        "config = { field = 42 }",
        "out",
        "dlq",
    ));
    let (ok, _, stderr) = weir_cli(&["validate", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("stage enrich refused its configuration"),
        "{stderr}"
    );
}

#[test]
fn a_file_that_is_not_wasm_is_refused_with_its_path() {
    let (dir, p) = pipeline_with("identity");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm at all").unwrap();
    let text = std::fs::read_to_string(&p).unwrap();
    let text = text.replace(
        &module("identity").display().to_string(),
        &junk.display().to_string(),
    );
    std::fs::write(&p, text).unwrap();
    let (ok, _, stderr) = weir_cli(&["validate", p.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("is not a valid WebAssembly component"),
        "{stderr}"
    );
}

/// `weir run PIPELINE` to its end; its exit code and standard error.
fn run_code(pipeline: &std::path::Path) -> (Option<i32>, String) {
    let pipeline = pipeline.to_str().unwrap();
    let (code, _, stderr) = weir_cli_code(&["run", "--no-watch", pipeline], &[]);
    (code, stderr)
}

#[test]
fn weir_run_says_with_its_exit_code_what_kind_of_thing_failed() {
    // 2: the configuration.
    let (_d, bad_config) = write_pipeline("name = \"no-source\"\n");
    let (code, stderr) = run_code(&bad_config);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("missing required"), "{stderr}");

    // 3: a module.
    let (_d, bad_module) = pipeline_with("wrong_world");
    let (code, stderr) = run_code(&bad_module);
    assert_eq!(code, Some(3), "{stderr}");

    // 4: the cluster (nothing listens on port 9 of loopback).
    let (_d, no_cluster) = pipeline_with("identity");
    let (code, stderr) = run_code(&no_cluster);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("cannot read metadata"), "{stderr}");
}
