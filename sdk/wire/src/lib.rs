//! The Weir batch encoding (format 3), specified in `sdk/wit/BATCH.md`.
//!
//! Records cross the host/guest boundary as one flat buffer per batch. This crate is the reference
//! implementation used by both the runtime and the Rust SDK: writers that append into one
//! `Vec<u8>`, a batch reader that borrows from the buffer without copying (the guest's side), and
//! a result reader that turns entries into owned records sharing the result buffer, or the input
//! records' own fields where an output passes them through unchanged (the host's side).
//!
//! ```
//! use weir_wire::{BatchReader, BatchWriter, Header};
//!
//! let mut w = BatchWriter::new("clicks", 3);
//! w.push(42, Some(1_700_000_000_000), Some(b"k"), Some(b"{}"), [Header::new("h", Some(b"v"))]);
//! let buf = w.finish();
//!
//! let batch = BatchReader::new(&buf).unwrap();
//! assert_eq!(batch.topic(), "clicks");
//! let rec = batch.records().next().unwrap().unwrap();
//! assert_eq!((rec.offset, rec.value), (42, Some(&b"{}"[..])));
//! ```

#![forbid(unsafe_code)]

use std::str;

pub use bytes::Bytes;

/// The batch encoding version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 3;

const ABSENT_LEN: u32 = u32::MAX;
const NO_TIMESTAMP: i64 = i64::MIN;
const TAG_OK: u8 = 0;
const TAG_ERR: u8 = 1;
const TAG_INPUT: u8 = 2;
/// The smallest input record: offset, timestamp, key and value lengths, header count.
const MIN_RECORD: usize = 8 + 8 + 4 + 4 + 4;
/// Bits of an output record's `same` byte: the field is its input's, and is not written.
const SAME_KEY: u8 = 1;
const SAME_VALUE: u8 = 2;
const SAME_HEADERS: u8 = 4;
const SAME_ALL: u8 = SAME_KEY | SAME_VALUE | SAME_HEADERS;
/// An output record that is exactly its input: every field marked, no timestamp of its own.
const INPUT_UNCHANGED: [u8; 9] = {
    let mut b = [0; 9];
    b[0] = SAME_ALL;
    let ts = NO_TIMESTAMP.to_le_bytes();
    let mut i = 0;
    while i < 8 {
        b[i + 1] = ts[i];
        i += 1;
    }
    b
};

/// Why a buffer is not a valid batch or batch result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ended inside a field.
    #[error("truncated at byte {at}: needed {needed} more bytes")]
    Truncated { at: usize, needed: usize },
    /// The buffer declares a format this reader does not speak.
    #[error("batch format {found} is not supported (this side speaks format {FORMAT_VERSION})")]
    Format { found: u32 },
    /// A string field is not UTF-8.
    #[error("field at byte {at} is not valid UTF-8")]
    Utf8 { at: usize },
    /// A result entry has an unknown tag.
    #[error("unknown entry tag {tag} at byte {at}")]
    Tag { tag: u8, at: usize },
    /// An output record's `same` byte has bits this format does not define.
    #[error("unknown `same` bits {bits:#04x} at byte {at}")]
    Same { bits: u8, at: usize },
    /// A result does not hold one entry per input record.
    #[error("the result holds {found} entries for {expected} input records")]
    Count { found: usize, expected: usize },
    /// Bytes are left over after the declared content.
    #[error("{extra} trailing bytes after the last entry")]
    Trailing { extra: usize },
    /// An input record's fields do not end where its length says.
    #[error("the record at byte {at} declares {declared} bytes but its fields take {used}")]
    Length {
        at: usize,
        declared: usize,
        used: usize,
    },
}

/// A record header: a name and an optional value, as in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a str,
    pub value: Option<&'a [u8]>,
}

impl<'a> Header<'a> {
    pub fn new(name: &'a str, value: Option<&'a [u8]>) -> Self {
        Self { name, value }
    }
}

/// An owned record, as the Rust SDK hands it to a stage and the host hands it on.
///
/// Key and value are [`Bytes`]: records decoded from a batch share the batch's one buffer instead
/// of copying their fields out of it, and cloning a record copies no bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The source offset this record derives from (ignored on output).
    pub offset: i64,
    /// Milliseconds since the Unix epoch; `None` on output keeps the input's timestamp.
    pub timestamp: Option<i64>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Headers,
}

impl Record {
    /// A record with no key, value, headers or timestamp, at offset 0.
    pub const EMPTY: Record = Record {
        offset: 0,
        timestamp: None,
        key: None,
        value: None,
        headers: Headers {
            count: 0,
            raw: Bytes::new(),
        },
    };

    /// The value of the first header called `name`, if it has one.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name).flatten()
    }
}

/// A record's headers, kept in their encoded form (as they sit in a batch) until changed: a record
/// that passes through a stage with its headers untouched never decodes or copies them one by one.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    count: u32,
    /// `count` encoded (name, value) pairs; always valid.
    raw: Bytes,
}

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of the headers' encoded form: their names and values and a length for each.
    pub fn encoded_len(&self) -> usize {
        self.raw.len()
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The headers in order.
    pub fn iter(&self) -> impl Iterator<Item = Header<'_>> {
        HeaderIter {
            cur: Cursor {
                buf: &self.raw,
                at: 0,
            },
            left: self.count,
        }
        .map(|h| h.expect("owned headers are always valid"))
    }

    /// The value of the first header called `name`: `None` when there is no such header,
    /// `Some(None)` when it has no value.
    pub fn get(&self, name: &str) -> Option<Option<&[u8]>> {
        self.iter().find(|h| h.name == name).map(|h| h.value)
    }

    /// Appends headers (Kafka allows several of one name).
    pub fn extend<'h>(&mut self, more: impl IntoIterator<Item = Header<'h>>) {
        let mut more = more.into_iter().peekable();
        if more.peek().is_none() {
            // Most records have no headers: allocate nothing for them.
            return;
        }
        let mut buf = Vec::with_capacity(self.raw.len() + 64);
        buf.extend_from_slice(&self.raw);
        for h in more {
            put_header(&mut buf, &h);
            self.count += 1;
        }
        self.raw = buf.into();
    }

    /// Appends one header.
    pub fn push(&mut self, name: &str, value: Option<&[u8]>) {
        self.extend([Header::new(name, value)]);
    }

    /// Keeps only the headers for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&Header<'_>) -> bool) {
        self.retain_extend(keep, []);
    }

    /// Keeps only the headers for which `keep` is true, then appends `more`, writing one new
    /// block (what [`Headers::retain`] then [`Headers::extend`] would write in two).
    pub fn retain_extend<'h>(
        &mut self,
        mut keep: impl FnMut(&Header<'_>) -> bool,
        more: impl IntoIterator<Item = Header<'h>>,
    ) {
        let mut more = more.into_iter().peekable();
        if self.count == 0 && more.peek().is_none() {
            return;
        }
        // Room for what is kept and a traceparent (74 bytes written) with a short tracestate,
        // so that stamping an output's trace context does not grow the buffer again.
        let mut buf = Vec::with_capacity(self.raw.len() + 128);
        let mut count = 0;
        for h in self.iter().filter(|h| keep(h)) {
            put_header(&mut buf, &h);
            count += 1;
        }
        for h in more {
            put_header(&mut buf, &h);
            count += 1;
        }
        *self = Self {
            count,
            raw: if count == 0 { Bytes::new() } else { buf.into() },
        };
    }
}

impl<'h> FromIterator<Header<'h>> for Headers {
    fn from_iter<I: IntoIterator<Item = Header<'h>>>(iter: I) -> Self {
        let mut h = Self::new();
        h.extend(iter);
        h
    }
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(
                self.iter()
                    .map(|h| (h.name, h.value.map(|v| v.escape_ascii().to_string()))),
            )
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_len(buf: &mut Vec<u8>, len: usize) {
    let len = u32::try_from(len).ok().filter(|&l| l != ABSENT_LEN);
    put_u32(
        buf,
        len.expect("a field of 4 GiB or more cannot be encoded"),
    );
}

fn put_bytes(buf: &mut Vec<u8>, v: Option<&[u8]>) {
    match v {
        Some(b) => {
            put_len(buf, b.len());
            buf.extend_from_slice(b);
        }
        None => put_u32(buf, ABSENT_LEN),
    }
}

fn put_header(buf: &mut Vec<u8>, h: &Header<'_>) {
    put_str(buf, h.name);
    put_bytes(buf, h.value);
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_len(buf, s.len());
    buf.extend_from_slice(s.as_bytes());
}

fn put_headers<'h>(buf: &mut Vec<u8>, headers: impl IntoIterator<Item = Header<'h>>) {
    let count_at = buf.len();
    put_u32(buf, 0);
    let mut n = 0u32;
    for h in headers {
        put_header(buf, &h);
        n += 1;
    }
    buf[count_at..count_at + 4].copy_from_slice(&n.to_le_bytes());
}

fn put_record_body<'h>(
    buf: &mut Vec<u8>,
    timestamp: Option<i64>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: impl IntoIterator<Item = Header<'h>>,
) {
    buf.extend_from_slice(&timestamp.unwrap_or(NO_TIMESTAMP).to_le_bytes());
    put_bytes(buf, key);
    put_bytes(buf, value);
    put_headers(buf, headers);
}

/// Writes an owned record's body; its headers are copied as one encoded block.
fn put_owned_body(buf: &mut Vec<u8>, timestamp: Option<i64>, r: &Record) {
    buf.extend_from_slice(&timestamp.unwrap_or(NO_TIMESTAMP).to_le_bytes());
    put_bytes(buf, r.key.as_deref());
    put_bytes(buf, r.value.as_deref());
    put_u32(buf, r.headers.count);
    buf.extend_from_slice(&r.headers.raw);
}

/// An input record's length as its `u32` prefix.
fn record_len(len: usize) -> u32 {
    u32::try_from(len).expect("a record of 4 GiB or more cannot be encoded")
}

/// Encodes an input batch (host side; the SDK uses it in native tests).
#[derive(Debug)]
pub struct BatchWriter {
    buf: Vec<u8>,
    count: u32,
}

impl BatchWriter {
    /// Starts a batch of records from `topic` / `partition`.
    pub fn new(topic: &str, partition: i32) -> Self {
        Self::with_buffer(Vec::new(), topic, partition)
    }

    /// Starts a batch in a reused buffer (cleared first).
    pub fn with_buffer(mut buf: Vec<u8>, topic: &str, partition: i32) -> Self {
        buf.clear();
        put_u32(&mut buf, FORMAT_VERSION);
        put_u32(&mut buf, 0);
        put_str(&mut buf, topic);
        buf.extend_from_slice(&partition.to_le_bytes());
        Self { buf, count: 0 }
    }

    /// Appends one record.
    pub fn push<'h>(
        &mut self,
        offset: i64,
        timestamp: Option<i64>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl IntoIterator<Item = Header<'h>>,
    ) {
        let at = self.buf.len();
        put_u32(&mut self.buf, 0);
        self.buf.extend_from_slice(&offset.to_le_bytes());
        put_record_body(&mut self.buf, timestamp, key, value, headers);
        let len = self.buf.len() - at - 4;
        self.buf[at..at + 4].copy_from_slice(&record_len(len).to_le_bytes());
        self.count += 1;
    }

    /// Appends an owned record.
    pub fn push_record(&mut self, r: &Record) {
        let field = |b: &Option<Bytes>| 4 + b.as_ref().map_or(0, Bytes::len);
        let len = MIN_RECORD - 8 + field(&r.key) + field(&r.value) + r.headers.raw.len();
        self.buf.reserve(4 + len);
        put_u32(&mut self.buf, record_len(len));
        self.buf.extend_from_slice(&r.offset.to_le_bytes());
        put_owned_body(&mut self.buf, r.timestamp, r);
        self.count += 1;
    }

    /// Records appended so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded batch.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf[4..8].copy_from_slice(&self.count.to_le_bytes());
        self.buf
    }
}

/// Encodes a batch result (guest side; the host uses it in tests).
#[derive(Debug)]
pub struct ResultWriter {
    buf: Vec<u8>,
    entries: u32,
    /// Where the open entry's output count sits, and how many outputs it has so far.
    open: Option<(usize, u32)>,
}

impl Default for ResultWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl ResultWriter {
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// Starts a result with room for `bytes` bytes (a good guess saves regrowing the buffer).
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(8));
        put_u32(&mut buf, FORMAT_VERSION);
        put_u32(&mut buf, 0);
        Self {
            buf,
            entries: 0,
            open: None,
        }
    }

    #[inline(always)]
    fn close_open(&mut self) {
        if let Some((at, n)) = self.open.take() {
            self.buf[at..at + 4].copy_from_slice(&n.to_le_bytes());
        }
    }

    /// Starts the successful entry of the next input; follow with [`Self::output`] per output.
    pub fn begin_ok(&mut self) {
        self.close_open();
        self.buf.push(TAG_OK);
        let at = self.buf.len();
        put_u32(&mut self.buf, 0);
        self.open = Some((at, 0));
        self.entries += 1;
    }

    /// Appends an output record to the entry opened by [`Self::begin_ok`].
    pub fn output<'h>(
        &mut self,
        timestamp: Option<i64>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: impl IntoIterator<Item = Header<'h>>,
    ) {
        let open = self.open.as_mut().expect("output() must follow begin_ok()");
        open.1 += 1;
        self.buf.push(0);
        put_record_body(&mut self.buf, timestamp, key, value, headers);
    }

    /// Appends an owned output record, every field written out.
    pub fn output_record(&mut self, r: &Record) {
        let open = self
            .open
            .as_mut()
            .expect("output_record() must follow begin_ok()");
        open.1 += 1;
        self.buf.push(0);
        put_owned_body(&mut self.buf, r.timestamp, r);
    }

    /// Appends an owned output record of the entry whose input is `input`. A field that is still
    /// the very bytes of the input's field (the same slice of the batch buffer, as a record decoded
    /// from the batch holds until a stage replaces the field) is marked as the input's instead of
    /// being written again; the host reuses its own copy of it.
    pub fn output_from(&mut self, r: &Record, input: &RecordRef<'_>) {
        let open = self
            .open
            .as_mut()
            .expect("output_from() must follow begin_ok()");
        open.1 += 1;
        let key = r.key.as_deref();
        let value = r.value.as_deref();
        let mut same = 0;
        if same_slice(key, input.key) {
            same |= SAME_KEY;
        }
        if same_slice(value, input.value) {
            same |= SAME_VALUE;
        }
        if r.headers.count == input.headers.left
            && same_slice(Some(&r.headers.raw), Some(input.headers.cur.buf))
        {
            same |= SAME_HEADERS;
        }
        let buf = &mut self.buf;
        buf.push(same);
        buf.extend_from_slice(&r.timestamp.unwrap_or(NO_TIMESTAMP).to_le_bytes());
        if same & SAME_KEY == 0 {
            put_bytes(buf, key);
        }
        if same & SAME_VALUE == 0 {
            put_bytes(buf, value);
        }
        if same & SAME_HEADERS == 0 {
            put_u32(buf, r.headers.count);
            buf.extend_from_slice(&r.headers.raw);
        }
    }

    /// Appends an output that is exactly the entry's input: every field marked as the input's,
    /// and the input's timestamp kept. Nine bytes, whatever the record's size.
    pub fn output_input(&mut self) {
        let open = self
            .open
            .as_mut()
            .expect("output_input() must follow begin_ok()");
        open.1 += 1;
        self.buf.push(SAME_ALL);
        self.buf.extend_from_slice(&NO_TIMESTAMP.to_le_bytes());
    }

    /// Appends the entry of the next input that goes on exactly as it came, timestamp included:
    /// one byte, whatever the record's size. The same as [`Self::begin_ok`] followed by
    /// [`Self::output_input`], written shorter.
    #[inline]
    pub fn unchanged(&mut self) {
        self.close_open();
        self.buf.push(TAG_INPUT);
        self.entries += 1;
    }

    /// Appends the failed entry of the next input.
    pub fn error(&mut self, code: &str, message: &str) {
        self.close_open();
        self.buf.push(TAG_ERR);
        put_str(&mut self.buf, code);
        put_str(&mut self.buf, message);
        self.entries += 1;
    }

    /// Entries written so far.
    pub fn len(&self) -> usize {
        self.entries as usize
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The encoded result.
    pub fn finish(mut self) -> Vec<u8> {
        self.close_open();
        self.buf[4..8].copy_from_slice(&self.entries.to_le_bytes());
        self.buf
    }
}

/// Whether `a` and `b` are the same bytes in memory (not merely equal), or both absent. Equal
/// address and length mean equal contents; the converse does not hold and is not needed.
fn same_slice(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            a.len() == b.len() && (a.is_empty() || std::ptr::eq(a.as_ptr(), b.as_ptr()))
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Reading

#[derive(Debug, Clone)]
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    #[inline(always)]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let rest = self.buf.len() - self.at;
        if rest < n {
            return Err(DecodeError::Truncated {
                at: self.at,
                needed: n - rest,
            });
        }
        let s = &self.buf[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }

    /// Whether the next bytes are an output that is exactly its input ([`INPUT_UNCHANGED`]).
    fn peek_input_unchanged(&self) -> bool {
        self.buf[self.at..].starts_with(&INPUT_UNCHANGED)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    #[inline(always)]
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    fn timestamp(&mut self) -> Result<Option<i64>, DecodeError> {
        let t = self.i64()?;
        Ok((t != NO_TIMESTAMP).then_some(t))
    }

    fn bytes(&mut self) -> Result<Option<&'a [u8]>, DecodeError> {
        match self.u32()? {
            ABSENT_LEN => Ok(None),
            n => self.take(n as usize).map(Some),
        }
    }

    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let at = self.at;
        let n = self.u32()?;
        let b = self.take(n as usize)?;
        str::from_utf8(b).map_err(|_| DecodeError::Utf8 { at })
    }

    fn version(&mut self) -> Result<(), DecodeError> {
        match self.u32()? {
            FORMAT_VERSION => Ok(()),
            found => Err(DecodeError::Format { found }),
        }
    }

    /// Skips a header list, validating it, and returns the headers' bytes and count.
    fn headers(&mut self) -> Result<HeaderIter<'a>, DecodeError> {
        self.skip_headers(true)
    }

    /// Skips a header list like [`Self::headers`] but leaves the names' UTF-8 to be checked when
    /// each header is read ([`HeaderIter`] does): for input batches, which the host writes from
    /// Rust strings, so that a record whose headers are never looked at costs no validation.
    fn input_headers(&mut self) -> Result<HeaderIter<'a>, DecodeError> {
        self.skip_headers(false)
    }

    fn skip_headers(&mut self, check_names: bool) -> Result<HeaderIter<'a>, DecodeError> {
        let count = self.u32()?;
        let start = self.at;
        for _ in 0..count {
            if check_names {
                self.str()?;
            } else {
                let n = self.u32()?;
                self.take(n as usize)?;
            }
            self.bytes()?;
        }
        Ok(HeaderIter {
            cur: Cursor {
                buf: &self.buf[start..self.at],
                at: 0,
            },
            left: count,
        })
    }

    /// The next input record's bytes (after its length), unread.
    #[inline(always)]
    fn raw_record(&mut self) -> Result<RawRecord<'a>, DecodeError> {
        let at = self.at;
        let declared = self.u32()? as usize;
        if declared < MIN_RECORD {
            return Err(DecodeError::Length {
                at,
                declared,
                used: MIN_RECORD,
            });
        }
        Ok(RawRecord {
            bytes: self.take(declared)?,
            at,
        })
    }
}

/// An input record's bytes, after its length: fields are read only when asked for.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    bytes: &'a [u8],
    /// Where the record's length sits in the batch, for error messages.
    at: usize,
}

impl<'a> RawRecord<'a> {
    fn cursor(&self, at: usize) -> Cursor<'a> {
        Cursor {
            buf: self.bytes,
            at,
        }
    }

    #[inline(always)]
    fn fixed<const N: usize>(&self, at: usize) -> [u8; N] {
        self.bytes[at..at + N]
            .try_into()
            .expect("a raw record holds its fixed fields")
    }

    /// The record's source offset.
    #[inline]
    pub fn offset(&self) -> i64 {
        i64::from_le_bytes(self.fixed(0))
    }

    /// The record's timestamp.
    pub fn timestamp(&self) -> Option<i64> {
        Some(i64::from_le_bytes(self.fixed(8))).filter(|&t| t != NO_TIMESTAMP)
    }

    /// The key.
    pub fn key(&self) -> Result<Option<&'a [u8]>, DecodeError> {
        self.cursor(16).bytes()
    }

    /// The value.
    pub fn value(&self) -> Result<Option<&'a [u8]>, DecodeError> {
        let mut c = self.cursor(16);
        c.bytes()?;
        c.bytes()
    }

    /// The headers, each checked as it is read.
    pub fn headers(&self) -> Result<HeaderIter<'a>, DecodeError> {
        let mut c = self.cursor(16);
        c.bytes()?;
        c.bytes()?;
        let left = c.u32()?;
        Ok(HeaderIter {
            cur: Cursor {
                buf: &self.bytes[c.at..],
                at: 0,
            },
            left,
        })
    }

    /// Every field, checked, and that they take exactly the record's length.
    pub fn read(&self) -> Result<RecordRef<'a>, DecodeError> {
        let mut c = self.cursor(16);
        let key = c.bytes()?;
        let value = c.bytes()?;
        let headers = c.input_headers()?;
        if c.at != self.bytes.len() {
            return Err(DecodeError::Length {
                at: self.at,
                declared: self.bytes.len(),
                used: c.at,
            });
        }
        Ok(RecordRef {
            offset: self.offset(),
            timestamp: self.timestamp(),
            key,
            value,
            headers,
        })
    }
}

/// The headers of a record, read lazily from the buffer. Yields an error, then stops, at the first
/// malformed header.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    cur: Cursor<'a>,
    left: u32,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Result<Header<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let header = (|| {
            let name = self.cur.str()?;
            let value = self.cur.bytes()?;
            Ok(Header { name, value })
        })();
        if header.is_err() {
            // The cursor is stuck at, or inside, the bad header: nothing after it can be read.
            self.left = 0;
        }
        Some(header)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// A record borrowed from an input batch.
#[derive(Debug, Clone)]
pub struct RecordRef<'a> {
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    headers: HeaderIter<'a>,
}

impl<'a> RecordRef<'a> {
    /// The record's headers in order.
    pub fn headers(&self) -> HeaderIter<'a> {
        self.headers.clone()
    }
}

/// Reads an input batch.
#[derive(Debug, Clone)]
pub struct BatchReader<'a> {
    topic: &'a str,
    partition: i32,
    count: u32,
    body: Cursor<'a>,
}

impl<'a> BatchReader<'a> {
    /// Reads the batch header; records are read by [`Self::records`].
    pub fn new(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let mut c = Cursor { buf, at: 0 };
        c.version()?;
        let count = c.u32()?;
        let topic = c.str()?;
        let partition = c.i32()?;
        Ok(Self {
            topic,
            partition,
            count,
            body: c,
        })
    }

    pub fn topic(&self) -> &'a str {
        self.topic
    }

    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The number of records the batch declares.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The records in order. Yields an error, then stops, at the first malformed record.
    pub fn records(&self) -> Records<'a> {
        Records {
            raw: self.raw_records(),
        }
    }

    /// The records in order, unread: each is only stepped over by its length until its fields
    /// are asked for. Yields an error, then stops, at the first record whose length does not fit.
    pub fn raw_records(&self) -> RawRecords<'a> {
        RawRecords {
            cur: self.body.clone(),
            left: self.count,
            failed: false,
        }
    }
}

/// Iterator over the records of a batch, read.
#[derive(Debug)]
pub struct Records<'a> {
    raw: RawRecords<'a>,
}

impl Records<'_> {
    /// Once every record has been read: an error if bytes are left over after the last one.
    pub fn finish(self) -> Result<(), DecodeError> {
        self.raw.finish()
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<RecordRef<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        let r = self.raw.next()?.and_then(|raw| raw.read());
        self.raw.failed = r.is_err();
        Some(r)
    }
}

/// Iterator over the records of a batch, unread ([`BatchReader::raw_records`]).
#[derive(Debug)]
pub struct RawRecords<'a> {
    cur: Cursor<'a>,
    left: u32,
    failed: bool,
}

impl RawRecords<'_> {
    /// Once every record has been stepped over: an error if bytes are left over after the last.
    pub fn finish(self) -> Result<(), DecodeError> {
        match self.cur.buf.len() - self.cur.at {
            0 => Ok(()),
            extra => Err(DecodeError::Trailing { extra }),
        }
    }
}

impl<'a> Iterator for RawRecords<'a> {
    type Item = Result<RawRecord<'a>, DecodeError>;

    #[inline(always)]
    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 || self.failed {
            return None;
        }
        self.left -= 1;
        let r = self.cur.raw_record();
        self.failed = r.is_err();
        Some(r)
    }
}

/// One entry of a batch result, owned: what the host keeps of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Exactly the input, unchanged, timestamp included (one output that marks every field as
    /// the input's and sets no timestamp of its own): the reader hands back no record for it.
    Input,
    /// The input's outputs (offset `-1`: the host fills in the source offset).
    Ok(Vec<Record>),
    /// The stage refused the input.
    Err { code: String, message: String },
    /// Only from a reader told [`ResultReader::max_outputs`]: the input has this many outputs,
    /// more than that cap. They were read past, not built.
    TooMany { outputs: usize },
}

impl Cursor<'_> {
    /// Reads an output record of the entry whose input is `input`: fields marked as the input's
    /// are clones of `input`'s, the others share `whole` (the buffer this cursor reads).
    fn output(&mut self, whole: &Bytes, input: &Record) -> Result<Record, DecodeError> {
        let at = self.at;
        let same = self.u8()?;
        if same & !SAME_ALL != 0 {
            return Err(DecodeError::Same { bits: same, at });
        }
        let share = |s: &[u8]| whole.slice_ref(s);
        let timestamp = self.timestamp()?;
        let key = match same & SAME_KEY {
            0 => self.bytes()?.map(share),
            _ => input.key.clone(),
        };
        let value = match same & SAME_VALUE {
            0 => self.bytes()?.map(share),
            _ => input.value.clone(),
        };
        let headers = match same & SAME_HEADERS {
            0 => {
                let h = self.headers()?;
                Headers {
                    count: h.left,
                    raw: share(h.cur.buf),
                }
            }
            _ => input.headers.clone(),
        };
        Ok(Record {
            offset: -1,
            timestamp,
            key,
            value,
            headers,
        })
    }
}

impl RecordRef<'_> {
    /// The record as an owned [`Record`] whose fields share `whole`, the buffer this record was
    /// read from (no bytes are copied).
    ///
    /// # Panics
    /// If `whole` is not the buffer the record borrows from.
    pub fn to_shared(&self, whole: &Bytes) -> Record {
        let share = |s: &[u8]| whole.slice_ref(s);
        Record {
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.map(share),
            value: self.value.map(share),
            headers: Headers {
                count: self.headers.left,
                raw: share(self.headers.cur.buf),
            },
        }
    }
}

/// Reads a batch result entry by entry (the host's path). Output records share the result buffer,
/// and take the fields they mark as their input's from the input records themselves: no field is
/// copied.
#[derive(Debug)]
pub struct ResultReader<'i> {
    buf: Bytes,
    at: usize,
    inputs: std::slice::Iter<'i, Record>,
    done: bool,
    max_outputs: usize,
}

impl<'i> ResultReader<'i> {
    /// Reads the result header of the batch `inputs` was sent as; checks there is one entry per
    /// input.
    pub fn new(buf: Bytes, inputs: &'i [Record]) -> Result<Self, DecodeError> {
        let mut c = Cursor { buf: &buf, at: 0 };
        c.version()?;
        let found = c.u32()? as usize;
        if found != inputs.len() {
            return Err(DecodeError::Count {
                found,
                expected: inputs.len(),
            });
        }
        let at = c.at;
        Ok(Self {
            buf,
            at,
            inputs: inputs.iter(),
            done: false,
            max_outputs: usize::MAX,
        })
    }

    /// Caps the outputs of one entry: an entry with more comes back as [`Entry::TooMany`]
    /// without its records being built, so a result cannot make the reader hold more records
    /// than `max` per input.
    pub fn max_outputs(mut self, max: usize) -> Self {
        self.max_outputs = max;
        self
    }

    /// Steps over the entries from here on that are tag-2 inputs unchanged, up to the last
    /// input, and returns how many there were: a fast path past the run of [`Entry::Input`]s
    /// that [`Iterator::next`] would yield one by one.
    pub fn skip_unchanged(&mut self) -> usize {
        if self.done {
            return 0;
        }
        let left = self.inputs.as_slice();
        let n = self.buf[self.at..]
            .iter()
            .take(left.len())
            .take_while(|&&tag| tag == TAG_INPUT)
            .count();
        self.at += n;
        self.inputs = left[n..].iter();
        n
    }

    fn entry(&mut self, input: &Record) -> Result<Entry, DecodeError> {
        let mut c = Cursor {
            buf: &self.buf,
            at: self.at,
        };
        let at = c.at;
        let entry = match c.u8()? {
            TAG_OK => {
                let n = c.u32()? as usize;
                if n == 1 && c.peek_input_unchanged() {
                    self.at = c.at + INPUT_UNCHANGED.len();
                    return Ok(Entry::Input);
                }
                if n > self.max_outputs {
                    for _ in 0..n {
                        c.output(&self.buf, input)?;
                    }
                    self.at = c.at;
                    return Ok(Entry::TooMany { outputs: n });
                }
                // Every output takes at least its `same` byte and timestamp.
                let mut outs = Vec::with_capacity(n.min((self.buf.len() - c.at) / 9));
                for _ in 0..n {
                    outs.push(c.output(&self.buf, input)?);
                }
                Entry::Ok(outs)
            }
            TAG_ERR => Entry::Err {
                code: c.str()?.to_owned(),
                message: c.str()?.to_owned(),
            },
            TAG_INPUT => Entry::Input,
            tag => return Err(DecodeError::Tag { tag, at }),
        };
        self.at = c.at;
        Ok(entry)
    }
}

impl Iterator for ResultReader<'_> {
    type Item = Result<Entry, DecodeError>;

    /// The next input's entry; after the last, an error if bytes are left over. Stops after the
    /// first error.
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = match self.inputs.next() {
            Some(input) => self.entry(input),
            None => {
                self.done = true;
                return (self.at != self.buf.len()).then(|| {
                    Err(DecodeError::Trailing {
                        extra: self.buf.len() - self.at,
                    })
                });
            }
        };
        self.done = r.is_err();
        Some(r)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = if self.done { 0 } else { self.inputs.len() };
        (0, Some(n + 1))
    }
}

/// Reads a whole batch result for the batch `inputs` was sent as (see [`ResultReader`]), every
/// entry as records: an [`Entry::Input`] comes back as [`Entry::Ok`] with a clone of its input
/// (offset `-1`, no timestamp of its own), so this never returns an `Entry::Input`.
pub fn decode_result(buf: Bytes, inputs: &[Record]) -> Result<Vec<Entry>, DecodeError> {
    ResultReader::new(buf, inputs)?
        .zip(inputs.iter().chain(std::iter::repeat(&Record::EMPTY)))
        .map(|(entry, input)| {
            Ok(match entry? {
                Entry::Input => Entry::Ok(vec![Record {
                    offset: -1,
                    timestamp: None,
                    ..input.clone()
                }]),
                other => other,
            })
        })
        .collect()
}

/// An input batch decoded into owned records.
#[derive(Debug, Clone)]
pub struct Batch {
    pub topic: String,
    pub partition: i32,
    pub records: Vec<Record>,
}

/// Reads an input batch into owned records that share `buf` (the guest SDK's path).
pub fn decode_batch(buf: Bytes) -> Result<Batch, DecodeError> {
    let reader = BatchReader::new(&buf)?;
    let mut records = Vec::with_capacity(reader.len().min(buf.len() / MIN_RECORD));
    let mut read = reader.records();
    for r in read.by_ref() {
        records.push(r?.to_shared(&buf));
    }
    read.finish()?;
    Ok(Batch {
        topic: reader.topic().to_owned(),
        partition: reader.partition(),
        records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64))
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            any::<i64>(),
            proptest::option::of(any::<i64>().prop_filter("reserved", |t| *t != i64::MIN)),
            arb_bytes(),
            arb_bytes(),
            proptest::collection::vec(("[a-z.-]{0,12}", arb_bytes()), 0..4),
        )
            .prop_map(|(offset, timestamp, key, value, headers)| Record {
                offset,
                timestamp,
                key: key.map(Bytes::from),
                value: value.map(Bytes::from),
                headers: headers
                    .iter()
                    .map(|(n, v): &(String, Option<Vec<u8>>)| Header::new(n, v.as_deref()))
                    .collect(),
            })
    }

    #[derive(Debug, Clone)]
    enum Entry {
        Ok(Vec<Record>),
        Err(String, String),
        Unchanged,
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        prop_oneof![
            proptest::collection::vec(arb_record(), 0..4).prop_map(Entry::Ok),
            (".{0,10}", ".{0,40}").prop_map(|(c, m)| Entry::Err(c, m)),
            Just(Entry::Unchanged),
        ]
    }

    fn write_result(entries: &[Entry]) -> Vec<u8> {
        let mut w = ResultWriter::new();
        for e in entries {
            match e {
                Entry::Ok(outs) => {
                    w.begin_ok();
                    for o in outs {
                        w.output_record(o);
                    }
                }
                Entry::Err(c, m) => w.error(c, m),
                Entry::Unchanged => w.unchanged(),
            }
        }
        w.finish()
    }

    proptest! {
        #[test]
        fn batch_round_trips(topic in ".{0,20}", partition in any::<i32>(), records in proptest::collection::vec(arb_record(), 0..16)) {
            let mut w = BatchWriter::new(&topic, partition);
            for r in &records {
                w.push_record(r);
            }
            let buf = w.finish();
            let b = BatchReader::new(&buf).unwrap();
            prop_assert_eq!(b.topic(), topic.as_str());
            prop_assert_eq!(b.partition(), partition);
            prop_assert_eq!(b.len(), records.len());
            for (got, want) in b.records().zip(&records) {
                let got = got.unwrap();
                prop_assert_eq!((got.offset, got.timestamp), (want.offset, want.timestamp));
                prop_assert_eq!((got.key, got.value), (want.key.as_deref(), want.value.as_deref()));
                let got: Vec<_> = got.headers().map(Result::unwrap).collect();
                let want: Vec<_> = want.headers.iter().collect();
                prop_assert_eq!(got, want);
            }
            // Unread records give the same fields, one at a time.
            let mut raw = b.raw_records();
            for (got, want) in raw.by_ref().zip(&records) {
                let got = got.unwrap();
                prop_assert_eq!((got.offset(), got.timestamp()), (want.offset, want.timestamp));
                prop_assert_eq!(got.key().unwrap(), want.key.as_deref());
                prop_assert_eq!(got.value().unwrap(), want.value.as_deref());
                let got: Vec<_> = got.headers().unwrap().map(Result::unwrap).collect();
                let want: Vec<_> = want.headers.iter().collect();
                prop_assert_eq!(got, want);
            }
            prop_assert!(raw.finish().is_ok());
            let shared = decode_batch(buf.clone().into()).unwrap();
            prop_assert_eq!((shared.topic.as_str(), shared.partition), (topic.as_str(), partition));
            prop_assert_eq!(shared.records, records);
        }

        #[test]
        fn result_round_trips(entries in proptest::collection::vec(arb_entry(), 0..16)) {
            let buf = write_result(&entries);
            let inputs: Vec<Record> = (0..entries.len())
                .map(|i| Record { offset: i as i64, value: Some(Bytes::from(i.to_string())), ..Record::default() })
                .collect();
            let back = decode_result(buf.into(), &inputs).unwrap();
            prop_assert_eq!(back.len(), entries.len());
            for ((got, want), input) in back.iter().zip(&entries).zip(&inputs) {
                match (got, want) {
                    (super::Entry::Ok(g), Entry::Unchanged) => {
                        prop_assert_eq!(g, &vec![Record { offset: -1, ..input.clone() }]);
                    }
                    (super::Entry::Ok(g), Entry::Ok(w)) => {
                        prop_assert_eq!(g.len(), w.len());
                        for (g, w) in g.iter().zip(w) {
                            prop_assert_eq!(g.offset, -1);
                            prop_assert_eq!(g.timestamp, w.timestamp);
                            prop_assert_eq!(&g.key, &w.key);
                            prop_assert_eq!(&g.value, &w.value);
                            prop_assert_eq!(&g.headers, &w.headers);
                        }
                    }
                    (super::Entry::Err { code, message }, Entry::Err(c, m)) => {
                        prop_assert_eq!(code, c);
                        prop_assert_eq!(message, m);
                    }
                    _ => prop_assert!(false, "entry kind changed"),
                }
            }
        }

        /// Any prefix of a valid result, and any garbage, is rejected without panicking.
        #[test]
        fn truncated_or_garbage_results_are_errors(entries in proptest::collection::vec(arb_entry(), 1..8), cut in any::<prop::sample::Index>(), junk in proptest::collection::vec(any::<u8>(), 0..64)) {
            let buf = write_result(&entries);
            let inputs = vec![Record::default(); entries.len()];
            let cut = cut.index(buf.len());
            prop_assert!(decode_result(Bytes::copy_from_slice(&buf[..cut]), &inputs).is_err());
            let _ = decode_result(junk.into(), &inputs);
            let mut extra = buf.clone();
            extra.push(0);
            let is_trailing = matches!(decode_result(extra.into(), &inputs), Err(DecodeError::Trailing { extra: 1 }));
            prop_assert!(is_trailing);
            let is_count = matches!(decode_result(buf.into(), &inputs[1..]), Err(DecodeError::Count { .. }));
            prop_assert!(is_count);
        }

        /// What a guest writes with `output_from` (or `output_input`) decodes, on the host, to
        /// exactly the records the stage returned, whichever fields it kept, replaced or edited; the kept ones are the
        /// host's own input fields, not copies.
        #[test]
        fn outputs_from_inputs_round_trip(
            inputs in proptest::collection::vec(arb_record(), 0..12),
            plans in proptest::collection::vec(proptest::collection::vec(0..6u8, 0..3), 12),
            fresh in arb_record(),
        ) {
            let mut batch = BatchWriter::new("t", 0);
            for r in &inputs {
                batch.push_record(r);
            }
            // The guest's side: records share the batch buffer, as the SDK hands them out.
            let batch = Bytes::from(batch.finish());
            let reader = BatchReader::new(&batch).unwrap();
            let mut w = ResultWriter::new();
            let mut want = Vec::new();
            for (input, plan) in reader.records().zip(&plans) {
                let input = input.unwrap();
                let shared = input.to_shared(&batch);
                w.begin_ok();
                let mut outs = Vec::new();
                for step in plan {
                    let mut out = shared.clone();
                    match step {
                        0 => {}
                        1 => out.value = Some(Bytes::from_static(b"new value")),
                        2 => out.headers.push("added", None),
                        3 => { out.key = None; out.timestamp = Some(5); }
                        4 => out = fresh.clone(),
                        _ => {
                            // The input as it came, timestamp absent (the host keeps the input's).
                            w.output_input();
                            out.offset = -1;
                            out.timestamp = None;
                            outs.push(out);
                            continue;
                        }
                    }
                    w.output_from(&out, &input);
                    out.offset = -1;
                    outs.push(out);
                }
                want.push(outs);
            }
            // The host's side: its inputs live elsewhere than the batch buffer.
            let back = decode_result(w.finish().into(), &inputs).unwrap();
            prop_assert_eq!(back.len(), inputs.len());
            for ((got, want), (input, plan)) in back.iter().zip(&want).zip(inputs.iter().zip(&plans)) {
                let super::Entry::Ok(got) = got else { panic!("an error entry") };
                prop_assert_eq!(got, want);
                for (out, step) in got.iter().zip(plan) {
                    if let (0 | 5, Some(a), Some(b)) = (step, &out.value, &input.value) {
                        prop_assert_eq!(a.as_ptr(), b.as_ptr(), "a kept value is the host's own");
                    }
                }
            }
        }
    }

    #[test]
    fn a_lone_unchanged_output_reads_as_the_input_itself() {
        let inputs = [
            Record {
                timestamp: Some(3),
                ..Record::default()
            },
            Record::default(),
            Record::default(),
        ];
        let mut w = ResultWriter::new();
        w.begin_ok();
        w.output_input();
        // Two unchanged outputs, or one with a timestamp of its own, are records.
        w.begin_ok();
        w.output_input();
        w.output_input();
        w.begin_ok();
        w.output(Some(9), None, None, []);
        let buf = Bytes::from(w.finish());
        let entries: Vec<super::Entry> = ResultReader::new(buf.clone(), &inputs)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(matches!(entries[0], super::Entry::Input));
        assert!(matches!(&entries[1], super::Entry::Ok(outs) if outs.len() == 2));
        assert!(matches!(&entries[2], super::Entry::Ok(outs) if outs[0].timestamp == Some(9)));
        // The convenience reader hands back the input as a record.
        let decoded = decode_result(buf, &inputs).unwrap();
        assert_eq!(
            decoded[0],
            super::Entry::Ok(vec![Record {
                offset: -1,
                timestamp: None,
                ..inputs[0].clone()
            }])
        );
    }

    #[test]
    fn an_entry_over_the_output_cap_is_read_past_without_its_records() {
        let inputs = [Record::default(), Record::default(), Record::default()];
        let mut w = ResultWriter::new();
        w.begin_ok();
        for _ in 0..3 {
            w.output(None, None, Some(b"x"), []);
        }
        w.begin_ok();
        for _ in 0..4 {
            w.output(None, None, Some(b"many"), []);
        }
        w.begin_ok();
        w.output(None, Some(b"k"), Some(b"after"), []);
        let buf = Bytes::from(w.finish());
        let entries: Vec<super::Entry> = ResultReader::new(buf.clone(), &inputs)
            .unwrap()
            .max_outputs(3)
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(matches!(&entries[0], super::Entry::Ok(outs) if outs.len() == 3));
        assert_eq!(entries[1], super::Entry::TooMany { outputs: 4 });
        // The reader went on past the capped entry to the next one.
        assert!(
            matches!(&entries[2], super::Entry::Ok(outs) if outs[0].value.as_deref() == Some(&b"after"[..]))
        );
        // Without a cap the same result reads in full.
        let uncapped = decode_result(buf, &inputs).unwrap();
        assert!(matches!(&uncapped[1], super::Entry::Ok(outs) if outs.len() == 4));
    }

    #[test]
    fn unknown_same_bits_are_refused() {
        let mut w = ResultWriter::new();
        w.begin_ok();
        w.output(None, None, None, []);
        let mut buf = w.finish();
        // format, count, tag, output count, then the output's `same` byte.
        buf[13] = 0x80;
        assert_eq!(
            decode_result(buf.into(), &[Record::default()]).unwrap_err(),
            DecodeError::Same { bits: 0x80, at: 13 }
        );
    }

    #[test]
    fn a_record_whose_fields_disagree_with_its_length_is_refused() {
        let mut w = BatchWriter::new("t", 0);
        w.push(1, None, Some(b"k"), Some(b"v"), [Header::new("h", None)]);
        let good = w.finish();
        // format, count, topic (4 + 1), partition: the record's length is at byte 17.
        let at = 17;
        let len = u32::from_le_bytes(good[at..at + 4].try_into().unwrap()) as usize;
        assert_eq!(len, good.len() - at - 4);

        // One byte more declared (and present) than the fields take.
        let mut longer = good.clone();
        longer[at..at + 4].copy_from_slice(&(len as u32 + 1).to_le_bytes());
        longer.push(0);
        let reader = BatchReader::new(&longer).unwrap();
        assert_eq!(
            reader.records().next().unwrap().unwrap_err(),
            DecodeError::Length {
                at,
                declared: len + 1,
                used: len
            }
        );
        // Stepping over it by its length alone still works.
        let mut raw = reader.raw_records();
        assert_eq!(raw.next().unwrap().unwrap().offset(), 1);
        assert!(raw.next().is_none());
        assert!(raw.finish().is_ok());

        // Fewer declared than the fields take: the header runs past the record.
        let mut shorter = good.clone();
        shorter[at..at + 4].copy_from_slice(&(len as u32 - 1).to_le_bytes());
        let reader = BatchReader::new(&shorter).unwrap();
        assert!(matches!(
            reader.records().next().unwrap(),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(decode_batch(shorter.into()).is_err());

        // Too short to hold even the fixed fields, or longer than the batch.
        for bad in [MIN_RECORD as u32 - 1, len as u32 + 100] {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&bad.to_le_bytes());
            let reader = BatchReader::new(&b).unwrap();
            assert!(reader.raw_records().next().unwrap().is_err(), "{bad}");
        }
    }

    /// Found by the `batch_decode` fuzz target: a header list went on after a malformed header,
    /// yielding the same error again (or reading from inside the bad header) once per header it
    /// declared, up to four billion.
    #[test]
    fn a_malformed_header_ends_the_header_list() {
        let mut w = BatchWriter::new("t", 0);
        w.push(
            1,
            None,
            None,
            None,
            [Header::new("a", Some(b"1")), Header::new("b", None)],
        );
        let good = w.finish();
        // The record's length at byte 17, then offset, timestamp, key and value lengths and the
        // header count: the first header's name length is at byte 49, its one byte at 53.
        let name_len = 49;
        assert_eq!(&good[name_len..name_len + 5], b"\x01\0\0\0a");

        let mut truncated = good.clone();
        // A name longer than the 15 bytes left of the list.
        truncated[name_len..name_len + 4].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
        let mut not_text = good.clone();
        not_text[name_len + 4] = 0xff;
        for (bad, error) in [
            (
                &truncated,
                DecodeError::Truncated {
                    at: 4,
                    needed: 0xffff_fff0 - 15,
                },
            ),
            (&not_text, DecodeError::Utf8 { at: 0 }),
        ] {
            let reader = BatchReader::new(bad).unwrap();
            let raw = reader.raw_records().next().unwrap().unwrap();
            let headers: Vec<_> = raw.headers().unwrap().collect();
            assert_eq!(headers, [Err(error.clone())]);
            if let Ok(read) = raw.read() {
                assert_eq!(read.headers().collect::<Vec<_>>(), [Err(error)]);
            }
        }
    }

    #[test]
    fn other_format_versions_are_named() {
        let mut buf = BatchWriter::new("t", 0).finish();
        buf[0] = 2;
        assert_eq!(
            BatchReader::new(&buf).unwrap_err(),
            DecodeError::Format { found: 2 }
        );
        assert!(
            DecodeError::Format { found: 2 }
                .to_string()
                .contains("format 2 is not supported")
        );
        let mut result = ResultWriter::new().finish();
        result[0] = 4;
        assert_eq!(
            decode_result(result.into(), &[]).unwrap_err(),
            DecodeError::Format { found: 4 }
        );
    }

    #[test]
    fn headers_are_edited_in_order() {
        let mut h: Headers = [Header::new("a", Some(b"1")), Header::new("b", None)]
            .into_iter()
            .collect();
        h.push("a", Some(b"2"));
        assert_eq!(h.len(), 3);
        assert_eq!(h.get("a"), Some(Some(&b"1"[..])));
        assert_eq!(h.get("b"), Some(None));
        assert_eq!(h.get("c"), None);
        let mut both = h.clone();
        h.retain(|x| x.name != "a");
        let names: Vec<_> = h.iter().map(|x| x.name).collect();
        assert_eq!(names, ["b"]);

        // In one block, what retain then extend write in two.
        both.retain_extend(|x| x.name != "a", [Header::new("c", Some(b"3"))]);
        h.push("c", Some(b"3"));
        assert_eq!(both, h);
        both.retain_extend(|_| false, []);
        assert!(both.is_empty() && both.encoded_len() == 0);
        let mut none = Headers::new();
        none.retain_extend(|_| true, []);
        assert_eq!(none, Headers::new());
    }

    #[test]
    fn decoded_records_share_the_buffer() {
        let mut w = BatchWriter::new("t", 0);
        w.push(
            0,
            None,
            Some(b"key"),
            Some(b"value"),
            [Header::new("h", Some(b"v"))],
        );
        let buf = Bytes::from(w.finish());
        let batch = decode_batch(buf.clone()).unwrap();
        let value = batch.records[0].value.as_ref().unwrap();
        let inside = buf.as_ptr_range();
        assert!(
            inside.contains(&value.as_ptr()),
            "the value points into the batch buffer"
        );
        assert_eq!(batch.records[0].header("h"), Some(&b"v"[..]));
    }

    #[test]
    fn absent_and_empty_are_distinct() {
        let mut w = BatchWriter::new("t", 0);
        w.push(0, None, None, Some(b""), []);
        let buf = w.finish();
        let b = BatchReader::new(&buf).unwrap();
        let r = b.records().next().unwrap().unwrap();
        assert_eq!(r.key, None);
        assert_eq!(r.value, Some(&b""[..]));
        assert_eq!(r.timestamp, None);
    }
}
