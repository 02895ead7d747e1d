//! docs/behaviour.md §5 over real TCP: use is given back however a session ends; the trial start survives
//! restarts and a deleted licence; registration in the running relay.

use relay::licensing::key::{MacType, Payload};
use testkit::*;

#[tokio::test]
async fn use_is_released_when_a_session_ends_abruptly() {
    let site = SiteSpec::switches(1).start().await;
    let first = site.admitted(51, 3, OPERATOR, &[]).await;
    let _second = site.admitted(52, 3, OPERATOR, &[]).await;
    let (_, refused) = site.app(53, 3, OPERATOR, &[]).await;
    assert_eq!(refused.result, 2);
    // Dropped without a word: the TCP connection just closes.
    drop(first);
    site.wait_sessions(1).await;
    let (_, id) = site.app(54, 3, OPERATOR, &[]).await;
    assert_eq!(
        id.result, 0,
        "the dropped session's Operator licence was given back"
    );
}

#[tokio::test]
async fn the_trial_start_survives_a_restart_and_a_deleted_licence() {
    let dir = tempfile::tempdir().unwrap();
    let first = relay::licensing::Licensing::open(dir.path(), 1_000).unwrap();
    assert_eq!(first.trial_start_ms, 1_000);
    let file = dir.path().join(relay::licensing::trial::FILE);
    let recorded = std::fs::read_to_string(&file).unwrap();
    // Later starts (and a licence registered then deleted) keep the first start.
    relay::licensing::store::write(dir.path(), "SOME-KEY").unwrap();
    std::fs::remove_file(dir.path().join(relay::licensing::store::FILE)).unwrap();
    let again = relay::licensing::Licensing::open(dir.path(), 99_000_000).unwrap();
    assert_eq!(again.trial_start_ms, 1_000);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), recorded);
    // Only the recorded file is there: nothing half-written is left beside it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [relay::licensing::trial::FILE]);
}

/// One switch, a relay that trusts the issuer returned and whose host MAC is
/// 02:00:00:00:00:07.
async fn site_with_issuer() -> (Site, ed25519_dalek::SigningKey) {
    let site = SiteSpec::switches(1).trusting_test_issuer().start().await;
    (site, testkit::issuer())
}

#[tokio::test]
async fn a_licence_registered_in_the_running_relay_applies_to_the_next_identify() {
    let (site, issuer) = site_with_issuer().await;
    let licence = |serial, operator, mac: [u8; 6]| {
        Payload {
            serial,
            mac_type: MacType::Computer,
            mac,
            call: 0,
            opentsp: 0,
            operator,
            easyset: false,
            news: false,
            dataview: false,
            expires: 0,
        }
        .sign(&issuer)
    };
    let _a = site.admitted(51, 3, OPERATOR, &[]).await;
    let _b = site.admitted(52, 3, OPERATOR, &[]).await;
    let err = site
        .relay
        .register_licence(&licence(7, 9, [2, 0, 0, 0, 0, 8]))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the licensed MAC 02:00:00:00:00:08 is not one of this host's"
    );
    assert_eq!(
        site.app(53, 3, OPERATOR, &[]).await.1.result,
        2,
        "a refused key changes nothing"
    );
    let p = site
        .relay
        .register_licence(&licence(8, 3, [2, 0, 0, 0, 0, 7]))
        .unwrap();
    assert_eq!(p.serial, 8);
    assert_eq!(site.app(54, 3, OPERATOR, &[]).await.1.result, 0);
    // Calls are not in this licence (the trial no longer governs): refused as not licensed.
    assert_eq!(site.app(55, 3, CALL, &[]).await.1.result, 1);
    assert!(site
        .notices()
        .contains(&"Licence 8 is in force: Call 0, OpenTSP 0, Operator 3".to_string()));
}

/// A key written to the state file (as `relay license change` does with no relay to ask)
/// that is bound to a switch the relay does not have never replaces the licence in force:
/// it waits (checked every second, so it takes over once its switch is connected) and says
/// so once.
#[tokio::test]
async fn a_switch_bound_key_in_the_state_file_waits_for_its_switch() {
    let (site, issuer) = site_with_issuer().await;
    let licence = |serial, mac_type, mac: [u8; 6]| {
        Payload {
            serial,
            mac_type,
            mac,
            call: 0,
            opentsp: 0,
            operator: 4,
            easyset: false,
            news: false,
            dataview: false,
            expires: 0,
        }
        .sign(&issuer)
    };
    site.relay
        .register_licence(&licence(8, MacType::Computer, [2, 0, 0, 0, 0, 7]))
        .unwrap();
    let foreign = [2, 0, 0x5A, 0, 0, 0x99];
    relay::licensing::store::write(site.state_dir.path(), &licence(9, MacType::Switch, foreign))
        .unwrap();
    site.wait_notice(
        "Licence 9 is bound to switch MAC 02:00:5A:00:00:99, which is not connected: the licence \
         in force stays until that switch connects",
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let in_force = site.relay.licensing().registered.load_full().unwrap();
    assert_eq!(in_force.payload.serial, 8);
    let waits = site
        .notices()
        .iter()
        .filter(|n| n.starts_with("Licence 9 "))
        .count();
    assert_eq!(waits, 1, "said once: {:#?}", site.notices());
    assert_eq!(site.app(51, 3, OPERATOR, &[]).await.1.result, 0);
}
