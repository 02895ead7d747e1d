//! SPEC §5 over real TCP: use is given back however a session ends; the trial start survives
//! restarts and a deleted licence; registration in the running relay.

use integration_tests::*;
use relay::licensing::key::{MacType, Payload};

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

#[tokio::test]
async fn a_licence_registered_in_the_running_relay_applies_to_the_next_identify() {
    let issuer = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let public = data_encoding::HEXLOWER.encode(issuer.verifying_key().as_bytes());
    let site = SiteSpec::switches(1)
        .configure(move |c| {
            c.license.issuer_keys = vec![public];
            c.license.host_macs = Some(vec!["02:00:00:00:00:07".into()]);
        })
        .start()
        .await;
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
