//! `relay check`: every error in a configuration file, or a one-line summary.

use std::process::Command;

/// `relay check --config path`, run to its end.
fn relay_check(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn relay_check_prints_every_error_and_fails() {
    let dir = std::env::temp_dir().join(format!("relay-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "default_switch: 3\nswitches: [ { no: 1, address: a }, { no: 9, address: a } ]\n",
    )
    .unwrap();
    let out = relay_check(&bad);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "error: the configuration file {} breaks 3 rule(s):\n  - switches[1].no: 9 is out of range: use 1..=8\n  - switches[1].address: a: address already assigned to switch 1\n  - default_switch: 3 is not a configured switch\n",
            bad.display()
        )
    );

    let good = dir.join("good.yaml");
    std::fs::write(&good, "switches: [ { no: 1, address: 10.0.0.1 } ]\n").unwrap();
    let out = relay_check(&good);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}: valid (1 switch(es), 0 user(s))\n", good.display())
    );

    let missing = dir.join("missing.yaml");
    let out = relay_check(&missing);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().starts_with(&format!(
        "error: cannot read the configuration file {}:",
        missing.display()
    )));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Unreadable files and broken rules are listed together, each file on its own line.
#[test]
fn relay_check_lists_every_unusable_file_with_the_broken_rules() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.yaml");
    let d = dir.path().display();
    std::fs::write(dir.path().join("not-a-key.pem"), "no key here\n").unwrap();
    std::fs::write(
        &config,
        format!(
            "default_switch: 3\n\
             switches: [ {{ no: 1, address: 10.0.0.1, tls_ca: {d}/switch-ca.pem }} ]\n\
             tls: {{ ports: [client], cert: {d}/relay.pem, key: {d}/not-a-key.pem, client_ca: {d}/clients.pem }}\n"
        ),
    )
    .unwrap();
    let out = relay_check(&config);
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "error: the configuration file {d}/relay.yaml breaks 5 rule(s):\n\
             \x20 - default_switch: 3 is not a configured switch\n\
             \x20 - tls.cert: cannot read {d}/relay.pem: No such file or directory (os error 2)\n\
             \x20 - tls.key: {d}/not-a-key.pem holds no private key (a PEM PKCS#8, PKCS#1 or SEC1 key)\n\
             \x20 - tls.client_ca: cannot read {d}/clients.pem: No such file or directory (os error 2)\n\
             \x20 - switches[0].tls_ca: cannot read {d}/switch-ca.pem: No such file or directory (os error 2)\n"
        )
    );
}
