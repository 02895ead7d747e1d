//! A site's link holder numbers only the events it has reserved numbers for on the bus
//! ([`crate::bus::marks`]), and reserves exactly the events it has read: the switch reader asks
//! for the events it holds beyond its reservation and goes on reading while the lease's loop
//! writes them, so that each write covers everything read while the last was on its way.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::futures::Notified;
use wire::FrameReader;

use crate::hub::{Hub, SwitchSlot};
use crate::outbox::Outbox;

/// How often a reader waiting for numbers looks again without being woken (the lease may
/// have run out meanwhile).
pub(super) const POLL: Duration = Duration::from_millis(50);

/// The most a reader waiting for numbers holds before it stops reading (the switch is then
/// held back by TCP, as by a slow relay).
const HELD_LIMIT: usize = 1 << 20;

/// How many events `reader` holds whole beyond the numbers the site's holder has left (and
/// then asks for exactly that many), or 0.
pub(super) fn wanted(slot: &SwitchSlot, reader: &mut FrameReader) -> u64 {
    // Cheap first: each frame is at least its header.
    let at_most = (reader.pending() / usize::from(wire::frame::MIN_LEN + 2)) as u64;
    if at_most == 0 || at_most <= slot.journal().numbers_left() {
        return 0;
    }
    let events = reader.events_buffered();
    if events > 0 && slot.journal().reservation_short(events) {
        events
    } else {
        0
    }
}

/// Whether a reader that asked for numbers may wait for them: the lease's loop is woken to
/// write them, unless the relay no longer believes it holds the lease. A relay whose bus was
/// removed from its configuration numbers on by itself.
pub(super) fn may_wait(hub: &Hub, slot: &SwitchSlot, outbox: Option<&Outbox>) -> bool {
    let Some(outbox) = outbox else {
        slot.journal().reserve(u64::MAX);
        return true;
    };
    // The fence may shut for a moment while the lease loop renews late; the link is let go
    // only once this relay no longer believes it holds the lease.
    if !hub.fence.open() && !outbox.lease_held.load(Ordering::Relaxed) {
        return false;
    }
    outbox.numbers_low.notify_one();
    true
}

/// Completes when a reservation was written (`None` at once where there is no bus).
pub(super) async fn reserved(notified: Pin<&mut Option<Notified<'_>>>) -> Option<()> {
    notified.as_pin_mut()?.await;
    Some(())
}

/// Whether the reader reads more: always, except while it waits for numbers with
/// [`HELD_LIMIT`] already held.
pub(super) fn may_read(reader: &FrameReader, waiting: bool) -> bool {
    !waiting || reader.pending() < HELD_LIMIT
}
