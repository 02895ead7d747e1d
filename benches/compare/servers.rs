//! The three servers as processes on loopback, how a subscriber joins each, and how the
//! publisher reaches each.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use switch_sim::{Settings, SimSwitch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wire::{DeviceRef, LinkMsg, Product, Str8};

use crate::framing::{Parsed, System, TOPIC};

pub struct Server {
    pub system: System,
    process: Child,
    /// Where subscribers connect.
    addr: SocketAddr,
    publisher: Publisher,
    _dir: tempfile::TempDir,
}

enum Publisher {
    /// The relay's switch: a simulated switch in this process.
    Switch(SimSwitch),
    /// A client connection of the server (its replies are read and dropped).
    Client(tokio::net::tcp::OwnedWriteHalf),
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn spawn(program: &str, args: &[String], dir: &std::path::Path) -> anyhow::Result<Child> {
    let log = std::fs::File::create(dir.join("server.log"))?;
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .spawn()
        .with_context(|| format!("cannot run {program}: install it (Debian: apt-get install redis-server nats-server) or leave it out with --systems"))
}

async fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) if Instant::now() > deadline => {
                return Err(e).with_context(|| format!("nothing listens on {addr} after 20 s"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Reads from `stream` into `buf` until `done` says the front of `buf` is the awaited reply;
/// returns what follows it.
async fn read_until(
    system: System,
    stream: &mut TcpStream,
    mut buf: BytesMut,
    done: impl Fn(&[u8]) -> bool,
) -> anyhow::Result<BytesMut> {
    loop {
        while let Parsed::Other { len, .. } = system.parse(&buf) {
            let front = buf.split_to(len);
            if done(&front) {
                return Ok(buf);
            }
        }
        if stream.read_buf(&mut buf).await? == 0 {
            bail!("{system} closed a subscriber before it was subscribed");
        }
    }
}

impl Server {
    pub async fn start(system: System) -> anyhow::Result<Server> {
        let dir = tempfile::tempdir()?;
        let port = free_port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let (process, publisher, addr) = match system {
            System::Relay => {
                let switch =
                    SimSwitch::start("127.0.1.20:0".parse()?, Settings::officeserv(20)).await?;
                let client_port = loop {
                    let p = free_port();
                    if p <= 65035 && TcpListener::bind(("127.0.0.1", p + 500)).is_ok() {
                        break p;
                    }
                };
                let config = format!(
                    "listen: {{ address: 127.0.0.1, client_port: {client_port} }}\n\
                     switches:\n  - {{ no: 1, address: {}, port: {}, easyset_password: \"1234\" }}\n\
                     bypass_limits: {{ other: 5000 }}\n\
                     monitor: {{ sw_port: {}, su_port: {} }}\n\
                     export: {{ port: {} }}\n\
                     admin: {{ address: 127.0.0.1, port: {} }}\n\
                     state_dir: state\nlog_dir: log\n",
                    switch.addr().ip(),
                    switch.addr().port(),
                    free_port(),
                    free_port(),
                    free_port(),
                    free_port(),
                );
                std::fs::write(dir.path().join("relay.yaml"), config)?;
                let relay = std::env::current_exe()?.with_file_name("relay");
                if !relay.exists() {
                    bail!(
                        "{} is missing: build it with cargo build --release -p relay-cli",
                        relay.display()
                    );
                }
                let args = ["run".to_string(), "--config".into(), "relay.yaml".into()];
                let child = spawn(relay.to_str().unwrap_or("relay"), &args, dir.path())?;
                (
                    child,
                    Publisher::Switch(switch),
                    SocketAddr::from(([127, 0, 0, 1], client_port + 500)),
                )
            }
            System::Redis => {
                let args: Vec<String> = [
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--protected-mode",
                    "no",
                    "--client-output-buffer-limit",
                    "pubsub 0 0 0",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect();
                let child = spawn("redis-server", &args, dir.path())?;
                let (mut rd, wr) = connect(addr).await?.into_split();
                tokio::spawn(async move {
                    let mut sink = vec![0u8; 64 * 1024];
                    while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
                });
                (child, Publisher::Client(wr), addr)
            }
            System::Nats => {
                let args: Vec<String> = ["-a", "127.0.0.1", "-p", &port.to_string()]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                let child = spawn("nats-server", &args, dir.path())?;
                let mut stream = connect(addr).await?;
                let rest = nats_hello(&mut stream).await?;
                drop(rest);
                let (mut rd, wr) = stream.into_split();
                tokio::spawn(async move {
                    let mut sink = vec![0u8; 64 * 1024];
                    while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
                });
                (child, Publisher::Client(wr), addr)
            }
        };
        let server = Server {
            system,
            process,
            addr,
            publisher,
            _dir: dir,
        };
        if system == System::Relay {
            // Serving once the switch link is up: an identify is accepted.
            let deadline = Instant::now() + Duration::from_secs(20);
            while server.subscriber().await.is_err() {
                if Instant::now() > deadline {
                    let log = std::fs::read_to_string(server._dir.path().join("server.log"))
                        .unwrap_or_default();
                    bail!("the relay did not serve its switch within 20 s; its output:\n{log}");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(server)
    }

    /// A subscribed connection and what it has already read past the confirmation.
    pub async fn subscriber(&self) -> anyhow::Result<(TcpStream, BytesMut)> {
        let mut stream = connect(self.addr).await?;
        let rest = match self.system {
            System::Relay => {
                let identify = LinkMsg::Identify {
                    protocol: 2,
                    product: Product::OtherServer as u8,
                    app_name: Str8::lossy("compare"),
                    devices: Vec::<DeviceRef>::new(),
                };
                stream.write_all(&identify.encode()?).await?;
                let mut buf = BytesMut::new();
                loop {
                    if buf.len() >= 2 {
                        let len = u16::from_be_bytes([buf[0], buf[1]]) as usize + 2;
                        if buf.len() >= len {
                            if buf[2..4] != *b"Li" || buf[6] != 0 {
                                bail!("the relay refused the subscriber: {:?}", &buf[..len]);
                            }
                            let _ = buf.split_to(len);
                            break buf;
                        }
                    }
                    if stream.read_buf(&mut buf).await? == 0 {
                        bail!("the relay closed a subscriber before admitting it");
                    }
                }
            }
            System::Redis => {
                stream
                    .write_all(format!("SUBSCRIBE {TOPIC}\r\n").as_bytes())
                    .await?;
                read_until(System::Redis, &mut stream, BytesMut::new(), |f| {
                    f.windows(9).any(|w| w == b"subscribe")
                })
                .await?
            }
            System::Nats => {
                let rest = nats_hello(&mut stream).await?;
                stream
                    .write_all(format!("SUB {TOPIC} 1\r\nPING\r\n").as_bytes())
                    .await?;
                read_until(System::Nats, &mut stream, rest, |f| f == b"PONG\r\n").await?
            }
        };
        Ok((stream, rest))
    }

    pub async fn publish(&mut self, batch: Bytes) -> anyhow::Result<()> {
        match &mut self.publisher {
            Publisher::Switch(switch) => {
                if !switch.send_raw(batch) {
                    bail!("the relay's switch link is down");
                }
            }
            Publisher::Client(wr) => wr.write_all(&batch).await?,
        }
        Ok(())
    }

    pub fn stop(mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Reads NATS's `INFO` and sends `CONNECT` (no acknowledgements, no echo).
async fn nats_hello(stream: &mut TcpStream) -> anyhow::Result<BytesMut> {
    let rest = read_until(System::Nats, stream, BytesMut::new(), |f| {
        f.starts_with(b"INFO ")
    })
    .await?;
    stream
        .write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":false}\r\n")
        .await?;
    Ok(rest)
}
