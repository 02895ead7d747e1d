//! `str8`: one length byte, then that many bytes, kept byte-exact.

use bytes::{BufMut, Bytes};
use std::fmt;

/// The bytes of a `str8` field (at most 255). Compared and hashed as bytes, shown as text.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Str8(Bytes);

impl Str8 {
    pub const MAX: usize = 255;

    /// Builds a `str8`, refusing more than 255 bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Result<Str8, TooLong> {
        let bytes = bytes.into();
        if bytes.len() > Self::MAX {
            return Err(TooLong(bytes.len()));
        }
        Ok(Str8(bytes))
    }

    /// Builds a `str8` from text known to be short; longer text is cut at 255 bytes.
    pub fn lossy(text: &str) -> Str8 {
        let b = text.as_bytes();
        Str8(Bytes::copy_from_slice(&b[..b.len().min(Self::MAX)]))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Appends the field: its length byte, then its bytes.
    pub fn put(&self, out: &mut impl BufMut) {
        out.put_u8(self.0.len() as u8);
        out.put_slice(&self.0);
    }
}

impl From<&[u8]> for Str8 {
    /// Copies at most 255 bytes (a decoded field can never be longer).
    fn from(b: &[u8]) -> Str8 {
        Str8(Bytes::copy_from_slice(&b[..b.len().min(Self::MAX)]))
    }
}

impl From<&str> for Str8 {
    fn from(s: &str) -> Str8 {
        Str8::lossy(s)
    }
}

impl fmt::Display for Str8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.escape_ascii())
    }
}

impl fmt::Debug for Str8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0.escape_ascii())
    }
}

/// A body made of `str8` fields, one after another (the request convention of the switch
/// simulator and the applications that drive it); text longer than 255 bytes is cut.
pub fn str8_body(fields: &[&str]) -> Vec<u8> {
    let mut body = Vec::new();
    for f in fields {
        Str8::lossy(f).put(&mut body);
    }
    body
}

/// Reads a body field by field, big-endian; each read is `None` when the body is too short
/// for it, and reads nothing then.
#[derive(Clone, Copy, Debug)]
pub struct FieldReader<'a> {
    rest: &'a [u8],
}

impl<'a> FieldReader<'a> {
    pub fn new(body: &'a [u8]) -> FieldReader<'a> {
        FieldReader { rest: body }
    }

    /// `n` bytes.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }

    /// A `str8` field's bytes.
    pub fn str8(&mut self) -> Option<&'a [u8]> {
        let n = *self.rest.first()? as usize;
        let field = self.rest.get(1..1 + n)?;
        self.rest = &self.rest[1 + n..];
        Some(field)
    }

    /// What has not been read.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

/// A `str8` value over 255 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("text of {0} bytes is longer than the 255 a str8 field holds")]
pub struct TooLong(pub usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_in_order_and_a_short_body_reads_nothing() {
        let mut body = str8_body(&["2201", ""]);
        body.extend_from_slice(&[0x01, 0x02, 0xAA]);
        let mut r = FieldReader::new(&body);
        assert_eq!(r.str8(), Some(&b"2201"[..]));
        assert_eq!(r.str8(), Some(&b""[..]));
        assert_eq!(r.u16(), Some(0x0102));
        assert_eq!(r.u16(), None, "one byte left");
        assert_eq!(r.rest(), [0xAA]);
        assert_eq!(r.u8(), Some(0xAA));
        assert!(r.is_empty());
        assert_eq!(
            FieldReader::new(&[3, b'a']).str8(),
            None,
            "a str8 cut short"
        );
    }

    #[test]
    fn a_body_of_long_text_keeps_255_bytes_of_each_field() {
        let long = "x".repeat(300);
        let body = str8_body(&[&long]);
        assert_eq!((body[0], body.len()), (255, 256));
    }
}
