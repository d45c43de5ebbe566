//! Checking that the stages' module files exist, apart from parsing so that `parse` stays pure.

use std::fs;
use std::io::ErrorKind;

use crate::error::{ConfigError, ConfigErrors};
use crate::model::Pipeline;

impl Pipeline {
    /// Reports every stage whose `module` does not name a readable file, at the place the
    /// module is written in the pipeline file.
    pub fn check_modules(&self) -> Result<(), ConfigErrors> {
        let errors: Vec<ConfigError> = self
            .stages
            .iter()
            .flat_map(|stage| {
                let canary = stage.canary.as_ref().map(|c| ("canary module", &c.module));
                std::iter::once(("module", &stage.module))
                    .chain(canary)
                    .filter_map(move |(what, path)| {
                        let problem = module_problem(path)?;
                        Some(ConfigError {
                            path: self.path.clone(),
                            line: stage.module_location.line,
                            column: stage.module_location.column,
                            message: format!(
                                "stage {:?}: {what} {} {problem}",
                                stage.name,
                                path.display()
                            ),
                        })
                    })
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

/// What is wrong with the stage's module file, if anything.
fn module_problem(module: &std::path::Path) -> Option<String> {
    match fs::metadata(module) {
        Ok(metadata) if metadata.is_file() => None,
        Ok(_) => Some("is not a file".to_owned()),
        Err(error) if error.kind() == ErrorKind::NotFound => Some("does not exist".to_owned()),
        Err(error) => Some(format!("cannot be read: {error}")),
    }
}
