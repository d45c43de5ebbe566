//! What an aggregate stage's changelog holds, and the state it restores to.
//!
//! A partition's records are keyed by a prefix (the source topic and partition), then a kind
//! byte: the meta record (the module's state version, the next source offset the state covers,
//! the window state's snapshot header), or one record per grouping key (the offset its state
//! covers, then the key's windows; none: the key holds no window).
//!
//! Owns the byte layout of those records and rebuilding a window state from them; may not read
//! or write Kafka (the lane reads the changelog, [`super::checkpoint`] writes it) nor fold.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use weir_core::window::{WindowConfig, WindowState};

use super::error::RestoreError;

/// Version of the changelog's meta record.
const META_VERSION: u8 = 1;
const META_MAGIC: &[u8; 4] = b"WCKP";
/// Kinds of changelog keys, after the partition prefix.
const META_KEY: u8 = 0;
const WINDOW_KEY: u8 = 1;
/// Version of a key record's value: `u8:1 i64:covered_next` then the key's windows (none: the
/// key holds no window).
const KEY_VERSION: u8 = 1;

/// Changelog keys of a source partition: the topic, a 0 byte, the partition (big-endian).
pub(super) fn key_prefix(topic: &str, partition: i32) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(topic.len() + 5);
    prefix.extend_from_slice(topic.as_bytes());
    prefix.push(0);
    prefix.extend_from_slice(&partition.to_be_bytes());
    prefix
}

/// The changelog key of the meta record of the partition of `prefix`.
pub(super) fn meta_key(prefix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 1);
    k.extend_from_slice(prefix);
    k.push(META_KEY);
    k
}

/// The changelog key of grouping key `key`'s windows on the partition of `prefix`.
pub(super) fn window_key(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 1 + key.len());
    k.extend_from_slice(prefix);
    k.push(WINDOW_KEY);
    k.extend_from_slice(key);
    k
}

/// The meta record: `"WCKP" u8:1 u32:state_version i64:next_offset` (little-endian), then the
/// window state's snapshot header.
pub(super) fn encode_meta(state_version: u32, next_offset: i64, header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + header.len());
    out.extend_from_slice(META_MAGIC);
    out.push(META_VERSION);
    out.extend_from_slice(&state_version.to_le_bytes());
    out.extend_from_slice(&next_offset.to_le_bytes());
    out.extend_from_slice(header);
    out
}

/// A key record: the offset its state covers, then the key's windows.
pub(super) fn encode_key_value(covered_next: i64, windows: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + windows.len());
    out.push(KEY_VERSION);
    out.extend_from_slice(&covered_next.to_le_bytes());
    out.extend_from_slice(windows);
    out
}

/// The offset a key record covers, and the key's windows (empty: none).
fn parse_key_value(bytes: &[u8]) -> Option<(i64, &[u8])> {
    let (&version, rest) = bytes.split_first()?;
    if version != KEY_VERSION || rest.len() < 8 {
        return None;
    }
    Some((i64::from_le_bytes(rest[..8].try_into().ok()?), &rest[8..]))
}

fn parse_meta(bytes: &[u8]) -> Option<(u32, i64, &[u8])> {
    let rest = bytes.strip_prefix(META_MAGIC)?;
    let (&version, rest) = rest.split_first()?;
    if version != META_VERSION || rest.len() < 12 {
        return None;
    }
    let state_version = u32::from_le_bytes(rest[..4].try_into().ok()?);
    let next = i64::from_le_bytes(rest[4..12].try_into().ok()?);
    Some((state_version, next, &rest[12..]))
}

/// A partition's state as a changelog holds it.
#[derive(Debug)]
pub(super) struct Restored {
    pub state: WindowState<Vec<u8>>,
    /// Records below it are in `state`.
    pub restored_next: i64,
    /// Keys whose state covers their records below a later offset (a checkpoint cut short).
    pub covered: HashMap<Arc<[u8]>, i64>,
}

/// Rebuilds a partition's state from the last value of each of its changelog keys (without
/// the partition prefix), for a module of `state_version`, at wall time `now`.
pub(super) fn restore(
    stored: &BTreeMap<Vec<u8>, Vec<u8>>,
    config: WindowConfig,
    state_version: u32,
    now: i64,
) -> Result<Restored, RestoreError> {
    let window = |source| RestoreError::Window { source };
    let (header, restored_next) = match stored.get(&[META_KEY][..]) {
        None => (
            WindowState::<Vec<u8>>::new(config)
                .map_err(window)?
                .snapshot_header(),
            i64::MIN,
        ),
        Some(meta) => {
            let (found, next, header) = parse_meta(meta).ok_or(RestoreError::Meta)?;
            if found != state_version {
                return Err(RestoreError::StateVersion {
                    found,
                    expected: state_version,
                });
            }
            (header.to_vec(), next)
        }
    };
    let mut keys = Vec::new();
    let mut covered = HashMap::new();
    for (k, v) in stored {
        let Some((&WINDOW_KEY, key)) = k.split_first() else {
            continue;
        };
        let (next, body) = parse_key_value(v).ok_or(RestoreError::Key)?;
        if next > restored_next {
            covered.insert(Arc::from(key), next);
        }
        if !body.is_empty() {
            keys.push((key, body));
        }
    }
    let state = WindowState::restore_parts(config, &header, keys, now).map_err(window)?;
    Ok(Restored {
        state,
        restored_next,
        covered,
    })
}

#[cfg(test)]
mod tests {
    use weir_core::window::{Window, WindowSpec};

    use super::*;

    #[test]
    fn meta_round_trips() {
        let encoded = encode_meta(3, 12_345, b"WWIN-header");
        assert_eq!(parse_meta(&encoded), Some((3, 12_345, &b"WWIN-header"[..])));
        assert_eq!(parse_meta(&encoded[..10]), None);
        assert_eq!(parse_meta(b"nope"), None);
    }

    /// The changelog of a partition after a complete checkpoint (next offset 10) and one cut
    /// short (next offset 20): key `a` and the emptied key `c` were written again, the meta
    /// record was not.
    #[test]
    fn a_checkpoint_cut_short_covers_only_the_keys_it_wrote() {
        let config = WindowConfig::new(WindowSpec::Tumbling { size_ms: 10 });
        let mut first = WindowState::<Vec<u8>>::new(config).unwrap();
        first
            .fold_batch(&[(b"a", 1), (b"b", 2), (b"c", 3)], 0, |_| b"1".to_vec())
            .unwrap();
        let mut later = first.clone();
        later
            .fold_batch(&[(b"a", 4)], 0, |_| b"2".to_vec())
            .unwrap();
        later.discard(&Arc::from(&b"c"[..]), &Window::new(0, 10));

        let key = |k: &[u8]| window_key(&[], k);
        let mut stored = BTreeMap::new();
        stored.insert(meta_key(&[]), encode_meta(3, 10, &first.snapshot_header()));
        stored.insert(
            key(b"b"),
            encode_key_value(10, &first.snapshot_key(b"b").unwrap()),
        );
        stored.insert(
            key(b"a"),
            encode_key_value(20, &later.snapshot_key(b"a").unwrap()),
        );
        stored.insert(key(b"c"), encode_key_value(20, b""));

        let restored = restore(&stored, config, 3, 0).unwrap();
        assert_eq!(restored.restored_next, 10);
        let covered: BTreeMap<_, _> = restored
            .covered
            .iter()
            .map(|(k, n)| (k.to_vec(), *n))
            .collect();
        assert_eq!(covered, [(b"a".to_vec(), 20), (b"c".to_vec(), 20)].into());
        let held: Vec<(Vec<u8>, Vec<u8>)> = restored
            .state
            .iter()
            .map(|(k, _, acc)| (k.to_vec(), acc.clone()))
            .collect();
        assert_eq!(
            held,
            [
                (b"a".to_vec(), b"2".to_vec()),
                (b"b".to_vec(), b"1".to_vec())
            ]
        );

        let wrong = restore(&stored, config, 4, 0).unwrap_err();
        assert!(
            matches!(
                wrong,
                RestoreError::StateVersion {
                    found: 3,
                    expected: 4
                }
            ),
            "{wrong}"
        );
        assert!(wrong.to_string().contains("state version 3"), "{wrong}");
    }

    #[test]
    fn records_that_do_not_decode_are_refused() {
        let config = WindowConfig::new(WindowSpec::Tumbling { size_ms: 10 });
        let mut stored = BTreeMap::new();
        stored.insert(window_key(&[], b"a"), b"\x02garbage".to_vec());
        assert!(matches!(
            restore(&stored, config, 1, 0),
            Err(RestoreError::Key)
        ));
        stored.insert(meta_key(&[]), b"WCKP".to_vec());
        assert!(matches!(
            restore(&stored, config, 1, 0),
            Err(RestoreError::Meta)
        ));
    }

    #[test]
    fn key_values_round_trip() {
        let encoded = encode_key_value(-7, b"windows");
        assert_eq!(parse_key_value(&encoded), Some((-7, &b"windows"[..])));
        assert_eq!(
            parse_key_value(&encode_key_value(9, b"")),
            Some((9, &b""[..]))
        );
        assert_eq!(parse_key_value(&encoded[..5]), None);
        assert_eq!(parse_key_value(b""), None);
    }

    #[test]
    fn prefixes_of_partitions_differ_and_do_not_nest() {
        let a = key_prefix("clicks", 1);
        let b = key_prefix("clicks", 256);
        let c = key_prefix("clicks.eu", 1);
        assert_ne!(a, b);
        assert!(!c.starts_with(&a) && !a.starts_with(&c));
        assert!(meta_key(&a).starts_with(&a) && window_key(&a, b"k").starts_with(&a));
        assert_ne!(meta_key(&a), window_key(&a, b""));
    }
}
