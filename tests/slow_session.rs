//! docs/behaviour.md §4: a session that cannot keep up is closed with `X` reason 3 and never slows the
//! switch link or another session.

use bytes::BytesMut;
use testkit::*;
use wire::{Kind, LinkMsg};

const EVENTS: u32 = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_session_is_closed_while_a_fast_one_receives_every_event_in_order() {
    let site = SiteSpec::switches(1)
        .tuning(|t| t.session_queue_bytes = 256 * 1024)
        .start()
        .await;
    let mut fast = site.admitted(51, 3, CALL, &[]).await;
    // Identifies, then never reads again.
    let slow = site.admitted(52, 3, CALL, &[]).await;

    // 200 000 events of 75 bytes (15 MB: more than loopback's autotuned socket buffers and
    // the slow session's queue can hold together), sent in large writes.
    // The switch paces itself by the fast session (at most 2 000 events, 150 KB, ahead of it), as a
    // real switch's event rate is bounded; the slow session is never waited for.
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let seen_by_fast = progress.clone();
    let fast_reader = tokio::spawn(async move {
        let mut seen = 0u32;
        while seen < EVENTS {
            let f = fast
                .next_frame()
                .await
                .unwrap()
                .expect("fast session stays open");
            if f.kind() != Kind::Event {
                assert!(
                    f.kind() == Kind::Link && f.code() == b'H',
                    "fast session got {f:?} after {seen} events"
                );
                continue;
            }
            let n = u32::from_be_bytes(f.body()[6..10].try_into().unwrap());
            assert_eq!(n, seen, "fast session gets every event, in order");
            seen += 1;
            seen_by_fast.store(seen, std::sync::atomic::Ordering::Relaxed);
        }
        fast
    });
    let mut batch = BytesMut::new();
    for i in 0..EVENTS {
        let mut body = [0u8; 64];
        body[..4].copy_from_slice(&i.to_be_bytes());
        batch.extend_from_slice(&switch_sim::switch::event_frame(b'n', "2201", &body));
        if batch.len() > 64 * 1024 {
            assert!(site.switch(1).send_raw(batch.split().freeze()));
            while i > progress.load(std::sync::atomic::Ordering::Relaxed) + 2_000 {
                assert!(
                    !fast_reader.is_finished(),
                    "the fast session's reader stopped early"
                );
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
    }
    assert!(site.switch(1).send_raw(batch.freeze()));
    let mut fast = within("fast session reads everything", fast_reader)
        .await
        .unwrap();

    // What the slow session reads once it reads again: events in order (a prefix of what
    // was sent, never a cut frame), then X reason 3.
    let mut slow = slow;
    let frames = within("slow session drains", slow.read_to_end())
        .await
        .unwrap();
    let (last, events) = frames.split_last().unwrap();
    assert_eq!(
        LinkMsg::decode(last).unwrap(),
        LinkMsg::Close {
            reason: 3,
            text: "output queue over its bound: the application reads too slowly".into()
        }
    );
    for (i, f) in events
        .iter()
        .filter(|f| f.kind() == Kind::Event)
        .enumerate()
    {
        assert_eq!(
            u32::from_be_bytes(f.body()[6..10].try_into().unwrap()),
            i as u32
        );
    }
    assert!(
        (events.len() as u32) < EVENTS,
        "the slow session lost its backlog"
    );

    site.wait_notice("Call session 127.0.0.52").await;
    let notice = site
        .notices()
        .into_iter()
        .find(|n| n.contains("127.0.0.52"))
        .unwrap();
    assert!(
        notice.ends_with("closed: it did not read its messages fast enough"),
        "{notice}"
    );
    assert_eq!(
        site.relay
            .stats()
            .slow_closes
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    // The link and the fast session carry on.
    site.switch(1).emit_event(b'n', "2202", b"after");
    let f = fast.next_non_heartbeat().await.unwrap().unwrap();
    assert_eq!(&f.body()[6..], b"after");
    assert!(site.is_up(1));
    site.wait_sessions(1).await;
}
