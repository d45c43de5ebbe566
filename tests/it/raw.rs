//! Writes record batches to the broker by hand, for poison records no client library will
//! produce: a compressed batch whose payload is corrupt, a header key that is not UTF-8.
//!
//! One Produce request (version 3) per call, to the bootstrap broker, which must lead the
//! partition (true of the single-broker test setup).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One record of a batch.
pub struct RawRecord {
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Compression attribute values of a record batch.
pub const GZIP: i16 = 1;

/// A batch of `records`, uncompressed.
pub fn batch(records: &[RawRecord]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let mut rec = Vec::new();
        rec.push(0); // attributes
        varint(&mut rec, 0); // timestamp delta
        varint(&mut rec, i as i64); // offset delta
        bytes(&mut rec, r.key.as_deref());
        bytes(&mut rec, r.value.as_deref());
        varint(&mut rec, r.headers.len() as i64);
        for (k, v) in &r.headers {
            bytes(&mut rec, Some(k));
            bytes(&mut rec, Some(v));
        }
        varint(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    record_batch(0, records.len(), &body)
}

/// A batch that claims `count` records compressed with `codec`, whose payload is `garbage`.
pub fn corrupt_batch(codec: i16, count: usize, garbage: &[u8]) -> Vec<u8> {
    record_batch(codec, count, garbage)
}

fn record_batch(attributes: i16, count: usize, records: &[u8]) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut after_crc = Vec::new();
    after_crc.extend_from_slice(&attributes.to_be_bytes());
    after_crc.extend_from_slice(&(count as i32 - 1).to_be_bytes()); // last offset delta
    after_crc.extend_from_slice(&now.to_be_bytes()); // base timestamp
    after_crc.extend_from_slice(&now.to_be_bytes()); // max timestamp
    after_crc.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    after_crc.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    after_crc.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    after_crc.extend_from_slice(&(count as i32).to_be_bytes());
    after_crc.extend_from_slice(records);
    let mut tail = Vec::new();
    tail.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    tail.push(2); // magic
    tail.extend_from_slice(&crc32c(&after_crc).to_be_bytes());
    tail.extend_from_slice(&after_crc);
    let mut batch = Vec::new();
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset
    batch.extend_from_slice(&(tail.len() as i32).to_be_bytes());
    batch.extend_from_slice(&tail);
    batch
}

/// Sends `batch` to partition `partition` of `topic` and checks the broker took it.
pub fn produce(bootstrap: &str, topic: &str, partition: i32, batch: &[u8]) {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes()); // no transactional id
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks = all
    body.extend_from_slice(&10_000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    string(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes()); // one partition
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&(batch.len() as i32).to_be_bytes());
    body.extend_from_slice(batch);
    let mut request = Vec::new();
    request.extend_from_slice(&0i16.to_be_bytes()); // Produce
    request.extend_from_slice(&3i16.to_be_bytes()); // version 3
    request.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    string(&mut request, "weir-tests-raw");
    request.extend_from_slice(&body);

    let mut stream = TcpStream::connect(bootstrap.split(',').next().unwrap()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
        .write_all(&(request.len() as i32).to_be_bytes())
        .unwrap();
    stream.write_all(&request).unwrap();
    let mut len = [0; 4];
    stream.read_exact(&mut len).unwrap();
    let mut response = vec![0; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut response).unwrap();
    // correlation id, topic count, topic name, partition count, partition, error code.
    let name_len = i16::from_be_bytes([response[8], response[9]]) as usize;
    let at = 10 + name_len + 4 + 4;
    let error = i16::from_be_bytes([response[at], response[at + 1]]);
    assert_eq!(
        error, 0,
        "the broker refused the raw batch (error code {error})"
    );
}

fn string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as i16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => varint(out, -1),
        Some(b) => {
            varint(out, b.len() as i64);
            out.extend_from_slice(b);
        }
    }
}

/// A zigzag varint, as record fields are written.
fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        let byte = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn crc32c_matches_the_standard_check_value() {
    assert_eq!(crc32c(b"123456789"), 0xE306_9283);
}
