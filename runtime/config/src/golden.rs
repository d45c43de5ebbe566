//! Golden tests: each `tests/golden/NAME.toml` is parsed and its errors compared with
//! `NAME.err`; files named `ok_*.toml` must parse without error and have no `.err`.
//!
//! `WEIR_BLESS=1 cargo test -p weir-config golden` rewrites the `.err` files from the output.

use std::fs;
use std::path::{Path, PathBuf};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden");

fn files_with_extension(extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(DIR)
        .expect("tests/golden is readable")
        .map(|entry| entry.expect("tests/golden is readable").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .collect();
    files.sort();
    files
}

#[test]
fn every_expectation_has_its_pipeline() {
    for expected in files_with_extension("err") {
        let pipeline = expected.with_extension("toml");
        assert!(pipeline.exists(), "{} has no .toml", expected.display());
    }
}

#[test]
fn golden() {
    let bless = std::env::var_os("WEIR_BLESS").is_some_and(|value| value == "1");
    let files = files_with_extension("toml");
    assert!(!files.is_empty(), "no golden files in {DIR}");
    let mut failures = Vec::new();
    for file in files {
        let name = file
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("UTF-8 file name");
        let text = fs::read_to_string(&file).expect("golden file is readable");
        // A relative path keeps the messages independent of where the repository is.
        let shown = Path::new("tests/golden").join(file.file_name().expect("file name"));
        let result = crate::parse(&text, &shown);
        let expected_file = file.with_extension("err");

        if name.starts_with("ok_") {
            if let Err(errors) = result {
                failures.push(format!("{name}: expected no errors, got:\n{errors}"));
            }
            if expected_file.exists() {
                failures.push(format!("{name}: a valid file has no .err file"));
            }
            continue;
        }
        let actual = match result {
            Ok(_) => "no errors\n".to_owned(),
            Err(errors) => format!("{errors}\n"),
        };
        if bless {
            fs::write(&expected_file, &actual).expect("golden .err file is writable");
            continue;
        }
        let expected = fs::read_to_string(&expected_file).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "{name}:\n--- expected\n{expected}--- actual\n{actual}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden file(s) differ; rerun with WEIR_BLESS=1 to accept the output\n\n{}",
        failures.len(),
        failures.join("\n")
    );
}
