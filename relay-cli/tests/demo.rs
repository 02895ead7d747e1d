//! `relay demo` runs the relay with simulated switches and applications, and stops by itself.

use std::process::Command;

#[test]
fn the_demo_connects_both_switches_serves_its_applications_and_stops_by_itself() {
    let out = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args([
            "demo",
            "--for",
            "3s",
            "--client-port",
            "16000",
            "--switch-port",
            "15002",
            "--admin-port",
            "0",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.rsplit("CTI relay demo:").next().unwrap();
    for expected in [
        "applications connect to 127.0.0.1:16000 (bypass 16500)",
        "Web console: http://127.0.0.1:",
        "Switches (2 configured, 2 enabled, 2 connected)",
        "127.0.1.1:15002",
        "[Call: 2201 - SW(1)]",
        "[Operator: 2205 - SW(1), 2205 - SW(2)]",
        "[ACD]",
        "Licence: trial, day 1 of 30; Call 1/20, OpenTSP 0/1, Operator 1/2; licensed sessions 2/23; bypass ACD 1/1",
        "All services are running",
    ] {
        assert!(
            last.contains(expected),
            "missing {expected:?} in the last view:\n{last}"
        );
    }
    assert_eq!(last.matches("identified").count(), 3, "{last}");
}
