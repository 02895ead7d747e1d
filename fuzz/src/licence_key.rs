//! The licence key text parser and verifier on any text: never a panic; a key that verifies
//! prints back, from its payload, to a key that verifies to the same payload.

use std::sync::OnceLock;

use ed25519_dalek::{SigningKey, VerifyingKey};
use relay::licensing::key::{self, Payload};

fn issuer() -> &'static (SigningKey, VerifyingKey) {
    static ISSUER: OnceLock<(SigningKey, VerifyingKey)> = OnceLock::new();
    ISSUER.get_or_init(|| {
        let signing = SigningKey::from_bytes(&std::array::from_fn(|i| i as u8));
        let verifying = signing.verifying_key();
        (signing, verifying)
    })
}

pub fn check(data: &[u8]) {
    let (signing, verifying) = issuer();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = key::parse_text(text);
        if let Ok(payload) = key::verify(text, &[*verifying]) {
            let again = payload.sign(signing);
            assert_eq!(key::verify(&again, &[*verifying]), Ok(payload));
        }
    }
    // Any 26 bytes as a payload: decoded or refused, and what decodes encodes the same.
    if let Some(bytes) = data.get(..key::PAYLOAD_LEN) {
        let bytes: [u8; key::PAYLOAD_LEN] = bytes.try_into().expect("26 bytes");
        if let Ok(payload) = Payload::decode(&bytes) {
            assert_eq!(payload.encode(), bytes);
        }
    }
}
