//! Arbitrary text as a pipeline file, read by `weir_config::parse` (what `weir run`,
//! `weir check` and `weir test` do with a pipeline).
//!
//! Checks that reading never panics and keeps what the crate promises of its errors: never an
//! empty list, in file order, each at a line and column inside the file (from 1; columns in
//! characters) and displayed as `path:line:column: message`; text that is not TOML gets exactly
//! one error, its first syntax error. Reading the same text twice gives the same answer.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("pipelines/fuzz.toml");
    let result = weir_config::parse(text, path);

    match &result {
        Ok(pipeline) => {
            let _ = pipeline.all_output_topics();
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an empty error list");
            let lines: Vec<&str> = text.split('\n').collect();
            for e in &errors.0 {
                assert_eq!(e.path, path);
                assert!(
                    (1..=lines.len()).contains(&e.line),
                    "line {} of a {}-line file: {e}",
                    e.line,
                    lines.len()
                );
                let width = lines[e.line - 1].chars().count();
                assert!(
                    (1..=width + 1).contains(&e.column),
                    "column {} of a {width}-character line: {e}",
                    e.column
                );
                let prefix = format!("pipelines/fuzz.toml:{}:{}: ", e.line, e.column);
                assert!(e.to_string().starts_with(&prefix), "{e}");
                assert!(!e.message.is_empty());
            }
            assert!(
                errors.0.is_sorted_by_key(|e| (e.line, e.column)),
                "errors out of file order: {errors}"
            );
            assert_eq!(errors.to_string().lines().count(), errors.0.len());
            if toml::de::DeTable::parse(text).is_err() {
                assert_eq!(errors.0.len(), 1, "{errors}");
                assert!(errors.0[0].message.starts_with("invalid TOML"), "{errors}");
            }
        }
    }

    // Floats (NaN) rule out comparing the pipelines themselves.
    let again = weir_config::parse(text, path);
    assert_eq!(format!("{again:?}"), format!("{result:?}"));
});
