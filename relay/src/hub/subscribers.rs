//! The sessions served one switch as its reader sees them: a read-only snapshot, replaced
//! whole when a session comes, goes or changes its devices, so the event path takes no lock.
//!
//! Filtering sessions are indexed by the devices they watch on this switch: an event costs
//! the sessions that want it, not every filtering session. The snapshot is made of persistent
//! maps (structure shared between versions), so the next one is made in O(log n) whatever the
//! number of sessions: admitting the 10 000th costs what admitting the first did.

use std::collections::BTreeSet;
use std::sync::Arc;

use imbl::{HashMap, OrdMap};

use crate::hub::session_handle::{DeviceKey, SessionHandle};

/// Sessions by id: admission order, since ids only grow.
pub type Members = OrdMap<u64, Arc<SessionHandle>>;

#[derive(Clone, Debug)]
pub struct Subscribers {
    switch: u8,
    /// Every session served this switch.
    pub list: Members,
    /// The sessions that receive every event.
    pub whole: Members,
    /// The filtering sessions: each receives switch-wide events and those of its devices.
    pub filtering: Members,
    /// Device → the filtering sessions that watch it on this switch.
    by_device: HashMap<Box<[u8]>, Members>,
    p3: usize,
    /// Sessions whose events are numbered.
    resumable: usize,
}

impl Subscribers {
    /// No session yet, for switch `switch`.
    pub fn empty(switch: u8) -> Subscribers {
        Subscribers {
            switch,
            list: Members::new(),
            whole: Members::new(),
            filtering: Members::new(),
            by_device: HashMap::new(),
            p3: 0,
            resumable: 0,
        }
    }

    /// The snapshot of `list` for switch `switch`, reading each session's devices now.
    pub fn new(switch: u8, list: impl IntoIterator<Item = Arc<SessionHandle>>) -> Subscribers {
        list.into_iter()
            .fold(Subscribers::empty(switch), |subs, s| subs.with(&s))
    }

    pub fn any_p3(&self) -> bool {
        self.p3 > 0
    }

    pub fn any_resumable(&self) -> bool {
        self.resumable > 0
    }

    /// This snapshot with `session` added, watching the devices it has now.
    pub fn with(&self, session: &Arc<SessionHandle>) -> Subscribers {
        let mut next = self.clone();
        if next.list.insert(session.id, session.clone()).is_some() {
            return self.clone();
        }
        next.p3 += usize::from(session.is_p3());
        next.resumable += usize::from(session.is_resumable());
        if session.filtering {
            next.filtering.insert(session.id, session.clone());
            next.index(session, &session.devices.load(), true);
        } else {
            next.whole.insert(session.id, session.clone());
        }
        next
    }

    /// This snapshot without `session`.
    pub fn without(&self, session: &SessionHandle) -> Subscribers {
        let mut next = self.clone();
        let Some(gone) = next.list.remove(&session.id) else {
            return next;
        };
        next.p3 -= usize::from(gone.is_p3());
        next.resumable -= usize::from(gone.is_resumable());
        if gone.filtering {
            next.filtering.remove(&gone.id);
            next.index(&gone, &gone.devices.load(), false);
        } else {
            next.whole.remove(&gone.id);
        }
        next
    }

    /// This snapshot with the devices of `session` changed from `before` to `after`.
    pub fn with_devices(
        &self,
        session: &Arc<SessionHandle>,
        before: &BTreeSet<DeviceKey>,
        after: &BTreeSet<DeviceKey>,
    ) -> Subscribers {
        let mut next = self.clone();
        if session.filtering && next.list.contains_key(&session.id) {
            let gone: BTreeSet<_> = before.difference(after).cloned().collect();
            let new: BTreeSet<_> = after.difference(before).cloned().collect();
            next.index(session, &gone, false);
            next.index(session, &new, true);
        }
        next
    }

    /// Adds `session` to (or removes it from) the entries of its `devices` on this switch.
    fn index(&mut self, session: &Arc<SessionHandle>, devices: &BTreeSet<DeviceKey>, add: bool) {
        for (_, device) in devices.iter().filter(|(s, _)| *s == self.switch) {
            let key: Box<[u8]> = device.as_bytes().into();
            if add {
                self.by_device
                    .entry(key)
                    .or_default()
                    .insert(session.id, session.clone());
            } else if let Some(watchers) = self.by_device.get_mut(&key) {
                watchers.remove(&session.id);
                if watchers.is_empty() {
                    self.by_device.remove(&key);
                }
            }
        }
    }

    /// The filtering sessions that want an event about `device`: those watching it, or all
    /// of them when the event names no device (it is switch-wide).
    pub fn watching(&self, device: &[u8]) -> Option<&Members> {
        if device.is_empty() {
            return Some(&self.filtering);
        }
        self.by_device.get(device)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::hub::session_handle::NewSession;
    use wire::Str8;

    fn session(id: u64, filtering: bool, devices: &[(u8, &str)]) -> Arc<SessionHandle> {
        SessionHandle::new(NewSession {
            filtering,
            devices: devices
                .iter()
                .map(|(sw, d)| (*sw, Str8::lossy(d)))
                .collect::<BTreeSet<_>>(),
            ..NewSession::for_test(id)
        })
        .shared()
    }

    fn ids(sessions: Option<&Members>) -> Vec<u64> {
        sessions.map_or(Vec::new(), |m| m.values().map(|s| s.id).collect())
    }

    #[test]
    fn an_event_reaches_the_filtering_sessions_watching_its_device_on_this_switch() {
        let list = vec![
            session(1, true, &[(1, "2201"), (2, "2202")]),
            session(2, false, &[(1, "2201")]),
            session(3, true, &[(1, "2201"), (1, "2203")]),
            session(4, true, &[(2, "2201")]),
            session(5, true, &[]),
        ];
        let subs = Subscribers::new(1, list.clone());
        assert_eq!(ids(Some(&subs.list)), [1, 2, 3, 4, 5]);
        assert_eq!(ids(Some(&subs.whole)), [2]);
        assert_eq!(ids(Some(&subs.filtering)), [1, 3, 4, 5]);
        assert_eq!(ids(subs.watching(b"2201")), [1, 3]);
        assert_eq!(ids(subs.watching(b"2203")), [3]);
        // Session 1 watches 2202 on switch 2, not here.
        assert_eq!(ids(subs.watching(b"2202")), [] as [u64; 0]);
        // A switch-wide event (no device) goes to every filtering session.
        assert_eq!(ids(subs.watching(b"")), [1, 3, 4, 5]);
        assert!(subs.any_p3() && !subs.any_resumable());
    }

    #[test]
    fn a_snapshot_reads_the_devices_as_they_are_when_it_is_built() {
        let alex = session(1, true, &[(1, "2201")]);
        let before = Subscribers::new(1, vec![alex.clone()]);
        let mut devices = (**alex.devices.load()).clone();
        devices.insert((1, Str8::lossy("2204")));
        alex.devices.store(Arc::new(devices));
        let after = Subscribers::new(1, vec![alex]);
        assert_eq!(ids(before.watching(b"2204")), [] as [u64; 0]);
        assert_eq!(ids(after.watching(b"2204")), [1]);
        assert_eq!(ids(after.watching(b"2201")), [1]);
    }

    #[test]
    fn sessions_leave_and_change_devices_without_a_rebuild() {
        let alex = session(1, true, &[(1, "2201"), (1, "2202")]);
        let desk = session(2, true, &[(1, "2201")]);
        let op = session(3, false, &[]);
        let subs = Subscribers::empty(1).with(&alex).with(&desk).with(&op);
        let before = subs.clone();

        let after: BTreeSet<DeviceKey> =
            [(1, Str8::lossy("2202")), (1, Str8::lossy("2203"))].into();
        let changed = subs.with_devices(&alex, &alex.devices.load(), &after);
        assert_eq!(ids(changed.watching(b"2201")), [2]);
        assert_eq!(ids(changed.watching(b"2202")), [1]);
        assert_eq!(ids(changed.watching(b"2203")), [1]);
        // The snapshot readers hold is unchanged.
        assert_eq!(ids(before.watching(b"2201")), [1, 2]);
        assert_eq!(ids(before.watching(b"2203")), [] as [u64; 0]);

        let left = subs.without(&desk).without(&op);
        assert_eq!(ids(Some(&left.list)), [1]);
        assert_eq!(ids(Some(&left.whole)), [] as [u64; 0]);
        assert_eq!(ids(left.watching(b"2201")), [1]);
        // A device nobody watches any more has no entry.
        let gone = left.without(&alex);
        assert!(gone.by_device.is_empty() && gone.list.is_empty());
        assert!(!gone.any_p3() && !gone.any_resumable());
        // Leaving twice changes nothing.
        assert_eq!(gone.without(&alex).list.len(), 0);
    }
}
