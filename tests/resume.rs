//! docs/behaviour.md, resumable sessions: what a session coming back says it has is never
//! given again, even when it has more than this relay (it comes from the other relay of the
//! site, which was ahead).

use client_sim::SimApp;
use testkit::*;

async fn numbered(app: &mut SimApp) -> u64 {
    let (seq, _) = within("an event", app.next_numbered_event())
        .await
        .unwrap()
        .expect("an event");
    seq
}

#[tokio::test]
async fn a_session_back_with_more_than_this_relay_is_not_given_it_again() {
    let site = SiteSpec::switches(1).wait_up(&[1]).start().await;
    let (mut app, grant) = resumable_operator(site.client(), [0; 16], Vec::new()).await;
    site.switch(1).emit_event(b's', "2201", &[]);
    let first = numbered(&mut app).await;
    drop(app);
    site.wait_sessions(0).await;

    // It says it has three events more than this relay ever numbered.
    let (mut app, again) =
        resumable_operator(site.client(), grant.token, vec![(1, first + 3)]).await;
    assert!(again.resumed);
    for device in ["2202", "2203", "2204", "2205", "2206"] {
        site.switch(1).emit_event(b's', device, &[]);
    }
    // The three it has are not given; the two after them are, numbered on.
    assert_eq!(numbered(&mut app).await, first + 4);
    assert_eq!(numbered(&mut app).await, first + 5);
}
