//! Header names as bytes. Kafka's header names are bytes on the wire, though every client treats
//! them as text; the stage contract hands names to stages as UTF-8. A record whose header name is
//! not UTF-8 is read without failing: the name reaches the stages escaped as
//! `"\u{FFFF}bytes:"` followed by its bytes in hex, and every record Weir produces with that name
//! carries the original bytes again. A name that is valid UTF-8 but starts with the prefix is
//! escaped too, so the mapping is one to one.
//!
//! librdkafka is read and written directly here: rdkafka's own header accessor panics on a name
//! that is not UTF-8, and its writer takes names as `&str`.

use std::borrow::Cow;
use std::ffi::{CStr, c_void};
use std::fmt::Write;

use rdkafka::bindings as rd;
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Message, OwnedHeaders};
use weir_core::{Header, Headers};

/// What an escaped header name starts with. U+FFFF is a noncharacter: no real name has it.
pub const RAW_NAME_PREFIX: &str = "\u{FFFF}bytes:";

/// A header name read from Kafka, as stages see it.
pub fn name_from_wire(name: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(name) {
        Ok(text) if !text.starts_with(RAW_NAME_PREFIX) => Cow::Borrowed(text),
        _ => {
            let mut escaped = String::with_capacity(RAW_NAME_PREFIX.len() + 2 * name.len());
            escaped.push_str(RAW_NAME_PREFIX);
            for b in name {
                let _ = write!(escaped, "{b:02x}");
            }
            Cow::Owned(escaped)
        }
    }
}

/// A header name as it goes to Kafka: escaped names become their bytes again.
pub fn name_to_wire(name: &str) -> Cow<'_, [u8]> {
    let Some(hex) = name.strip_prefix(RAW_NAME_PREFIX) else {
        return Cow::Borrowed(name.as_bytes());
    };
    let digits = hex.as_bytes();
    let decoded: Option<Vec<u8>> = (digits.len() % 2 == 0)
        .then(|| {
            digits
                .chunks(2)
                .map(|pair| {
                    let text = std::str::from_utf8(pair).ok()?;
                    u8::from_str_radix(text, 16).ok()
                })
                .collect()
        })
        .flatten();
    match decoded {
        Some(bytes) => Cow::Owned(bytes),
        // Not one of ours (a stage wrote it): sent as written.
        None => Cow::Borrowed(name.as_bytes()),
    }
}

/// The headers of a fetched message, names escaped where they are not UTF-8 (usable by any
/// rdkafka consumer, such as a test reading what Weir wrote).
pub fn read(msg: &BorrowedMessage<'_>) -> Headers {
    let Some(headers) = msg.headers() else {
        return Headers::new();
    };
    let ptr = native(headers);
    // SAFETY: `ptr` is the message's live header list, borrowed for as long as `msg`; every
    // pointer librdkafka hands back points into it and is read before `msg` can go away.
    unsafe {
        let count = rd::rd_kafka_header_cnt(ptr);
        let mut out = Headers::new();
        for idx in 0..count {
            let mut name = std::ptr::null();
            let mut value = std::ptr::null();
            let mut size = 0;
            let err = rd::rd_kafka_header_get_all(ptr, idx, &mut name, &mut value, &mut size);
            if err != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                break;
            }
            let name = CStr::from_ptr(name).to_bytes();
            let value =
                (!value.is_null()).then(|| std::slice::from_raw_parts(value.cast::<u8>(), size));
            out.push(&name_from_wire(name), value);
        }
        out
    }
}

/// `headers` for the producer, escaped names written as their original bytes.
pub(crate) fn write(headers: &Headers) -> OwnedHeaders {
    let owned = OwnedHeaders::new_with_capacity(headers.len());
    let ptr = native(owned.as_borrowed());
    for Header { name, value } in headers.iter() {
        let name = name_to_wire(name);
        let (value_ptr, value_len) = match value {
            Some(v) => (v.as_ptr().cast::<c_void>().cast_mut(), v.len() as isize),
            None => (std::ptr::null_mut(), 0),
        };
        // SAFETY: `ptr` is `owned`'s writable header list; librdkafka copies the name and the
        // value before returning.
        unsafe {
            rd::rd_kafka_header_add(
                ptr,
                name.as_ptr().cast(),
                name.len() as isize,
                value_ptr,
                value_len,
            );
        }
    }
    owned
}

/// The native header list behind `headers` (rdkafka's `BorrowedHeaders` is that pointer).
fn native(headers: &BorrowedHeaders) -> *mut rd::rd_kafka_headers_t {
    (headers as *const BorrowedHeaders).cast_mut().cast()
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers as _;

    use super::*;

    #[test]
    fn names_round_trip_whatever_their_bytes() {
        let names: [&[u8]; 6] = [
            b"traceparent",
            b"",
            b"\xff\xfe not utf-8",
            b"caf\xc3\xa9",
            "\u{FFFF}bytes:41".as_bytes(),
            "\u{FFFF}bytes:zz".as_bytes(),
        ];
        for name in names {
            let seen = name_from_wire(name);
            assert_eq!(&*name_to_wire(&seen), name, "{seen:?}");
        }
        assert_eq!(name_from_wire(b"traceparent"), "traceparent");
        assert_eq!(name_from_wire(b"\xff\x00"), "\u{FFFF}bytes:ff00");
    }

    #[test]
    fn written_headers_carry_the_original_bytes() {
        let mut headers = Headers::new();
        headers.push(&name_from_wire(b"\xff\xfebad"), Some(b"v1"));
        headers.push("ok", None);
        let owned = write(&headers);
        assert_eq!(owned.count(), 2);
        let ptr = native(owned.as_borrowed());
        // SAFETY: reading back the list just written, which `owned` keeps alive.
        let first = unsafe {
            let mut name = std::ptr::null();
            let mut value = std::ptr::null();
            let mut size = 0;
            rd::rd_kafka_header_get_all(ptr, 0, &mut name, &mut value, &mut size);
            (
                CStr::from_ptr(name).to_bytes().to_vec(),
                std::slice::from_raw_parts(value.cast::<u8>(), size).to_vec(),
            )
        };
        assert_eq!(first, (b"\xff\xfebad".to_vec(), b"v1".to_vec()));
    }
}
