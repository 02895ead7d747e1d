//! The JSON text of recent events, made once and shared by every tab that sees them the same
//! way, as the TCP path shares one frame among its sessions. A text is kept framed as the
//! WebSocket message it is sent as ([`super::socket`]), so that a tab writes it as it is.
//!
//! A tab's bridge looks the event's frame up by its bytes and the tab's view (its protocol
//! and default switch, which decide the `switch` it is told). The first tab on a worker
//! thread to meet an event makes its text; the thread's other tabs clone it (a reference
//! count). An entry is good for
//! [`MAX_AGE`]: a switch that sends the same bytes again later (a device idle twice) gets a
//! text of its own, with its own `time_ms`. Memory is bounded: each view keeps two
//! generations of at most [`GENERATION`] entries, and a frame is at most `wire::MAX_LEN`
//! bytes.
//!
//! A run of events the session's queue hands over whole (the fanned-out run every unfiltered
//! session shares) is looked up by the run's buffer itself rather than its bytes: the texts
//! made of it, as a view and a batching mode see it, are kept with a reference to the buffer,
//! which keeps its address from being reused while the entry lives. A lookup then costs one
//! hash of an address, not one per event, and the messages of the whole run are one buffer,
//! which every tab of the view writes as one slice. Runs are kept for [`MAX_AGE`], in two
//! generations of at most [`RUN_GENERATION`] runs and [`RUN_GENERATION_BYTES`] bytes each.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use thread_local::ThreadLocal;

/// How long a text is given to tabs that meet the same frame.
pub const MAX_AGE: Duration = Duration::from_millis(50);
/// Entries in one generation of one view.
pub const GENERATION: usize = 512;
/// Views: protocol 2 or 3, times default switch 0..=8.
const VIEWS: usize = 2 * 9;

/// A frame's bytes, and when its message was made and the message framed.
type Map = HashMap<Box<[u8]>, (Instant, Bytes), foldhash::fast::RandomState>;

/// Runs kept in one generation (on each thread, all views together).
pub const RUN_GENERATION: usize = 256;
/// Bytes of runs one generation keeps (the runs' buffers are kept with their texts).
pub const RUN_GENERATION_BYTES: usize = 4 << 20;

/// A run's buffer as its key: the view and batching mode, its address and length.
type RunKey = (usize, bool, usize, usize);
/// When a run's messages were made, the run (holding its address), and the messages, framed,
/// in one buffer.
type RunMap = HashMap<RunKey, (Instant, Bytes, Bytes), foldhash::fast::RandomState>;

#[derive(Default)]
struct RunGenerations {
    current: RunMap,
    /// When the current generation began.
    began: Option<Instant>,
    /// Bytes of the current generation's runs and texts.
    bytes: usize,
    old: RunMap,
}

#[derive(Default)]
struct Generations {
    current: Map,
    old: Map,
}

/// The shared texts: a set per view, kept by each thread that runs tabs. A text is made once
/// per thread rather than once in all, so that the tabs sharing it never touch another
/// core's memory: no lock, and reference counts that stay in one core's cache.
#[derive(Default)]
pub struct EventTexts {
    threads: ThreadLocal<RefCell<[Generations; VIEWS]>>,
    runs: ThreadLocal<RefCell<RunGenerations>>,
}

impl EventTexts {
    /// The texts as a tab of `protocol` (2 or 3) with `default_switch` sees them, on this
    /// thread, for the frames that came to it together.
    pub fn view(&self, protocol: u8, default_switch: u8) -> ViewTexts<'_> {
        ViewTexts {
            views: self.threads.get_or_default(),
            runs: self.runs.get_or_default(),
            view: usize::from(protocol == 3) * 9 + usize::from(default_switch.min(8)),
            now: Instant::now(),
        }
    }
}

/// One tab's view of the texts, for the frames that came to it together (their time is the
/// time of the view).
pub struct ViewTexts<'a> {
    views: &'a RefCell<[Generations; VIEWS]>,
    runs: &'a RefCell<RunGenerations>,
    view: usize,
    now: Instant,
}

impl ViewTexts<'_> {
    /// `use_text` given the message of `frame` (at most `wire::MAX_LEN` bytes), framed: the
    /// one made already when it is recent, otherwise `make`'s text framed, kept for the next
    /// tab. `None` when `make` has none (a frame the tab is not told of). `use_text` must not
    /// look texts up.
    pub fn with<R>(
        &self,
        frame: &[u8],
        make: impl FnOnce() -> Option<String>,
        use_text: impl FnOnce(&Bytes) -> R,
    ) -> Option<R> {
        {
            let views = self.views.borrow();
            let texts = &views[self.view];
            let found = texts
                .current
                .get(frame)
                .or_else(|| texts.old.get(frame))
                .filter(|(made, _)| self.now.duration_since(*made) <= MAX_AGE);
            if let Some((_, text)) = found {
                return Some(use_text(text));
            }
        }
        // Made with nothing borrowed: `make` may take its time, and cannot meet a borrow.
        let text = super::socket::text_frame(&make()?);
        let used = use_text(&text);
        let mut views = self.views.borrow_mut();
        let texts = &mut views[self.view];
        if texts.current.len() >= GENERATION {
            texts.old = std::mem::take(&mut texts.current);
        }
        texts.current.insert(frame.into(), (self.now, text));
        Some(used)
    }

    /// `use_messages` given the messages `run` became for this view in `batch` mode, framed in
    /// one buffer, when they were made recently; `false` when they were not.
    pub fn with_run(&self, run: &Bytes, batch: bool, use_messages: impl FnOnce(&Bytes)) -> bool {
        let runs = self.runs.borrow();
        let key = self.run_key(run, batch);
        let found = runs
            .current
            .get(&key)
            .or_else(|| runs.old.get(&key))
            .filter(|(made, _, _)| self.now.duration_since(*made) <= MAX_AGE);
        match found {
            Some((_, _, messages)) => {
                use_messages(messages);
                true
            }
            None => false,
        }
    }

    /// Keeps the messages `run` became for this view in `batch` mode (framed, in one buffer),
    /// for the next tab.
    pub fn keep_run(&self, run: &Bytes, batch: bool, messages: Bytes) {
        let mut runs = self.runs.borrow_mut();
        let stale = runs
            .began
            .is_none_or(|began| self.now.duration_since(began) > MAX_AGE);
        if stale || runs.current.len() >= RUN_GENERATION || runs.bytes >= RUN_GENERATION_BYTES {
            runs.old = std::mem::take(&mut runs.current);
            runs.began = Some(self.now);
            runs.bytes = 0;
        }
        runs.bytes += run.len() + messages.len();
        let key = self.run_key(run, batch);
        runs.current.insert(key, (self.now, run.clone(), messages));
    }

    fn run_key(&self, run: &Bytes, batch: bool) -> RunKey {
        (self.view, batch, run.as_ptr() as usize, run.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::socket::{text_frame, text_of};
    use super::*;

    /// A message's text.
    fn text(framed: &Bytes) -> &str {
        std::str::from_utf8(text_of(framed)).unwrap()
    }

    impl EventTexts {
        /// One frame's message, framed.
        fn text(
            &self,
            protocol: u8,
            default_switch: u8,
            frame: &[u8],
            make: impl FnOnce() -> Option<String>,
        ) -> Option<Bytes> {
            self.view(protocol, default_switch)
                .with(frame, make, Bytes::clone)
        }
    }

    #[test]
    fn a_text_made_is_used_once_and_kept() {
        let texts = EventTexts::default();
        let view = texts.view(3, 1);
        let (mut used, made) = (Vec::new(), std::cell::Cell::new(0));
        let make = |text: &str| {
            made.set(made.get() + 1);
            Some(text.to_owned())
        };
        view.with(b"a", || make("A"), |t| used.push(text(t).to_owned()));
        view.with(b"a", || make("again"), |t| used.push(text(t).to_owned()));
        assert_eq!(view.with(b"b", || None, |_| ()), None);
        assert_eq!(used, ["A", "A"]);
        assert_eq!(made.get(), 1);
    }

    #[test]
    fn a_text_is_made_once_per_view_and_shared() {
        let texts = EventTexts::default();
        let mut made = 0;
        let mut make = |s: &str| {
            made += 1;
            Some(s.to_owned())
        };
        let mut made_text = |protocol, switch, frame: &[u8], s| {
            texts.text(protocol, switch, frame, || make(s)).unwrap()
        };
        let a = made_text(3, 1, b"frame", "a");
        let b = made_text(3, 1, b"frame", "b");
        let c = made_text(2, 1, b"frame", "c");
        let d = made_text(3, 2, b"frame", "d");
        let e = made_text(3, 1, b"other", "e");
        // A frame with no text is not kept.
        assert!(texts.text(3, 1, b"x", || None).is_none());
        let x = texts.text(3, 1, b"x", || Some("x".into())).unwrap();
        assert_eq!(x, text_frame("x"), "kept as the message it is sent as");
        assert_eq!(
            [text(&a), text(&b), text(&c), text(&d), text(&e)],
            ["a", "a", "c", "d", "e"]
        );
        assert_eq!(a.as_ptr(), b.as_ptr(), "shared, not made again");
        assert_eq!(made, 4);
    }

    #[test]
    fn the_same_bytes_later_get_a_text_of_their_own() {
        let texts = EventTexts::default();
        let first = texts.text(3, 1, b"idle", || Some("first".into())).unwrap();
        std::thread::sleep(MAX_AGE + Duration::from_millis(5));
        let again = texts.text(3, 1, b"idle", || Some("again".into())).unwrap();
        assert_eq!((text(&first), text(&again)), ("first", "again"));
    }

    /// A run's texts are found by its buffer (not by equal bytes elsewhere), for the view and
    /// mode they were made for, until they are [`MAX_AGE`] old; runs kept are bounded by count
    /// and by bytes.
    #[test]
    fn a_run_is_found_by_its_buffer_for_its_view_and_mode() {
        let texts = EventTexts::default();
        let run = Bytes::from(vec![1u8; 100]);
        let view = texts.view(3, 1);
        view.keep_run(&run, false, text_frame("a"));
        let found = |view: &ViewTexts<'_>, run: &Bytes, batch| {
            let mut got = Vec::new();
            view.with_run(run, batch, |t| got.push(text(t).to_owned()));
            got
        };
        assert_eq!(found(&view, &run, false), ["a"]);
        assert_eq!(
            found(&view, &run.clone(), false),
            ["a"],
            "a clone is the same buffer"
        );
        assert!(
            found(&view, &Bytes::from(vec![1u8; 100]), false).is_empty(),
            "equal bytes elsewhere"
        );
        assert!(
            found(&view, &run.slice(..50), false).is_empty(),
            "part of it"
        );
        assert!(found(&view, &run, true).is_empty(), "another mode");
        assert!(
            found(&texts.view(2, 1), &run, false).is_empty(),
            "another view"
        );
        std::thread::sleep(MAX_AGE + Duration::from_millis(5));
        assert!(found(&texts.view(3, 1), &run, false).is_empty(), "too old");

        let view = texts.view(3, 1);
        let big: Vec<Bytes> = (0..3)
            .map(|_| Bytes::from(vec![0u8; RUN_GENERATION_BYTES / 2]))
            .collect();
        for run in &big {
            view.keep_run(run, false, Bytes::new());
        }
        let runs = texts.runs.get().unwrap().borrow();
        assert_eq!((runs.current.len(), runs.old.len()), (1, 2));
        drop(runs);
        for i in 0..(3 * RUN_GENERATION) {
            view.keep_run(&Bytes::from(i.to_be_bytes().to_vec()), false, Bytes::new());
        }
        let runs = texts.runs.get().unwrap().borrow();
        assert!(runs.current.len() + runs.old.len() <= 2 * RUN_GENERATION);
    }

    #[test]
    fn memory_is_two_generations_at_most() {
        let texts = EventTexts::default();
        for i in 0..(5 * GENERATION) {
            texts.text(3, 1, &i.to_be_bytes(), || Some(i.to_string()));
        }
        let views = texts.threads.get().unwrap().borrow();
        assert_eq!(
            views[9 + 1].current.len() + views[9 + 1].old.len(),
            2 * GENERATION
        );
        drop(views);
        // The most recent generation's texts are still shared; the oldest are gone.
        let last = 5 * GENERATION - 1;
        let remade = || Some("remade".to_owned());
        let kept = texts.text(3, 1, &last.to_be_bytes(), remade).unwrap();
        assert_eq!(text(&kept), last.to_string());
        let gone = texts.text(3, 1, &0usize.to_be_bytes(), remade).unwrap();
        assert_eq!(text(&gone), "remade");
    }
}
