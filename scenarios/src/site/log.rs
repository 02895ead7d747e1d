//! The relays' logs while a world plays (`RUST_LOG=relay=debug explore-site --seeds 6..7`),
//! each line stamped with the world's virtual time.

use std::cell::Cell;

use tokio::time::Instant;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::EnvFilter;

thread_local! {
    /// When the world playing on this thread began.
    static WORLD_START: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// The world playing on this thread began now.
pub fn world_begins() {
    WORLD_START.with(|s| s.set(Some(Instant::now())));
}

struct VirtualTime;

impl FormatTime for VirtualTime {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        match WORLD_START.with(Cell::get) {
            Some(start) => write!(w, "{:>9.3}s", start.elapsed().as_secs_f64()),
            None => write!(w, "{:>10}", "-"),
        }
    }
}

/// Logs to standard error as `RUST_LOG` says, when it is set.
pub fn from_env() {
    let Ok(filter) = EnvFilter::try_from_default_env() else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(VirtualTime)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
}
