//! docs/behaviour.md §5: the licence key format, its test vector, and every refusal reason.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use relay::licensing::key::{self, KeyError, MacType, Payload};

/// The test vector's issuer: the key pair from seed bytes 0, 1, 2, … 31.
fn vector_issuer() -> SigningKey {
    SigningKey::from_bytes(&std::array::from_fn(|i| i as u8))
}

fn vector_payload() -> Payload {
    Payload {
        serial: 1001,
        mac_type: MacType::Computer,
        mac: [0x00, 0x1B, 0x21, 0x3A, 0x4C, 0x5D],
        call: 50,
        opentsp: 5,
        operator: 3,
        easyset: true,
        news: false,
        dataview: true,
        expires: key::parse_day("2027-12-31").unwrap(),
    }
}

/// Any other implementation of the format can check itself against these values. The key
/// text was computed independently of this code (a separate RFC 8032 implementation), and
/// Ed25519 signatures are deterministic, so it must come out byte for byte.
#[test]
fn the_committed_test_vector() {
    let issuer = vector_issuer();
    assert_eq!(
        data_encoding::HEXLOWER.encode(issuer.verifying_key().as_bytes()),
        "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
    );
    assert_eq!(
        data_encoding::HEXUPPER.encode(&vector_payload().encode()),
        "01000003E90101001B213A4C5D00320005000305000052BF0000"
    );
    let text = vector_payload().sign(&issuer);
    assert_eq!(
        text,
        "AEAAAA7J-AEAQAGZB-HJGF2ABS-AACQAAYF-AAAFFPYA-ACC4S7P6-YNTNREBM-N7PD4F4A-\
         RFSWO4QT-RF6XJ2HP-XBHQGKY2-BJOPBMXV-P5YVQXEM-GJCR3XBN-WCGS3QE5-JL6HWC43-\
         HDKZCTTK-6RCLSFYD"
    );
    assert_eq!(
        key::verify(&text, &[issuer.verifying_key()]).unwrap(),
        vector_payload()
    );
}

fn payload() -> impl Strategy<Value = Payload> {
    (
        any::<u32>(),
        prop_oneof![Just(MacType::Computer), Just(MacType::Switch)],
        any::<[u8; 6]>(),
        (any::<u16>(), any::<u16>(), any::<u16>()),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        any::<u32>(),
    )
        .prop_map(
            |(
                serial,
                mac_type,
                mac,
                (call, opentsp, operator),
                (easyset, news, dataview),
                expires,
            )| Payload {
                serial,
                mac_type,
                mac,
                call,
                opentsp,
                operator,
                easyset,
                news,
                dataview,
                expires,
            },
        )
}

proptest! {
    #[test]
    fn payload_to_key_text_to_payload_is_identical(p in payload(), seed in any::<[u8; 32]>()) {
        let issuer = SigningKey::from_bytes(&seed);
        let text = p.sign(&issuer);
        prop_assert_eq!(text.len(), 18 * 8 + 17);
        prop_assert!(text.split('-').all(|g| g.len() == 8 && g.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))));
        prop_assert_eq!(key::verify(&text, &[issuer.verifying_key()]).unwrap(), p.clone());
        // Lowercase and surrounding spaces are read the same.
        prop_assert_eq!(key::verify(&format!("  {}\n", text.to_lowercase()), &[issuer.verifying_key()]).unwrap(), p);
    }

    #[test]
    fn any_flipped_bit_is_refused(p in payload(), bit in 0usize..(90 * 8)) {
        let issuer = vector_issuer();
        let text = p.sign(&issuer);
        let mut bytes = key::parse_text(&text).unwrap();
        bytes[bit / 8] ^= 1 << (bit % 8);
        let encoded = data_encoding::BASE32_NOPAD.encode(&bytes);
        let forged: Vec<&str> = encoded.as_bytes().chunks(8).map(|c| std::str::from_utf8(c).unwrap()).collect();
        let err = key::verify(&forged.join("-"), &[issuer.verifying_key()]).unwrap_err();
        prop_assert!(matches!(err, KeyError::BadSignature), "{err}");
    }
}

#[test]
fn each_refusal_has_its_own_reason() {
    let issuer = vector_issuer();
    let good = vector_payload().sign(&issuer);
    let trusted = [issuer.verifying_key()];
    let reason = |text: &str, keys: &[ed25519_dalek::VerifyingKey]| {
        key::verify(text, keys).unwrap_err().to_string()
    };

    assert_eq!(
        reason(&good.replacen('A', "1", 1), &trusted),
        format!(
            "character {} of the key, '1', is not one of A-Z (either case), 2-7 or '-'",
            good.find('A').unwrap() + 1
        )
    );
    assert_eq!(
        reason(&good[..good.len() - 9], &trusted),
        "a key is 18 groups of 8 characters joined by '-'; this one has 17 group(s)"
    );
    assert_eq!(
        reason(&good.replacen('-', "", 1).replacen('-', "--", 1), &trusted),
        "group 1 of the key has 16 characters instead of 8"
    );
    assert_eq!(
        reason(&good[..good.len() - 1], &trusted),
        "group 18 of the key has 7 characters instead of 8"
    );
    let stranger = SigningKey::from_bytes(&[9; 32]);
    assert_eq!(
        reason(&good, &[stranger.verifying_key()]),
        "the key is not signed by a configured issuer (unknown issuer or bad signature)"
    );
    assert_eq!(
        reason(&good, &[]),
        "no issuer key is configured (license.issuer_keys): add the issuer's public key"
    );
}

/// docs/behaviour.md §5: the reserved u16 is 0 and the flags have three bits; a payload that sets any
/// other bit is refused, so that one payload has one meaning.
#[test]
fn a_payload_with_reserved_bits_set_is_refused() {
    let good = vector_payload().encode();
    assert_eq!(Payload::decode(&good), Ok(vector_payload()));
    let mut reserved = good;
    reserved[25] = 1;
    assert_eq!(
        Payload::decode(&reserved).unwrap_err().to_string(),
        "the key sets bits that format 1 leaves zero (flags 0x05, reserved 0x0001): it was made \
         for another version of the relay"
    );
    let mut flags = good;
    flags[19] |= 0x80;
    assert_eq!(
        Payload::decode(&flags),
        Err(KeyError::ReservedBits {
            flags: 0x85,
            reserved: 0
        })
    );
}

#[test]
fn expiry_and_mac_bindings() {
    let p = vector_payload();
    let day = 86_400_000u64;
    let last_day = u64::from(p.expires) * day;
    let here = [p.mac];
    assert!(relay::licensing::valid_now(&p, last_day + day - 1, &here, &[]).is_ok());
    assert_eq!(
        relay::licensing::valid_now(&p, last_day + day, &here, &[])
            .unwrap_err()
            .to_string(),
        "the licence expired on 2027-12-31"
    );
    assert_eq!(
        relay::licensing::valid_now(&p, last_day, &[[1; 6]], &[p.mac])
            .unwrap_err()
            .to_string(),
        "the licensed MAC 00:1B:21:3A:4C:5D is not one of this host's"
    );
    let switch_bound = Payload {
        mac_type: MacType::Switch,
        expires: 0,
        ..p
    };
    assert!(relay::licensing::valid_now(&switch_bound, 0, &[], &[switch_bound.mac]).is_ok());
    assert_eq!(
        relay::licensing::valid_now(&switch_bound, 0, &[switch_bound.mac], &[])
            .unwrap_err()
            .to_string(),
        "the licensed MAC 00:1B:21:3A:4C:5D is not that of a connected switch"
    );
}

#[test]
fn dates_round_trip() {
    assert_eq!(key::parse_day("1970-01-01"), Some(0));
    // Checked against GNU date: $(( $(date -u -d 2026-11-24 +%s) / 86400 )).
    assert_eq!(key::parse_day("2026-11-24"), Some(20_781));
    assert_eq!(key::day_text(20_781), "2026-11-24");
    assert_eq!(key::parse_day("2026-02-30"), None);
    assert_eq!(key::parse_day("2026-13-01"), None);
}
