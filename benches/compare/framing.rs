//! Where each system's messages start and end on a subscriber's connection, and how a
//! publisher frames one: the only code that differs between the three systems.

use std::ops::Range;

use bytes::{BufMut, BytesMut};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum System {
    Relay,
    Redis,
    Nats,
}

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            System::Relay => "relay",
            System::Redis => "redis",
            System::Nats => "nats",
        })
    }
}

/// What the front of a subscriber's buffer holds.
pub enum Parsed {
    /// Not a whole message yet.
    Need,
    /// A message of `len` bytes whose payload is at `payload`.
    Message { len: usize, payload: Range<usize> },
    /// Anything else, of `len` bytes, with what to answer it (a ping).
    Other {
        len: usize,
        reply: Option<&'static [u8]>,
    },
}

/// The relay's heartbeat reply (`L` `h`, INVOKE 0xFFFF).
const RELAY_HEARTBEAT_REPLY: &[u8] = &[0, 4, b'L', b'h', 0xFF, 0xFF];
/// The channel (Redis) and subject (NATS) of the benchmark.
pub const TOPIC: &str = "bench";

impl System {
    pub fn parse(self, buf: &[u8]) -> Parsed {
        match self {
            System::Relay => relay(buf),
            System::Redis => redis(buf),
            System::Nats => nats(buf),
        }
    }

    /// Appends the publisher's framing of one message.
    pub fn publish(self, out: &mut BytesMut, payload: &[u8]) {
        match self {
            // An `E` event from the switch: device str8 "2201", then the payload.
            System::Relay => {
                let len = 4 + 5 + payload.len();
                out.put_u16(len as u16);
                out.put_slice(&[b'E', b'n', 0xFF, 0xFF, 4]);
                out.put_slice(b"2201");
                out.put_slice(payload);
            }
            System::Redis => {
                out.put_slice(
                    format!(
                        "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{TOPIC}\r\n${}\r\n",
                        TOPIC.len(),
                        payload.len()
                    )
                    .as_bytes(),
                );
                out.put_slice(payload);
                out.put_slice(b"\r\n");
            }
            System::Nats => {
                out.put_slice(format!("PUB {TOPIC} {}\r\n", payload.len()).as_bytes());
                out.put_slice(payload);
                out.put_slice(b"\r\n");
            }
        }
    }
}

fn relay(buf: &[u8]) -> Parsed {
    if buf.len() < 2 {
        return Parsed::Need;
    }
    let len = u16::from_be_bytes([buf[0], buf[1]]) as usize + 2;
    if buf.len() < len {
        return Parsed::Need;
    }
    match (buf[2], buf[3]) {
        (b'E', _) => {
            let start = 6 + 1 + buf[6] as usize;
            Parsed::Message {
                len,
                payload: start..len,
            }
        }
        (b'L', b'H') => Parsed::Other {
            len,
            reply: Some(RELAY_HEARTBEAT_REPLY),
        },
        (b'L', b'X') => panic!("the relay closed a subscriber: {:?}", &buf[..len]),
        _ => Parsed::Other { len, reply: None },
    }
}

/// The end of the CRLF-terminated line starting at `at`: (line, index after CRLF).
fn line(buf: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let end = buf[at..].windows(2).position(|w| w == b"\r\n")? + at;
    Some((&buf[at..end], end + 2))
}

fn number(text: &[u8]) -> usize {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a length: {:?}", String::from_utf8_lossy(text)))
}

/// RESP2 in subscribe mode: arrays of bulk strings and integers; a message is
/// `["message", channel, payload]`.
fn redis(buf: &[u8]) -> Parsed {
    let Some((head, mut at)) = line(buf, 0) else {
        return Parsed::Need;
    };
    match head.first() {
        Some(b'*') => {}
        Some(b'-') => panic!("redis: {}", String::from_utf8_lossy(head)),
        // `:n` (a PUBLISH count) and `+PONG`.
        _ => {
            return Parsed::Other {
                len: at,
                reply: None,
            }
        }
    }
    let mut items = Vec::with_capacity(3);
    for _ in 0..number(&head[1..]) {
        let Some((item, next)) = line(buf, at) else {
            return Parsed::Need;
        };
        if item.first() == Some(&b'$') {
            let n = number(&item[1..]);
            if buf.len() < next + n + 2 {
                return Parsed::Need;
            }
            items.push(next..next + n);
            at = next + n + 2;
        } else {
            items.push(next..next);
            at = next;
        }
    }
    if items.len() == 3 && &buf[items[0].clone()] == b"message" {
        Parsed::Message {
            len: at,
            payload: items[2].clone(),
        }
    } else {
        Parsed::Other {
            len: at,
            reply: None,
        }
    }
}

/// NATS client protocol: `MSG <subject> <sid> <bytes>` then the payload; `PING` is answered.
fn nats(buf: &[u8]) -> Parsed {
    let Some((head, at)) = line(buf, 0) else {
        return Parsed::Need;
    };
    if let Some(rest) = head.strip_prefix(b"MSG ") {
        let n = number(rest.rsplit(|b| *b == b' ').next().unwrap_or_default());
        if buf.len() < at + n + 2 {
            return Parsed::Need;
        }
        return Parsed::Message {
            len: at + n + 2,
            payload: at..at + n,
        };
    }
    if head == b"PING" {
        return Parsed::Other {
            len: at,
            reply: Some(b"PONG\r\n"),
        };
    }
    if head.starts_with(b"-ERR") {
        panic!("nats: {}", String::from_utf8_lossy(head));
    }
    Parsed::Other {
        len: at,
        reply: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(system: System, buf: &[u8]) -> (usize, Vec<u8>) {
        match system.parse(buf) {
            Parsed::Message { len, payload } => (len, buf[payload].to_vec()),
            _ => panic!("not a message"),
        }
    }

    #[test]
    fn each_system_finds_its_messages_payload_and_needs_the_rest() {
        let redis = b"*3\r\n$7\r\nmessage\r\n$5\r\nbench\r\n$3\r\nabc\r\n";
        assert_eq!(
            message(System::Redis, redis),
            (redis.len(), b"abc".to_vec())
        );
        assert!(matches!(
            System::Redis.parse(&redis[..redis.len() - 1]),
            Parsed::Need
        ));
        let nats = b"MSG bench 1 3\r\nabc\r\n";
        assert_eq!(message(System::Nats, nats), (nats.len(), b"abc".to_vec()));
        assert!(matches!(System::Nats.parse(&nats[..10]), Parsed::Need));
        let mut relay = BytesMut::new();
        System::Relay.publish(&mut relay, b"abc");
        assert_eq!(
            message(System::Relay, &relay),
            (relay.len(), b"abc".to_vec())
        );
        let subscribed = b"*3\r\n$9\r\nsubscribe\r\n$5\r\nbench\r\n:1\r\n";
        assert!(matches!(
            System::Redis.parse(subscribed),
            Parsed::Other { len, .. } if len == subscribed.len()
        ));
        assert!(matches!(
            System::Nats.parse(b"PING\r\n"),
            Parsed::Other {
                len: 6,
                reply: Some(b"PONG\r\n")
            }
        ));
    }
}
