//! `relay check`: every error in a configuration file, or a one-line summary.

use std::process::Command;

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
    let out = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
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
    let out = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{}: valid (1 switch(es), 0 user(s))\n", good.display())
    );

    let missing = dir.join("missing.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["check", "--config"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr).unwrap().starts_with(&format!(
        "error: cannot read the configuration file {}:",
        missing.display()
    )));
    std::fs::remove_dir_all(&dir).unwrap();
}
