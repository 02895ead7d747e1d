//! The relay as its own process (`relay run`), for the tests and benches that need its own
//! memory, file descriptors or a kill: free loopback ports, and a one-switch relay started in
//! a temporary directory with its output kept there.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A port free on `ip` now, usable as a client port (1025..=65035), with `port + 500` free too
/// when `with_bypass`.
pub fn free_port(ip: &str, with_bypass: bool) -> u16 {
    for _ in 0..100 {
        let port = TcpListener::bind((ip, 0))
            .and_then(|l| l.local_addr())
            .expect("a loopback address to bind")
            .port();
        if (1025..=65035).contains(&port)
            && (!with_bypass || TcpListener::bind((ip, port + 500)).is_ok())
        {
            return port;
        }
    }
    panic!("no free port on {ip} after 100 tries");
}

/// `n` free ports on `ip`, all different and none in `avoid`: each is held while the next is
/// found (ports found one after another may be the same one, freed and handed out again).
pub fn free_ports(ip: &str, n: usize, avoid: &[u16]) -> Vec<u16> {
    let mut held = Vec::new();
    for _ in 0..(n + 100) {
        if held.len() == n {
            break;
        }
        let listener = TcpListener::bind((ip, 0)).expect("a loopback address to bind");
        let port = listener.local_addr().expect("a bound address").port();
        if !avoid.contains(&port) {
            held.push((port, listener));
        }
    }
    assert_eq!(held.len(), n, "{n} free ports on {ip}");
    held.into_iter().map(|(port, _)| port).collect()
}

/// A `relay run` process serving one switch on loopback; killed (SIGKILL) when dropped.
pub struct RelayProcess {
    child: Child,
    dir: tempfile::TempDir,
    /// The licensed client port.
    pub client: SocketAddr,
    /// The bypass port.
    pub bypass: SocketAddr,
    /// The admin interface.
    pub admin: SocketAddr,
}

impl RelayProcess {
    /// Starts `bin` on a configuration of its own: the switch at `switch` (EasySet password
    /// "1234", as the simulator's default), room for `bypass_other` "other server" sessions on
    /// the bypass port, every other port free on 127.0.0.1. Returns once the process runs, not
    /// once its link is up.
    pub fn start(bin: &Path, switch: SocketAddr, bypass_other: u32) -> std::io::Result<Self> {
        RelayProcess::start_with(bin, switch, bypass_other, "")
    }

    /// As [`RelayProcess::start`], with `extra` (whole top-level YAML lines, such as a `bus`
    /// section) added to the configuration.
    pub fn start_with(
        bin: &Path,
        switch: SocketAddr,
        bypass_other: u32,
        extra: &str,
    ) -> std::io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let client_port = free_port("127.0.0.1", true);
        let [admin_port, sw_port, su_port, export_port] =
            free_ports("127.0.0.1", 4, &[client_port, client_port + 500])[..]
        else {
            unreachable!("four ports asked for")
        };
        let config = format!(
            "listen: {{ address: 127.0.0.1, client_port: {client_port} }}\n\
             switches:\n  - {{ no: 1, address: {}, port: {}, easyset_password: \"1234\" }}\n\
             bypass_limits: {{ other: {bypass_other} }}\n\
             monitor: {{ sw_port: {}, su_port: {} }}\n\
             export: {{ port: {} }}\n\
             admin: {{ address: 127.0.0.1, port: {} }}\n\
             state_dir: state\nlog_dir: log\n",
            switch.ip(),
            switch.port(),
            sw_port,
            su_port,
            export_port,
            admin_port,
        );
        std::fs::write(dir.path().join("relay.yaml"), config + extra)?;
        let out = std::fs::File::create(dir.path().join("relay.out"))?;
        let child = Command::new(bin)
            .args(["run", "--config", "relay.yaml"])
            .current_dir(dir.path())
            .stdout(Stdio::from(out.try_clone()?))
            .stderr(Stdio::from(out))
            .spawn()?;
        Ok(RelayProcess {
            child,
            dir,
            client: SocketAddr::from(([127, 0, 0, 1], client_port)),
            bypass: SocketAddr::from(([127, 0, 0, 1], client_port + 500)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin_port)),
        })
    }

    /// The directory it runs in: `relay.yaml`, `state/`, `log/`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the relay has written to its standard output and error so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("relay.out")).unwrap_or_default()
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `relay` binary of this workspace, built first (debug profile) so a test that runs it
/// as a process tests the code it was built with.
pub fn relay_binary() -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "--bin", "relay", "-p", "relay-cli"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the relay failed");
    let mut dir = std::env::current_exe().expect("the test's path");
    dir.pop();
    dir.pop();
    dir.join("relay")
}
