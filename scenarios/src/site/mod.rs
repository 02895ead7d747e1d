//! Worlds of a site two relays share over a bus: the relays `a` and `b` (`bus.shared`), a
//! `branch` relay of another site serving the same switches from the bus, the site's switches
//! and resumable applications (one of them at the branch), on the in-memory network and the
//! in-memory bus ([`busseam::mem`]), on a paused clock, with the faults of a real site: a relay
//! (the branch too) killed, stalled or stopped, cut off the bus, the bus down or slow, the
//! lease handed over.
//!
//! - [`world`]: a seed makes a world (its timeline depends on the seed alone);
//! - [`host`]: a relay's host on the in-memory network (stalled, killed, its dials seen);
//! - [`play`]: plays a world and gathers what every party saw;
//! - [`app`]: a resumable application that checks what it gets;
//! - [`check`]: the invariants;
//! - [`log`]: the relays' logs on the world's virtual time.

pub mod app;
pub mod check;
pub mod host;
pub mod log;
pub mod play;
pub mod world;

pub use play::{play, SiteRun};
pub use world::{world, SiteWorld};

/// Plays the world of `seed`.
pub fn run_seed(seed: u64, minutes: u64) -> SiteRun {
    play(&world(seed, minutes))
}
