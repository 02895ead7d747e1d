//! The simulators behave as the real peers do, in what the relay can see: a simulated switch
//! sends nothing before its link is open, and its load rate is a rate, not a backlog.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use netseam::MemNetwork;
use testkit::{Site, SiteSpec};

/// A relay with one simulated switch over the in-memory network, its link not yet dialled.
async fn unlinked_site() -> Site {
    SiteSpec::switches(1)
        .configure(|c| c.options.auto_connect = false)
        .wait_up(&[])
        .on_network(Arc::new(MemNetwork::new()))
        .start()
        .await
}

/// The frames the relay has read from switch 1.
fn frames_in(site: &Site) -> u64 {
    site.relay
        .switch(1)
        .unwrap()
        .counters
        .frames_in
        .load(Ordering::Relaxed)
}

#[tokio::test(start_paused = true)]
async fn a_load_rate_is_kept_across_the_time_without_a_link() {
    let site = unlinked_site().await;
    let load = tokio::spawn(switch_sim::load::run(
        site.switch(1).clone(),
        1000,
        "2201".into(),
        0,
    ));
    // Five seconds with no link: nothing is sent, and nothing is owed.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(site.relay.connect_switch(1));
    site.wait_switch_up(1).await;
    let at_open = frames_in(&site);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let in_two_seconds = frames_in(&site) - at_open;
    // 2 000 load events, and a heartbeat or two; 5 000 more if the dead time were owed.
    assert!(
        (1990..=2010).contains(&in_two_seconds),
        "{in_two_seconds} frames in the first 2 s of the link ({at_open} during its set-up)"
    );
    assert!(at_open < 20, "{at_open} frames during the link's set-up");
    load.abort();
}

/// A load generator writes events from its own task (`send_now`): nothing before the link is
/// open, each event reaches the relay, and nothing is written while the switch stalls.
#[tokio::test(start_paused = true)]
async fn a_switch_writes_from_the_senders_task_only_on_an_open_link_and_not_while_stalled() {
    let site = unlinked_site().await;
    let event = || switch_sim::switch::event_frame(0x6E, "2201", b"");
    assert!(
        !site.switch(1).send_now(event()).await,
        "no link is open yet"
    );
    assert!(site.relay.connect_switch(1));
    site.wait_switch_up(1).await;
    let before = frames_in(&site);
    assert!(site.switch(1).send_now(event()).await);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(frames_in(&site), before + 1);

    assert!(site.switch(1).stall(Duration::from_secs(2)));
    tokio::time::sleep(Duration::from_millis(1)).await;
    let switch = site.switch(1).clone();
    let sent = tokio::spawn(async move { switch.send_now(event()).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        frames_in(&site),
        before + 1,
        "written while the switch stalls"
    );
    assert!(!sent.is_finished());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(sent.await.unwrap());
    assert_eq!(frames_in(&site), before + 2);
}
