//! Files on a local disk, made durable: a Parquet file is written under a hidden temporary name,
//! synced, renamed into place and its folder synced, so a reader sees a whole file or none.
//! Each source partition's progress (the last source offset whose rows are all in complete
//! files) is kept the same way, in `_weir/<topic>-<partition>.offset` under the store's path.
//!
//! Owns: file names and the durable-write sequence. Touches no Arrow conversion.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use crate::StoreError;

/// The folder of the progress files, under the store's path. Readers of the lake skip folders
/// whose names start with `_`.
pub const PROGRESS_DIR: &str = "_weir";

/// The name of the file that holds the rows of source partition `partition` of `topic` from
/// source offset `first` on: `<topic>-<partition>-<first, 20 digits>.parquet`. A rewrite of the
/// same rows after a crash has the same name, so it replaces the file.
pub fn file_name(topic: &str, partition: i32, first: i64) -> String {
    format!("{topic}-{partition}-{first:020}.parquet")
}

/// The file `name` in Hive folder `folder` (empty without `partition_by`), relative to the
/// store's path.
pub fn relative(folder: &str, name: &str) -> String {
    if folder.is_empty() {
        name.to_owned()
    } else {
        format!("{folder}/{name}")
    }
}

/// The hidden name a file is written under before it is complete. Readers skip names that
/// start with `.`, and it does not end with `.parquet`.
fn temporary(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    path.with_file_name(format!(".{name}.tmp"))
}

/// `batches` as the bytes of one Parquet file.
pub fn encode_parquet(
    schema: &SchemaRef,
    properties: &WriterProperties,
    batches: &[RecordBatch],
    name: &str,
) -> Result<Vec<u8>, StoreError> {
    let parquet = |source| StoreError::Parquet {
        path: name.into(),
        source,
    };
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties.clone()))
        .map_err(parquet)?;
    for batch in batches {
        writer.write(batch).map_err(parquet)?;
    }
    writer.into_inner().map_err(parquet)
}

/// Writes `batches` to the Parquet file `path` durably. Returns the file's size in bytes.
pub fn write_parquet(
    path: &Path,
    schema: &SchemaRef,
    properties: &WriterProperties,
    batches: &[RecordBatch],
) -> Result<u64, StoreError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    create_folder(folder)?;
    let temporary = temporary(path);
    let file = File::create(&temporary).map_err(StoreError::io("cannot create", &temporary))?;
    let parquet = |source| StoreError::Parquet {
        path: temporary.clone(),
        source,
    };
    let mut writer =
        ArrowWriter::try_new(file, schema.clone(), Some(properties.clone())).map_err(parquet)?;
    for batch in batches {
        writer.write(batch).map_err(parquet)?;
    }
    let file = writer.into_inner().map_err(parquet)?;
    file.sync_all()
        .map_err(StoreError::io("cannot sync", &temporary))?;
    let size = file
        .metadata()
        .map_err(StoreError::io("cannot read the size of", &temporary))?
        .len();
    drop(file);
    fs::rename(&temporary, path).map_err(StoreError::io("cannot rename into place", path))?;
    sync_folder(folder)?;
    Ok(size)
}

/// Removes the temporary file of `path`, if any (after a failed write).
pub fn discard(path: &Path) {
    let _ = fs::remove_file(temporary(path));
}

/// Creates `folder` and any missing parent, syncing the parent of each it creates so the new
/// entries survive a crash.
fn create_folder(folder: &Path) -> Result<(), StoreError> {
    if folder.is_dir() {
        return Ok(());
    }
    if let Some(parent) = folder.parent()
        && !parent.as_os_str().is_empty()
    {
        create_folder(parent)?;
    }
    match fs::create_dir(folder) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            return Err(StoreError::io("cannot create folder", folder)(e));
        }
        _ => {}
    }
    match folder.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_folder(parent),
        _ => Ok(()),
    }
}

fn sync_folder(folder: &Path) -> Result<(), StoreError> {
    File::open(folder)
        .and_then(|f| f.sync_all())
        .map_err(StoreError::io("cannot sync folder", folder))
}

/// Where the progress of source partition `partition` of `topic` is kept under `root`.
pub fn progress_path(root: &Path, topic: &str, partition: i32) -> PathBuf {
    root.join(PROGRESS_DIR)
        .join(format!("{topic}-{partition}.offset"))
}

/// The last source offset whose rows are all in complete files, if any was recorded.
pub fn read_progress(path: &Path) -> Result<Option<i64>, StoreError> {
    match fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| StoreError::Progress {
                path: path.display().to_string(),
                text,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io("cannot read", path)(e)),
    }
}

/// Records `offset` as the last source offset whose rows are all in complete files, durably.
pub fn write_progress(path: &Path, offset: i64) -> Result<(), StoreError> {
    let folder = path.parent().unwrap_or(Path::new("."));
    create_folder(folder)?;
    let temporary = temporary(path);
    let mut file = File::create(&temporary).map_err(StoreError::io("cannot create", &temporary))?;
    file.write_all(format!("{offset}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(StoreError::io("cannot write", &temporary))?;
    drop(file);
    fs::rename(&temporary, path).map_err(StoreError::io("cannot rename into place", path))?;
    sync_folder(folder)
}
