//! The on-disk cache of compiled modules: owns the cache folder and its entries' names and
//! checksums; compiling and deserializing are `host.rs`'s. A cached artefact is native code the engine runs, so
//! the cache trusts nothing it did not write itself:
//!
//! - the folder is created owner-only, and a folder (or entry) that someone else owns, or that
//!   others may write to, is not used at all (logged once; modules are then compiled at every
//!   start);
//! - an entry is named by the SHA-256 of the module's bytes and the engine's compatibility hash
//!   (which covers the engine's configuration and the wasmtime version), and holds a SHA-256 of
//!   its own content: an entry that does not match (truncated, corrupted, copied from elsewhere)
//!   is a miss, logged once, and is compiled again and overwritten.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};

/// What every entry starts with, before the SHA-256 of the rest.
const MAGIC: &[u8] = b"weir-cwasm-1\n";

/// A cache folder Weir may trust.
#[derive(Debug)]
pub(crate) struct DiskCache {
    dir: PathBuf,
    /// Whether a mismatching entry was logged already.
    told_mismatch: AtomicBool,
}

/// Why a folder or file of the cache is not trusted.
fn untrusted(meta: &fs::Metadata) -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Some("it belongs to another user");
    }
    if meta.permissions().mode() & 0o022 != 0 {
        return Some("others may write to it");
    }
    None
}

impl DiskCache {
    /// The cache in `dir`, created owner-only when missing; `None` (logged) when the folder
    /// cannot be created or is not trusted.
    pub fn open(dir: &Path) -> Option<Self> {
        if let Err(error) = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
        {
            tracing::warn!(%error, dir = %dir.display(), "Module cache unavailable; compiling every start.");
            return None;
        }
        match fs::metadata(dir) {
            Ok(meta) => {
                if let Some(why) = untrusted(&meta) {
                    tracing::warn!(
                        dir = %dir.display(),
                        why,
                        "Module cache not used: {why}; compiling every start."
                    );
                    return None;
                }
            }
            Err(error) => {
                tracing::warn!(%error, dir = %dir.display(), "Module cache unavailable; compiling every start.");
                return None;
            }
        }
        Some(Self {
            dir: dir.to_owned(),
            told_mismatch: AtomicBool::new(false),
        })
    }

    fn file(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// The artefact stored under `key`, if there is one that this cache wrote and that is
    /// intact.
    pub fn load(&self, key: &str) -> Option<Vec<u8>> {
        let file = self.file(key);
        let meta = fs::symlink_metadata(&file).ok()?;
        let problem = if !meta.is_file() {
            Some("not a plain file")
        } else {
            untrusted(&meta)
        };
        let content = match problem {
            Some(why) => Err(why),
            None => fs::read(&file).map_err(|_| "unreadable"),
        };
        let body = content.and_then(|c| {
            let rest = c.strip_prefix(MAGIC).ok_or("not an entry of this cache")?;
            let (digest, body) = rest.split_at_checked(32).ok_or("truncated")?;
            (Sha256::digest(body).as_slice() == digest)
                .then(|| body.to_vec())
                .ok_or("its content does not match its checksum")
        });
        match body {
            Ok(body) => Some(body),
            Err(why) => {
                if !self.told_mismatch.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        file = %file.display(),
                        why,
                        "Cached module not used: {why}; compiling it again."
                    );
                }
                None
            }
        }
    }

    /// Stores `artefact` under `key` (owner-only, written whole or not at all).
    pub fn store(&self, key: &str, artefact: &[u8]) -> std::io::Result<()> {
        let file = self.file(key);
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        out.write_all(MAGIC)?;
        out.write_all(&Sha256::digest(artefact))?;
        out.write_all(artefact)?;
        out.sync_all()?;
        drop(out);
        fs::rename(&tmp, &file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, DiskCache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::open(&dir.path().join("weir")).expect("a fresh folder is trusted");
        (dir, cache)
    }

    #[test]
    fn an_entry_comes_back_as_stored_from_an_owner_only_folder() {
        let (_dir, cache) = cache();
        let mode = fs::metadata(&cache.dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        cache.store("abc-1", b"native code").unwrap();
        assert_eq!(cache.load("abc-1").as_deref(), Some(&b"native code"[..]));
        let file_mode = fs::metadata(cache.file("abc-1"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(file_mode & 0o777, 0o600);
        assert_eq!(cache.load("abc-2"), None, "another key is a miss");
    }

    #[test]
    fn an_entry_that_does_not_match_is_a_miss() {
        let (_dir, cache) = cache();
        cache.store("k", b"native code").unwrap();
        let file = cache.file("k");
        let mut bytes = fs::read(&file).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        fs::write(&file, &bytes).unwrap();
        assert_eq!(cache.load("k"), None, "tampered");
        fs::write(&file, &bytes[..MAGIC.len() + 10]).unwrap();
        assert_eq!(cache.load("k"), None, "truncated");
        fs::write(&file, b"\x7fELF a precompiled artefact put there by hand").unwrap();
        assert_eq!(cache.load("k"), None, "not written by this cache");
        // Stored again, it is a hit again.
        cache.store("k", b"native code").unwrap();
        assert!(cache.load("k").is_some());
    }

    #[test]
    fn a_folder_or_entry_others_may_write_to_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(DiskCache::open(&shared).is_none());

        let (_dir, cache) = cache();
        cache.store("k", b"native code").unwrap();
        fs::set_permissions(cache.file("k"), fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(cache.load("k"), None);
    }
}
