//! End to end: the `switch-sim`, `relay` and `client-sim` binaries as separate processes over
//! loopback TCP, with applications on different 127.0.0.x addresses.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use testkit::process::{free_port, free_ports};

/// Builds the three binaries (Cargo only builds a test's own package's binaries for it).
fn binaries() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-q",
            "--bins",
            "-p",
            "relay-cli",
            "-p",
            "switch-sim",
            "-p",
            "client-sim",
        ])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the binaries failed");
    let mut dir = std::env::current_exe().unwrap();
    dir.pop(); // deps
    dir.pop(); // debug
    dir
}

/// Kills the child on drop, so a failed assertion leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client_sim(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin.join("client-sim"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn three_processes_route_by_address_and_carry_traffic() {
    let bin = binaries();
    let dir = std::env::temp_dir().join(format!("relay-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let sw1_port = free_port("127.0.1.21", false);
    let sw2_port = free_port("127.0.1.22", false);
    let _sw1 = Running(
        Command::new(bin.join("switch-sim"))
            .args([
                "--listen",
                &format!("127.0.1.21:{sw1_port}"),
                "--load-rate",
                "500",
                "--mac",
                "00:00:F0:5A:00:15",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _sw2 = Running(
        Command::new(bin.join("switch-sim"))
            .args([
                "--listen",
                &format!("127.0.1.22:{sw2_port}"),
                "--keysets",
                "3201-3232",
                "--load-rate",
                "500",
                "--load-device",
                "3201",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let client_port = free_port("127.0.0.1", true);
    let config = dir.join("relay.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: {{ address: 127.0.0.1, client_port: {client_port} }}
switches:
  - {{ no: 1, address: 127.0.1.21, port: {sw1_port}, easyset_password: \"1234\" }}
  - {{ no: 2, address: 127.0.1.22, port: {sw2_port}, easyset_password: \"1234\" }}
users:
  - {{ ip: 127.0.0.51, default_switch: 1 }}
  - {{ ip: 127.0.0.52, default_switch: 2 }}
monitor: {{ sw_port: null, su_port: null }}
export: {{ port: null }}
admin: {{ port: {admin} }}
state_dir: {state}
",
            admin = free_ports("127.0.0.1", 1, &[client_port, client_port + 500])[0],
            state = dir.join("state").display()
        ),
    )
    .unwrap();
    // The switches may not be listening yet; the relay redials after 5 s if so.
    std::thread::sleep(Duration::from_millis(300));
    let mut relay = Running(
        Command::new(bin.join("relay"))
            .args(["run", "--config"])
            .arg(&config)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stderr = relay.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    while !log
        .iter()
        .any(|l: &String| l.contains("All services are running"))
    {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!(
                    "the relay did not connect both switches:\n{}",
                    log.join("\n")
                )
            });
        log.push(line);
    }

    let relay_addr = format!("127.0.0.1:{client_port}");
    // 127.0.0.51 is served switch 1 (keysets 22xx); 127.0.0.52 switch 2 (keysets 32xx).
    let a = client_sim(
        &bin,
        &[
            "--relay",
            &relay_addr,
            "--source",
            "127.0.0.51",
            "--protocol",
            "2",
            "--request",
            "0:K:2201,2202",
            "--request",
            "0:K:3201,3202",
            "--for",
            "3s",
        ],
    );
    let a = String::from_utf8_lossy(&a.stdout);
    let answers: Vec<&str> = a.lines().filter(|l| l.starts_with("Answer")).collect();
    assert_eq!(
        answers,
        [
            "Answer 'K' invoke=1 body=\\x00",
            "Answer 'K' invoke=2 body=\\x01"
        ],
        "{a}"
    );
    assert!(
        a.contains("Event 'n' body=\\x042202\\x00\\x01\\x042201"),
        "{a}"
    );

    let b = client_sim(
        &bin,
        &[
            "--relay",
            &relay_addr,
            "--source",
            "127.0.0.52",
            "--protocol",
            "2",
            "--request",
            "0:K:3201,3202",
            "--for",
            "2s",
        ],
    );
    let b = String::from_utf8_lossy(&b.stdout);
    assert!(
        b.lines().any(|l| l == "Answer 'K' invoke=1 body=\\x00"),
        "{b}"
    );

    // An unregistered protocol-3 load client gets both switches' load events.
    let c = client_sim(
        &bin,
        &[
            "--relay",
            &relay_addr,
            "--source",
            "127.0.0.60",
            "--load",
            "3",
            "--for",
            "3s",
        ],
    );
    let c = String::from_utf8_lossy(&c.stdout);
    let total = c
        .lines()
        .find(|l| l.starts_with("total: "))
        .unwrap_or_else(|| panic!("{c}"));
    let events: u64 = total["total: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // 2 switches × 500 events/s × 3 sessions for about 2 s of reporting.
    assert!(events > 3_000, "{c}");

    // A product on the wrong port is refused with a readable reason.
    let d = client_sim(
        &bin,
        &[
            "--relay",
            &format!("127.0.0.1:{}", client_port + 500),
            "--product",
            "call",
            "--for",
            "2s",
        ],
    );
    assert!(!d.status.success());
    assert_eq!(
        String::from_utf8_lossy(&d.stderr).trim(),
        "error: identify refused with result 7 (product does not belong on this port)"
    );

    let pid = relay.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = relay.0.wait().unwrap();
    assert!(status.success(), "relay exit: {status:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `log.format: json`: every line `relay run` writes to standard error is one JSON object with
/// the time, level, target and message, and a switch's notifications carry the switch.
#[tokio::test]
async fn relay_run_logs_one_json_object_a_line() {
    let switch = switch_sim::SimSwitch::start(
        "127.0.1.96:0".parse().unwrap(),
        switch_sim::Settings::officeserv(1),
    )
    .await
    .unwrap();
    let relay = testkit::process::RelayProcess::start_with(
        &testkit::process::relay_binary(),
        switch.addr(),
        0,
        "log: { format: json }\n",
    )
    .unwrap();
    testkit::wait_until_for("switch 1 up", Duration::from_secs(20), || {
        relay
            .output()
            .contains("Switch connection success [switch 1")
    })
    .await;
    let output = relay.output();
    let lines: Vec<serde_json::Value> = output
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &lines {
        for key in ["timestamp", "level", "target"] {
            assert!(line[key].is_string(), "no {key}: {line}");
        }
        assert!(line["fields"]["message"].is_string(), "no message: {line}");
    }
    let connected = lines
        .iter()
        .find(|l| {
            l["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Switch connection success [switch 1,"))
        })
        .unwrap();
    assert_eq!(connected["level"], "INFO");
    assert_eq!(connected["fields"]["switch"], 1);
    assert_eq!(connected["target"], "relay::notify");
}
