//! A `nats-server` process on loopback for tests of the bus, stopped when dropped.
//!
//! Tests that need it call [`binary`] first: where the server is not installed they are
//! reported ignored with the reason, except under CI (`CI` set), where they fail.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;

/// The `nats-server` binary (`RELAY_NATS_SERVER`, else the Debian package's), or why not.
pub fn binary() -> Result<PathBuf, String> {
    let path = std::env::var_os("RELAY_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"));
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "nats-server is not installed at {} (apt-get install nats-server, or set RELAY_NATS_SERVER)",
            path.display()
        ))
    }
}

/// A running server.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    /// JetStream's store, when it is on.
    _store: Option<tempfile::TempDir>,
}

impl NatsServer {
    /// Starts a server on a free loopback port and waits until it accepts connections.
    pub fn start() -> NatsServer {
        let port = free_port("127.0.0.1", false);
        NatsServer::start_on(port)
    }

    /// Starts a server on `port` (again, after [`NatsServer::stop`], for a server that comes
    /// back).
    pub fn start_on(port: u16) -> NatsServer {
        NatsServer::spawn(port, None)
    }

    /// Starts a server with JetStream (the key-value store the lease lives in).
    pub fn start_jetstream() -> NatsServer {
        let store = tempfile::tempdir().expect("a store directory");
        NatsServer::spawn(free_port("127.0.0.1", false), Some(store))
    }

    fn spawn(port: u16, store: Option<tempfile::TempDir>) -> NatsServer {
        let binary = binary().expect("nats-server");
        let mut args = vec![
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
        ];
        if let Some(dir) = &store {
            args.extend([
                "-js".to_owned(),
                "-sd".to_owned(),
                dir.path().display().to_string(),
            ]);
        }
        let child = Command::new(binary)
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        let until = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < until,
                "nats-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        NatsServer {
            child,
            port,
            _store: store,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
