//! The runtime every scenario and world plays on: one thread, the clock paused (time moves
//! only when every task waits), and tokio's own random choices (which ready branch of a
//! `select!` goes first) drawn from a fixed seed, so a play is the same on every run.

use tokio::runtime::{Builder, Runtime};

/// A current-thread runtime on a paused clock whose random choices come from `seed`.
pub fn paused(seed: u64) -> Runtime {
    let mut builder = Builder::new_current_thread();
    builder.enable_all().start_paused(true);
    // Built without `--cfg tokio_unstable` (see `.cargo/config.toml`), the choices are the
    // runtime's own and two plays of a world may part ways where two branches are ready at once.
    #[cfg(tokio_unstable)]
    builder.rng_seed(tokio::runtime::RngSeed::from_bytes(&seed.to_le_bytes()));
    #[cfg(not(tokio_unstable))]
    let _ = seed;
    builder.build().expect("a current-thread runtime")
}
