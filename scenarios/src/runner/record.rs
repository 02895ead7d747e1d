//! What each connection receives, recorded as transcript lines and as observations.

use super::*;

/// One application connection being recorded.
pub(super) struct Recording {
    pub(super) reader: Reader,
    pub(super) log: Log,
    pub(super) p3: bool,
    pub(super) start: Instant,
    pub(super) conn: Option<(Observations, usize)>,
    pub(super) resume: Arc<Mutex<ResumeMemory>>,
}

/// Records every frame an application receives; the reader answers heartbeats as an
/// application would, and they are left out of the record. An event's number (`N`) is shown
/// on the event's line, and remembered for resuming. On `hang` the connection is left open
/// and nothing more is read or answered.
pub(super) fn record(
    rec: Recording,
    mut hang: tokio::sync::oneshot::Receiver<()>,
) -> tokio::task::JoinHandle<()> {
    let Recording {
        mut reader,
        log,
        p3,
        start,
        conn,
        resume,
    } = rec;
    tokio::spawn(async move {
        let observe = |end: End, line: String| {
            if let Some((obs, c)) = &conn {
                obs.with(*c, |c| {
                    c.end.get_or_insert(end);
                });
            }
            push(&log, start.elapsed(), line);
        };
        let mut numbered: Option<(u8, u64)> = None;
        let mut can_hang = true;
        loop {
            let next = tokio::select! {
                biased;
                hung = &mut hang, if can_hang => {
                    if hung.is_err() {
                        // Nobody will ask it to hang any more.
                        can_hang = false;
                        continue;
                    }
                    push(&log, start.elapsed(), "stops reading and answering; the connection stays open".into());
                    let _open = reader;
                    std::future::pending::<()>().await;
                    return;
                }
                next = reader.next_frame() => next,
            };
            match next {
                Ok(Some(f)) => {
                    if f.kind() == Kind::Link && f.code() == b'H' {
                        continue;
                    }
                    if f.kind() == Kind::Link && f.code() == b'N' {
                        if let Ok(LinkMsg::Sequence { switch, seq }) = LinkMsg::decode(&f) {
                            numbered = Some((switch, seq));
                        }
                        continue;
                    }
                    let mut line = render::app_frame(&f, p3);
                    if let (Kind::Event, Some((switch, seq))) = (f.kind(), numbered.take()) {
                        line.push_str(&format!(" #{seq}"));
                        resume
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .saw(switch, seq);
                    }
                    push(&log, start.elapsed(), line);
                    if let Some((obs, c)) = &conn {
                        obs.with(*c, |c| c.frames.push((start.elapsed(), f)));
                    }
                }
                Ok(None) => return observe(End::Closed, "closed by the relay".into()),
                Err(e) => return observe(End::Error(e.to_string()), format!("read error: {e}")),
            }
        }
    })
}

/// Where a checked monitor's frames go: its observation, and the switches whose next event
/// numbers are noted when its password is accepted.
pub(super) struct MonitorSeen {
    pub(super) obs: Observations,
    pub(super) index: usize,
    pub(super) switches: BTreeMap<u8, SimSwitch>,
}

impl Scene {
    pub(super) fn monitor_seen(&self, name: &str) -> Option<MonitorSeen> {
        let index = self.monitors.get(name)?.conn?;
        Some(MonitorSeen {
            obs: self.obs.clone(),
            index,
            switches: self.switches.clone(),
        })
    }
}

/// Records what a monitor connection receives.
pub(super) fn record_monitor(
    mut app: SimApp,
    log: Log,
    start: Instant,
    seen: Option<MonitorSeen>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let end = |how: End| {
            if let Some(s) = &seen {
                s.obs.with_monitor(s.index, |m| {
                    m.end.get_or_insert(how);
                });
            }
        };
        loop {
            match app.next_frame().await {
                Ok(Some(f)) => {
                    if let Some(line) = render::monitor_frame(&f) {
                        push(&log, start.elapsed(), line);
                    }
                    if let Some(s) = &seen {
                        let accepted = f.kind() == Kind::Link
                            && matches!(
                                LinkMsg::decode(&f),
                                Ok(LinkMsg::PasswordResult { result: 0 })
                            );
                        let next: BTreeMap<u8, u32> = if accepted {
                            s.switches
                                .iter()
                                .map(|(no, sw)| (*no, sw.sent().next_seq))
                                .collect()
                        } else {
                            BTreeMap::new()
                        };
                        s.obs.with_monitor(s.index, |m| {
                            if accepted {
                                m.accepted_at_seq = next;
                            }
                            m.frames.push((start.elapsed(), f));
                        });
                    }
                }
                Ok(None) => {
                    end(End::Closed);
                    return push(&log, start.elapsed(), "closed by the relay".into());
                }
                Err(e) => {
                    end(End::Error(e.to_string()));
                    return push(&log, start.elapsed(), format!("read error: {e}"));
                }
            }
        }
    })
}

/// Records what a collector of the native export stream receives: one line per record (the
/// bytes up to each NUL).
pub(super) fn record_native_export(
    app: SimApp,
    log: Log,
    start: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = app.into_stream();
        let mut pending = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) => return push(&log, start.elapsed(), "closed by the relay".into()),
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.iter().position(|b| *b == 0) {
                        let record: Vec<u8> = pending.drain(..=end).collect();
                        push(&log, start.elapsed(), render::native_record(&record[..end]));
                    }
                }
                Err(e) => return push(&log, start.elapsed(), format!("read error: {e}")),
            }
        }
    })
}

/// Lines with their times; a run of identical lines becomes one line with a count.
pub(super) fn collapse(log: &[(Duration, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < log.len() {
        let mut j = i + 1;
        while j < log.len() && log[j].1 == log[i].1 {
            j += 1;
        }
        let times = if j - i > 1 {
            format!(" (x{})", j - i)
        } else {
            String::new()
        };
        out.push(format!("{} {}{times}", secs(log[i].0), log[i].1));
        i = j;
    }
    out
}
