//! Load mode: events at a steady rate, each carrying its send time, so that a load client can
//! measure the relay's latency from the switch's send to the application's receipt.
//!
//! A load event is `E` code `z`: `device str8`, `sent_ns u64` (Unix nanoseconds), padding to
//! the requested body size.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use wire::frame::{put_header, NO_INVOKE};
use wire::Kind;

use crate::switch::SimSwitch;

/// Event code of load events.
pub const LOAD_CODE: u8 = b'z';

/// Unix nanoseconds now.
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The send time carried by a load event as the switch sent it, or `None` if it is not one.
/// `body` is the event body after any SWITCH byte.
pub fn sent_ns(code: u8, body: &[u8]) -> Option<u64> {
    if code != LOAD_CODE {
        return None;
    }
    let n = *body.first()? as usize;
    let ts = body.get(1 + n..1 + n + 8)?;
    Some(u64::from_be_bytes(ts.try_into().ok()?))
}

/// Sends `rate` load events per second about `device`, each with a body of `body_len` bytes
/// (at least the device and timestamp), until the link closes or the task is dropped.
pub async fn run(switch: SimSwitch, rate: u64, device: String, body_len: usize) {
    let min = 1 + device.len() + 8;
    let body_len = body_len.max(min);
    let start = tokio::time::Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    loop {
        tick.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        if due <= sent {
            continue;
        }
        let mut batch = BytesMut::with_capacity(((due - sent) as usize) * (6 + body_len));
        let now = unix_ns();
        for _ in sent..due {
            put_header(&mut batch, Kind::Event, LOAD_CODE, NO_INVOKE, body_len);
            batch.put_u8(device.len() as u8);
            batch.put_slice(device.as_bytes());
            batch.put_u64(now);
            batch.put_bytes(0, body_len - min);
        }
        // Without an open link these are lost, as a real switch's would be: a link that
        // opens later gets the rate from then on, never a backlog.
        let _ = switch.send_raw(batch.freeze());
        sent = due;
    }
}
