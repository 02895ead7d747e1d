//! `relay man DIR` and `relay completions SHELL`: what the Debian package installs.

use std::process::Command;

fn relay(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn relay_man_writes_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = relay(&["man", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let mut pages: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    pages.sort();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(
            "{} manual pages written to {}\n",
            pages.len(),
            dir.path().display()
        )
    );
    for page in [
        "relay.1",
        "relay-run.1",
        "relay-ctl.1",
        "relay-ctl-lease-release.1",
    ] {
        assert!(pages.contains(&page.to_string()), "{page} not in {pages:?}");
    }
    assert!(!pages.iter().any(|p| p.contains("help")), "{pages:?}");
    let run = std::fs::read_to_string(dir.path().join("relay-run.1")).unwrap();
    assert!(run.starts_with(".ie \\n(.g .ds Aq \\(aq"), "{run}");
    assert!(run.contains(".TH relay-run 1"), "{run}");
    assert!(
        run.contains("Run the relay in the foreground until SIGINT or SIGTERM"),
        "{run}"
    );
}

#[test]
fn relay_completions_names_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = relay(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        for command in ["run", "demo", "ctl", "check", "license", "monitor"] {
            assert!(
                script.contains(command),
                "{shell}: no {command} in\n{script}"
            );
        }
    }
    let out = relay(&["completions", "tcsh"]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("invalid value 'tcsh'"));
}
