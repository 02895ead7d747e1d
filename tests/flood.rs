//! docs/behaviour.md §9: floods of connections and of garbage leave the relay up, other sessions
//! untouched, and its memory and task count back at their baseline.

use client_sim::SimApp;
use testkit::*;
use tokio::io::AsyncWriteExt;
use wire::Kind;

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("Linux /proc");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Opens `n` connections, `concurrency` at a time; each does one of several bad things.
async fn churn(site: &Site, n: usize, concurrency: usize) {
    let client = site.client();
    let mut done = 0;
    while done < n {
        let batch = concurrency.min(n - done);
        let mut tasks = Vec::with_capacity(batch);
        for i in 0..batch {
            let host = 100 + ((done + i) % 100) as u8;
            tasks.push(tokio::spawn(async move {
                let mut app = SimApp::connect(client, Some(loopback(host)))
                    .await
                    .expect("loopback connect");
                match (done + i) % 3 {
                    // Open and drop.
                    0 => {}
                    // Half an identify, then drop.
                    1 => {
                        let _ = app.send_raw(&[0, 20, b'L', b'I', 0xFF, 0xFF, 3]).await;
                    }
                    // A frame error.
                    _ => {
                        let _ = app.send_raw(&[0, 1, 2, 3, 4, 5]).await;
                    }
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        done += batch;
    }
}

/// One peer writes `total` bytes of pseudo-random garbage until done or refused.
async fn garbage(site: &Site, total: usize) -> usize {
    let app = SimApp::connect(site.client(), Some(loopback(99)))
        .await
        .unwrap();
    let mut stream = app.into_stream();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        for b in chunk.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *b = state as u8;
        }
        match stream.write_all(&chunk).await {
            Ok(()) => sent += chunk.len(),
            Err(_) => break,
        }
    }
    sent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_and_garbage_floods_leave_the_relay_as_it_was() {
    let site = SiteSpec::switches(1).start().await;
    let mut live = site.admitted(51, 3, CALL, &[]).await;

    // Warm up allocator pools and the runtime, then take the baseline.
    let tasks_baseline = site.relay.tasks_alive();
    churn(&site, 1_000, 200).await;
    // A connection can legitimately linger up to the 10 s identify deadline, so these waits
    // allow more than that on a loaded machine.
    let settle = std::time::Duration::from_secs(30);
    wait_until_for("warm-up connections gone", settle, || {
        site.relay.tasks_alive() == tasks_baseline
    })
    .await;
    let accepted = || {
        site.relay
            .stats()
            .connections_accepted
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let accepted_before = accepted();
    let rss_baseline = resident_bytes();

    churn(&site, 10_000, 200).await;
    let sent = garbage(&site, 50 << 20).await;
    wait_until_for("every connection accepted", settle, || {
        accepted() - accepted_before == 10_001
    })
    .await;
    assert!(
        sent < 50 << 20,
        "the relay closed the garbage connection early ({sent} bytes taken)"
    );

    wait_until_for("flood connections gone", settle, || {
        site.relay.tasks_alive() == tasks_baseline
    })
    .await;
    site.wait_sessions(1).await;
    let growth = resident_bytes().saturating_sub(rss_baseline);
    assert!(growth < 16 << 20, "resident memory grew by {growth} bytes");

    // The live session saw nothing but what the switch sent.
    site.switch(1).emit_event(b'n', "2201", b"after");
    let f = within("event after the flood", live.next_non_heartbeat())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((f.kind(), &f.body()[6..]), (Kind::Event, &b"after"[..]));
    assert!(site.is_up(1));
}
