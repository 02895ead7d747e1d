//! `relay license …` as an operator and an issuer use it.

use std::path::Path;
use std::process::Command;

fn relay(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn write_config(dir: &Path, public_key: &str) -> String {
    let path = dir.join("relay.yaml");
    std::fs::write(
        &path,
        format!(
            "license: {{ issuer_keys: [\"{public_key}\"], host_macs: [\"02:00:00:00:00:01\"] }}\nstate_dir: {}\n",
            dir.join("state").display()
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn keygen_issue_register_and_show() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("issuer.key");
    let key_path = key_file.to_str().unwrap();

    let (ok, out, _) = relay(&["license", "keygen", "--out", key_path]);
    assert!(ok);
    let public = out.lines().last().unwrap().to_owned();
    assert_eq!(public.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the private key is readable by its owner only"
        );
    }
    let (ok, _, err) = relay(&["license", "keygen", "--out", key_path]);
    assert!(!ok, "an existing key file is never overwritten");
    assert!(err.contains("it must not exist yet"), "{err}");

    let config = write_config(dir.path(), &public);
    let (ok, out, _) = relay(&["license", "show", "--config", &config]);
    assert!(ok);
    assert!(out.starts_with("Licence number:  none registered\nIn force:        trial, day 1 of 30 (30 days left)\n"), "{out}");
    assert!(
        out.contains("Call (CallPlus counts as Call)   20       -\n"),
        "{out}"
    );

    let (ok, key, err) = relay(&[
        "license",
        "issue",
        "--signing-key",
        key_path,
        "--mac-type",
        "computer",
        "--mac",
        "02:00:00:00:00:01",
        "--call",
        "50",
        "--opentsp",
        "5",
        "--operator",
        "3",
        "--easyset",
        "--expires",
        "2099-12-31",
        "--serial",
        "1001",
    ]);
    assert!(ok, "{err}");
    let key = key.trim();
    assert_eq!(key.len(), 161);

    let (ok, out, _) = relay(&["license", "register", key, "--config", &config]);
    assert!(ok);
    assert_eq!(
        out,
        "Licence 1001 registered: Call 50, OpenTSP 5, Operator 3, EasySet.\nA running relay applies it within 2 seconds.\n"
    );
    let (ok, out, _) = relay(&["license", "show", "--config", &config]);
    assert!(ok);
    assert!(
        out.starts_with(
            "Licence number:  1001\nLicence type:    1 (standard)\nMAC type:        computer\nAllowed MAC:     02:00:00:00:00:01\nExpires:         2099-12-31\nIn force:        licensed\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("Operator                         3        -\n"),
        "{out}"
    );

    // A forged key (last character changed) is refused and the registered one stays.
    let mut forged = key.to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let (ok, _, err) = relay(&["license", "change", &forged, "--config", &config]);
    assert!(!ok);
    assert_eq!(
        err,
        "error: the key is not signed by a configured issuer (unknown issuer or bad signature)\n"
    );
    let (_, out, _) = relay(&["license", "show", "--config", &config]);
    assert!(out.starts_with("Licence number:  1001\n"));
}

#[test]
fn show_after_the_trial_with_no_licence() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &"0".repeat(64));
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    // A trial that started 40 days ago.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    std::fs::write(
        dir.path().join("state").join("trial-start"),
        format!("{}\n", now_ms - 40 * 86_400_000),
    )
    .unwrap();
    let (ok, out, _) = relay(&["license", "show", "--config", &config]);
    assert!(ok);
    assert!(out.contains("In force:        trial expired and no valid licence: licensed products are refused (result 3)\n"), "{out}");
    assert!(out.contains("30 day(s) used, 0 left"), "{out}");
    assert!(
        out.contains("Call (CallPlus counts as Call)   0        -\n"),
        "{out}"
    );
}

/// What a running relay publishes each second, with the switches connected to it.
fn running_relay_status(dir: &Path, switch_macs: &[&str]) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let status = relay::licensing::LicenceStatus {
        at_ms: now_ms,
        standing: "licensed".into(),
        serial: Some(1001),
        mac_type: Some("computer".into()),
        allowed_mac: Some("02:00:00:00:00:01".into()),
        expires: None,
        trial_started: "2026-11-01".into(),
        trial_days_used: 1,
        trial_days_left: 29,
        products: Vec::new(),
        access_limit: 0,
        licensed_in_use: 0,
        bypass: Vec::new(),
        switch_macs: switch_macs.iter().map(|m| m.to_string()).collect(),
    };
    std::fs::write(
        dir.join("state").join(relay::licensing::STATUS_FILE),
        serde_yaml::to_string(&status).unwrap(),
    )
    .unwrap();
}

/// Issues a key with `relay license issue`.
fn issue(signing_key: &str, mac_type: &str, mac: &str, serial: &str) -> String {
    let (ok, key, err) = relay(&[
        "license",
        "issue",
        "--signing-key",
        signing_key,
        "--mac-type",
        mac_type,
        "--mac",
        mac,
        "--call",
        "5",
        "--serial",
        serial,
    ]);
    assert!(ok, "{err}");
    key.trim().to_owned()
}

/// docs/behaviour.md §5: an invalid key is refused and the old state stays. A key bound to a switch the
/// running relay does not have is refused as the admin interface refuses it; with no relay
/// running it is kept beside the licence in force, which stays until that switch connects.
#[test]
fn a_key_for_a_switch_that_is_not_connected_never_replaces_a_working_licence() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("issuer.key");
    let key_path = key_file.to_str().unwrap();
    let (ok, out, _) = relay(&["license", "keygen", "--out", key_path]);
    assert!(ok);
    let config = write_config(dir.path(), out.lines().last().unwrap());
    let working = issue(key_path, "computer", "02:00:00:00:00:01", "1001");
    let (ok, _, err) = relay(&["license", "register", &working, "--config", &config]);
    assert!(ok, "{err}");
    let foreign = issue(key_path, "switch", "02:00:5A:00:00:99", "1002");

    running_relay_status(dir.path(), &["02:00:5A:00:00:01"]);
    let (ok, _, err) = relay(&["license", "change", &foreign, "--config", &config]);
    assert!(!ok);
    assert_eq!(
        err,
        "error: the licensed MAC 02:00:5A:00:00:99 is not that of a connected switch of the \
         running relay: the key is refused and the licence in force stays\n"
    );
    let state = dir.path().join("state");
    let on_disk = std::fs::read_to_string(state.join("license.key")).unwrap();
    assert_eq!(on_disk.trim(), working);

    // No relay running: written, with the working key kept in force until the switch is seen.
    std::fs::remove_file(state.join(relay::licensing::STATUS_FILE)).unwrap();
    let (ok, out, err) = relay(&["license", "change", &foreign, "--config", &config]);
    assert!(ok, "{err}");
    assert!(
        out.ends_with(
            "It is bound to switch MAC 02:00:5A:00:00:99. No relay is running, so that can only be \
             checked once the relay has connected that switch: until then the licence registered \
             now stays in force (a notification says so).\nA running relay applies it within 2 \
             seconds.\n"
        ),
        "{out}"
    );
    let previous = std::fs::read_to_string(state.join("license.previous.key")).unwrap();
    assert_eq!(previous.trim(), working);
    let licensing = relay::licensing::Licensing::open(&state, 0).unwrap();
    let in_force = licensing.registered.load_full().unwrap();
    assert_eq!(
        in_force.payload.serial, 1001,
        "the working licence is what a start loads"
    );
}

/// With a relay running, `relay license` asks it: a key bound to a switch that connected a
/// moment ago is registered at once, although the status file (rewritten each second) may not
/// name that switch yet.
#[test]
fn a_key_for_a_switch_connected_a_moment_ago_is_registered_by_the_running_relay() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let switch = runtime
        .block_on(switch_sim::SimSwitch::start(
            "127.0.0.1:0".parse().unwrap(),
            switch_sim::Settings::officeserv(0x42),
        ))
        .unwrap();
    let issuer_dir = tempfile::tempdir().unwrap();
    let key_file = issuer_dir.path().join("issuer.key");
    let key_path = key_file.to_str().unwrap();
    let (ok, out, _) = relay(&["license", "keygen", "--out", key_path]);
    assert!(ok);
    let public = out.lines().last().unwrap().to_owned();
    let key = issue(key_path, "switch", "00:00:F0:5A:00:42", "2001");

    let process = testkit::process::RelayProcess::start_with(
        Path::new(env!("CARGO_BIN_EXE_relay")),
        switch.addr(),
        0,
        &format!("license: {{ issuer_keys: [\"{public}\"] }}\n"),
    )
    .unwrap();
    runtime.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(20), switch.wait_opened(1))
            .await
            .expect("the relay opened the link")
    });
    // The relay has read the MAC reply a moment after the switch saw its query.
    std::thread::sleep(std::time::Duration::from_millis(300));

    let out = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["license", "register", &key, "--config", "relay.yaml"])
        .current_dir(process.dir())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(
        out.status.success(),
        "{stderr}\nrelay: {}",
        process.output()
    );
    assert_eq!(
        stdout,
        "Licence 2001 registered: Call 5, OpenTSP 0, Operator 0.\nThe running relay checked it and has it in force now.\n"
    );
    let saved = std::fs::read_to_string(process.dir().join("state/license.key")).unwrap();
    assert_eq!(saved.trim(), key);
}
