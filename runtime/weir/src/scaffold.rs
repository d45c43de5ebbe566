//! `weir new`: a stage project in any supported language, from templates compiled into the
//! binary (`templates/<lang>/`). The project builds with one command (`./build.sh`) against the
//! language's SDK under Weir's `sdk/` directory, and its `pipeline.toml` has `[[test]]` cases
//! that `weir test` passes out of the box.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use clap::ValueEnum;

/// A language `weir new` can scaffold a stage in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    C,
    Go,
    Python,
    Js,
    Zig,
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "Rust",
            Lang::C => "C",
            Lang::Go => "Go",
            Lang::Python => "Python",
            Lang::Js => "JavaScript",
            Lang::Zig => "Zig",
        })
    }
}

/// One file of a template: its path in the project (executable if it ends in `.sh`) and text.
type File = (&'static str, &'static str);

const PIPELINE: &str = include_str!("../templates/common/pipeline.toml");
const README: &str = include_str!("../templates/common/README.md");

const RUST: &[File] = &[
    ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
    ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
    ("build.sh", include_str!("../templates/rust/build.sh")),
    (".gitignore", include_str!("../templates/rust/gitignore")),
];

const PYTHON: &[File] = &[
    ("app.py", include_str!("../templates/python/app.py")),
    (
        "test_app.py",
        include_str!("../templates/python/test_app.py"),
    ),
    ("build.sh", include_str!("../templates/python/build.sh")),
    ("test.sh", include_str!("../templates/python/test.sh")),
    (".gitignore", include_str!("../templates/python/gitignore")),
];

const JS: &[File] = &[
    ("stage.js", include_str!("../templates/js/stage.js")),
    ("shout.js", include_str!("../templates/js/shout.js")),
    (
        "shout.test.js",
        include_str!("../templates/js/shout.test.js"),
    ),
    ("package.json", include_str!("../templates/js/package.json")),
    ("build.sh", include_str!("../templates/js/build.sh")),
    (".gitignore", include_str!("../templates/js/gitignore")),
];

const C: &[File] = &[
    ("stage.c", include_str!("../templates/c/stage.c")),
    ("build.sh", include_str!("../templates/c/build.sh")),
    (".gitignore", include_str!("../templates/c/gitignore")),
];

const GO: &[File] = &[
    ("main.go", include_str!("../templates/go/main.go")),
    ("go.mod", include_str!("../templates/go/go.mod")),
    ("build.sh", include_str!("../templates/go/build.sh")),
    (".gitignore", include_str!("../templates/go/gitignore")),
];

const ZIG: &[File] = &[
    ("stage.zig", include_str!("../templates/zig/stage.zig")),
    ("build.sh", include_str!("../templates/zig/build.sh")),
    (".gitignore", include_str!("../templates/zig/gitignore")),
];

impl Lang {
    fn files(self) -> &'static [File] {
        match self {
            Lang::Rust => RUST,
            Lang::C => C,
            Lang::Go => GO,
            Lang::Python => PYTHON,
            Lang::Js => JS,
            Lang::Zig => ZIG,
        }
    }

    /// The SDK's directory under `sdk/`.
    fn sdk_dir(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::C => "c",
            Lang::Go => "go",
            Lang::Python => "python",
            Lang::Js => "js",
            Lang::Zig => "zig",
        }
    }

    /// The stage's `limits` line: interpreters need more memory and time for their first call.
    fn limits(self) -> &'static str {
        match self {
            Lang::Python => {
                "# A Python instance starts with ~14MiB of linear memory; recycle_memory replaces one\n\
                 # that has grown past 192MiB, between batches.\n\
                 limits = { memory = \"256MiB\", timeout = \"1s\", recycle_memory = \"192MiB\" }"
            }
            Lang::Js => "limits = { memory = \"256MiB\", timeout = \"1s\" }",
            Lang::Go => "limits = { memory = \"128MiB\", timeout = \"200ms\" }",
            Lang::Rust | Lang::C | Lang::Zig => {
                "limits = { memory = \"32MiB\", timeout = \"100ms\" }"
            }
        }
    }

    fn layout(self) -> &'static str {
        match self {
            Lang::Rust => {
                "`src/lib.rs` is the stage; `cargo test` runs its tests natively. `Cargo.toml` \
                 names the Rust SDK by path."
            }
            Lang::Python => {
                "`app.py` is the stage; `./test.sh` runs `test_app.py` on plain Python. \
                 `build.sh` names the Python SDK's directory (or set `WEIR_SDK`)."
            }
            Lang::Js => {
                "`shout.js` is the stage and `stage.js` the component's entry module; \
                 `node --test` runs `shout.test.js` on Node.js. They import the JavaScript SDK \
                 from its copy in `weir/`, which `build.sh` refreshes from the SDK's directory \
                 (or set `WEIR_SDK`)."
            }
            Lang::C => {
                "`stage.c` is the stage. `build.sh` names the C SDK's directory (or set \
                 `WEIR_SDK`), whose build script installs clang, wit-bindgen and wasm-tools \
                 the first time."
            }
            Lang::Go => {
                "`main.go` is the stage. `go.mod` names the Go SDK by path; its build script \
                 installs Go and wasm-tools the first time."
            }
            Lang::Zig => {
                "`stage.zig` is the stage. `build.sh` names the Zig SDK's directory (or set \
                 `WEIR_SDK`), whose build script installs Zig the first time."
            }
        }
    }
}

/// Why `weir new` could not create a project.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "cannot find Weir's SDKs: pass --sdk (or set WEIR_SDK) to the `sdk` directory of a Weir \
         source tree"
    )]
    NoSdk,
    #[error("the SDK directory {} is unreadable: {source}", dir.display())]
    SdkUnreadable { dir: PathBuf, source: io::Error },
    #[error("{} is not Weir's SDK directory (it has no wit/stage.wit)", dir.display())]
    NotSdk { dir: PathBuf },
    #[error("{} does not end in a project name", dir.display())]
    NoName { dir: PathBuf },
    #[error(
        "invalid stage name {0:?}: use lower-case letters, digits, `-` and `_`, starting with a \
         letter (at most 64 characters), such as `geo-enrich`"
    )]
    BadName(String),
    #[error("{} already exists: choose a new directory for the project", dir.display())]
    Exists { dir: PathBuf },
    #[error("there is no {lang} SDK in {} (expected {})", sdk.display(), expected.display())]
    NoLangSdk {
        lang: Lang,
        sdk: PathBuf,
        expected: PathBuf,
    },
    /// A file or directory of the project could not be written.
    #[error("cannot {what} {}: {source}", path.display())]
    Write {
        what: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn write_error(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ScaffoldError {
    let path = path.to_owned();
    move |source| ScaffoldError::Write { what, path, source }
}

/// Where Weir's SDKs are: `sdk`, else `$WEIR_SDK` (clap reads it into `sdk`), else the `sdk/` of
/// the source tree this binary was built from, if it is still there.
pub fn find_sdk(sdk: Option<PathBuf>) -> Result<PathBuf, ScaffoldError> {
    let dir = match sdk {
        Some(dir) => dir,
        None => {
            let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk");
            if !built_from.join("wit/stage.wit").is_file() {
                return Err(ScaffoldError::NoSdk);
            }
            built_from
        }
    };
    let dir = dir
        .canonicalize()
        .map_err(|source| ScaffoldError::SdkUnreadable {
            dir: dir.clone(),
            source,
        })?;
    if !dir.join("wit/stage.wit").is_file() {
        return Err(ScaffoldError::NotSdk { dir });
    }
    Ok(dir)
}

/// Checks the project's name: the last part of its path, which names the stage, the module and
/// (in Rust) the crate.
fn stage_name(dir: &Path) -> Result<String, ScaffoldError> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| ScaffoldError::NoName {
            dir: dir.to_owned(),
        })?;
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !valid {
        return Err(ScaffoldError::BadName(name.to_owned()));
    }
    Ok(name.to_owned())
}

/// Creates the project `dir` for a stage in `lang`, against the SDKs in `sdk`. Returns the files
/// written, relative to `dir`.
pub fn create(lang: Lang, dir: &Path, sdk: &Path) -> Result<Vec<PathBuf>, ScaffoldError> {
    let name = stage_name(dir)?;
    if dir.exists() {
        return Err(ScaffoldError::Exists {
            dir: dir.to_owned(),
        });
    }
    let lang_sdk = sdk.join(lang.sdk_dir());
    if !lang_sdk.is_dir() {
        return Err(ScaffoldError::NoLangSdk {
            lang,
            sdk: sdk.to_owned(),
            expected: lang_sdk,
        });
    }
    std::fs::create_dir_all(dir).map_err(write_error("create", dir))?;
    let ident = name.replace('-', "_");
    let module = format!("{ident}.wasm");
    let sdk_text = sdk.display().to_string();
    let sdk_readme = sdk
        .join(lang.sdk_dir())
        .join("README.md")
        .display()
        .to_string();
    let language = lang.to_string();
    let fill = |text: &str| {
        text.replace("{{limits}}", lang.limits())
            .replace("{{layout}}", lang.layout())
            .replace("{{language}}", &language)
            .replace("{{sdk_readme}}", &sdk_readme)
            .replace("{{sdk}}", &sdk_text)
            .replace("{{module}}", &module)
            .replace("{{ident}}", &ident)
            .replace("{{name}}", &name)
    };
    let common: &[File] = &[("pipeline.toml", PIPELINE), ("README.md", README)];
    let mut written = Vec::new();
    for (path, text) in lang.files().iter().chain(common) {
        let file = dir.join(path);
        if let Some(parent) = file.parent() {
            std::fs::create_dir_all(parent).map_err(write_error("create", parent))?;
        }
        std::fs::write(&file, fill(text)).map_err(write_error("write", &file))?;
        if path.ends_with(".sh") {
            make_executable(&file)?;
        }
        written.push(PathBuf::from(path));
    }
    if lang == Lang::Js {
        // componentize-js evaluates the modules inside one directory: the project keeps a copy
        // of the SDK (build.sh refreshes it).
        let copies = dir.join("weir");
        std::fs::create_dir_all(&copies).map_err(write_error("create", &copies))?;
        for file in ["core.js", "weir.js", "testing.js"] {
            let copy = copies.join(file);
            std::fs::copy(lang_sdk.join(file), &copy)
                .map_err(write_error("copy the SDK to", &copy))?;
            written.push(Path::new("weir").join(file));
        }
    }
    Ok(written)
}

#[cfg(unix)]
fn make_executable(file: &Path) -> Result<(), ScaffoldError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o755))
        .map_err(write_error("make executable", file))
}

#[cfg(not(unix))]
fn make_executable(_file: &Path) -> Result<(), ScaffoldError> {
    Ok(())
}

/// `weir new`: creates the project and says what to do next.
pub fn run(lang: Lang, dir: &Path, sdk: Option<PathBuf>) -> Result<(), ScaffoldError> {
    let sdk = find_sdk(sdk)?;
    let files = create(lang, dir, &sdk)?;
    println!(
        "Created the {lang} stage project {}: {}.",
        dir.display(),
        files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "Next: cd {} && ./build.sh && weir test pipeline.toml",
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["geo", "geo-enrich", "a1_b2"] {
            assert_eq!(stage_name(Path::new(good)).unwrap(), good);
        }
        assert_eq!(stage_name(Path::new("x/y/geo")).unwrap(), "geo");
        for bad in ["Geo", "1geo", "geo enrich", "geo.enrich", "-geo", "", ".."] {
            assert!(stage_name(Path::new(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_template_fills_in() {
        for lang in Lang::value_variants() {
            for (path, text) in lang.files() {
                assert!(!text.is_empty(), "{lang} {path}");
            }
        }
        assert!(PIPELINE.contains("{{limits}}") && README.contains("{{layout}}"));
    }
}
