//! Licence keys (docs/behaviour.md §5): a 26-byte payload and its 64-byte Ed25519 signature, written as 18
//! groups of 8 RFC 4648 base32 characters joined by '-'.

use data_encoding::BASE32_NOPAD;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Bytes of the payload.
pub const PAYLOAD_LEN: usize = 26;
/// Bytes of payload and signature.
pub const KEY_LEN: usize = PAYLOAD_LEN + 64;
const GROUPS: usize = 18;
const GROUP_LEN: usize = 8;

/// Whose MAC address a licence is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MacType {
    /// One of this host's interfaces.
    Computer = 1,
    /// A connected switch.
    Switch = 2,
}

/// What a licence grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    pub serial: u32,
    pub mac_type: MacType,
    pub mac: [u8; 6],
    pub call: u16,
    pub opentsp: u16,
    pub operator: u16,
    pub easyset: bool,
    pub news: bool,
    pub dataview: bool,
    /// Days since 1970-01-01 after which the licence is expired; 0: never.
    pub expires: u32,
}

/// Why a key is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "character {position} of the key, {found:?}, is not one of A-Z (either case), 2-7 or '-'"
    )]
    BadCharacter { position: usize, found: char },
    #[error("a key is 18 groups of 8 characters joined by '-'; this one has {groups} group(s)")]
    BadGroupCount { groups: usize },
    #[error("group {group} of the key has {len} characters instead of 8")]
    BadGroupLength { group: usize, len: usize },
    #[error("the key does not decode: {0}")]
    Undecodable(String),
    #[error("the key is of format {0}, which this relay does not know (it reads format 1)")]
    UnknownFormat(u8),
    #[error("the key's licence type {0} is not 1")]
    UnknownLicenceType(u8),
    #[error("the key's MAC type {0} is neither 1 (computer) nor 2 (switch)")]
    UnknownMacType(u8),
    #[error(
        "the key sets bits that format 1 leaves zero (flags {flags:#04x}, reserved {reserved:#06x}): \
         it was made for another version of the relay"
    )]
    ReservedBits { flags: u8, reserved: u16 },
    #[error("no issuer key is configured (license.issuer_keys): add the issuer's public key")]
    NoIssuerKeys,
    #[error("the key is not signed by a configured issuer (unknown issuer or bad signature)")]
    BadSignature,
    #[error("the licence expired on {0}")]
    Expired(String),
    #[error("the licensed MAC {0} is not one of this host's")]
    NotThisHost(String),
    #[error("the licensed MAC {0} is not that of a connected switch")]
    SwitchNotConnected(String),
}

impl Payload {
    pub fn encode(&self) -> [u8; PAYLOAD_LEN] {
        let mut b = [0u8; PAYLOAD_LEN];
        b[0] = 1;
        b[1..5].copy_from_slice(&self.serial.to_be_bytes());
        b[5] = 1;
        b[6] = self.mac_type as u8;
        b[7..13].copy_from_slice(&self.mac);
        b[13..15].copy_from_slice(&self.call.to_be_bytes());
        b[15..17].copy_from_slice(&self.opentsp.to_be_bytes());
        b[17..19].copy_from_slice(&self.operator.to_be_bytes());
        b[19] = u8::from(self.easyset) | u8::from(self.news) << 1 | u8::from(self.dataview) << 2;
        b[20..24].copy_from_slice(&self.expires.to_be_bytes());
        // reserved u16 = 0
        b
    }

    pub fn decode(b: &[u8; PAYLOAD_LEN]) -> Result<Payload, KeyError> {
        if b[0] != 1 {
            return Err(KeyError::UnknownFormat(b[0]));
        }
        if b[5] != 1 {
            return Err(KeyError::UnknownLicenceType(b[5]));
        }
        let mac_type = match b[6] {
            1 => MacType::Computer,
            2 => MacType::Switch,
            other => return Err(KeyError::UnknownMacType(other)),
        };
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        // One payload, one meaning: bits format 1 does not define must be zero.
        if b[19] & !0b111 != 0 || u16_at(24) != 0 {
            return Err(KeyError::ReservedBits {
                flags: b[19],
                reserved: u16_at(24),
            });
        }
        Ok(Payload {
            serial: u32::from_be_bytes([b[1], b[2], b[3], b[4]]),
            mac_type,
            // Cannot fail: `b` is the fixed-size payload.
            mac: b[7..13].try_into().expect("six bytes"),
            call: u16_at(13),
            opentsp: u16_at(15),
            operator: u16_at(17),
            easyset: b[19] & 1 != 0,
            news: b[19] & 2 != 0,
            dataview: b[19] & 4 != 0,
            expires: u32::from_be_bytes([b[20], b[21], b[22], b[23]]),
        })
    }

    /// Signs the payload with an issuer's key and writes the key text.
    pub fn sign(&self, issuer: &SigningKey) -> String {
        let payload = self.encode();
        let signature = issuer.sign(&payload);
        let mut bytes = Vec::with_capacity(KEY_LEN);
        bytes.extend_from_slice(&payload);
        bytes.extend_from_slice(&signature.to_bytes());
        let text = BASE32_NOPAD.encode(&bytes);
        text.as_bytes()
            .chunks(GROUP_LEN)
            .map(|c| std::str::from_utf8(c).expect("base32 is ASCII"))
            .collect::<Vec<_>>()
            .join("-")
    }
}

/// Reads a key's text into its bytes, checking characters and grouping. Lowercase letters and
/// surrounding whitespace are accepted.
pub fn parse_text(text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let text = text.trim();
    for (i, c) in text.chars().enumerate() {
        let ok = c == '-'
            || c.is_ascii_uppercase()
            || c.is_ascii_lowercase()
            || ('2'..='7').contains(&c);
        if !ok {
            return Err(KeyError::BadCharacter {
                position: i + 1,
                found: c,
            });
        }
    }
    let groups: Vec<&str> = text.split('-').collect();
    if groups.len() != GROUPS {
        return Err(KeyError::BadGroupCount {
            groups: groups.len(),
        });
    }
    if let Some((i, g)) = groups
        .iter()
        .enumerate()
        .find(|(_, g)| g.len() != GROUP_LEN)
    {
        return Err(KeyError::BadGroupLength {
            group: i + 1,
            len: g.len(),
        });
    }
    let joined = groups.concat().to_ascii_uppercase();
    let bytes = BASE32_NOPAD
        .decode(joined.as_bytes())
        .map_err(|e| KeyError::Undecodable(e.to_string()))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        KeyError::Undecodable(format!("{} bytes instead of {KEY_LEN}", b.len()))
    })
}

/// Parses a key and checks its signature against the trusted issuer keys.
pub fn verify(text: &str, issuers: &[VerifyingKey]) -> Result<Payload, KeyError> {
    let bytes = parse_text(text)?;
    // Cannot fail: parse_text returns exactly KEY_LEN (26 + 64) bytes.
    let payload_bytes: [u8; PAYLOAD_LEN] = bytes[..PAYLOAD_LEN].try_into().expect("26 bytes");
    let signature = Signature::from_bytes(&bytes[PAYLOAD_LEN..].try_into().expect("64 bytes"));
    if issuers.is_empty() {
        return Err(KeyError::NoIssuerKeys);
    }
    if !issuers
        .iter()
        .any(|k| k.verify_strict(&payload_bytes, &signature).is_ok())
    {
        return Err(KeyError::BadSignature);
    }
    Payload::decode(&payload_bytes)
}

/// Reads `license.issuer_keys` (64 hex digits each); the configuration check has already
/// refused malformed ones, so a key that is not a curve point is the only new failure.
pub fn issuer_keys(hex_keys: &[String]) -> Result<Vec<VerifyingKey>, IssuerKeyError> {
    hex_keys
        .iter()
        .map(|h| {
            let bytes = data_encoding::HEXLOWER_PERMISSIVE
                .decode(h.as_bytes())
                .map_err(|source| IssuerKeyError::Hex {
                    key: h.clone(),
                    source,
                })?;
            let arr: [u8; 32] = bytes
                .try_into()
                .map_err(|_| IssuerKeyError::Length(h.clone()))?;
            VerifyingKey::from_bytes(&arr).map_err(|_| IssuerKeyError::NotAPoint(h.clone()))
        })
        .collect()
}

/// Why a configured issuer key cannot verify licences.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IssuerKeyError {
    #[error("issuer key {key:?}: {source}")]
    Hex {
        key: String,
        #[source]
        source: data_encoding::DecodeError,
    },
    #[error("issuer key {0:?} is not 32 bytes")]
    Length(String),
    #[error("issuer key {0:?} is not an Ed25519 public key")]
    NotAPoint(String),
}

/// `AA:BB:CC:DD:EE:FF`.
pub fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
pub fn day_text(days: u32) -> String {
    let (y, m, d) = wire::date::civil_from_days(i64::from(days));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The day number of `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Option<u32> {
    let mut parts = text.split('-');
    let (y, m, d): (i64, u32, u32) = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = u32::try_from(wire::date::days_from_civil(y, m, d)).ok()?;
    (day_text(days) == text).then_some(days)
}
