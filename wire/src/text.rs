//! `str8`: one length byte, then that many bytes, kept byte-exact.

use bytes::{BufMut, Bytes, BytesMut};
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

    pub(crate) fn put(&self, out: &mut BytesMut) {
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

/// A `str8` value over 255 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("text of {0} bytes is longer than the 255 a str8 field holds")]
pub struct TooLong(pub usize);
