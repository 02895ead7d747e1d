//! The three servers as processes on loopback, how a subscriber joins each, and how the
//! publisher reaches each.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use switch_sim::{Settings, SimSwitch};
use testkit::process::{free_port, RelayProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wire::{DeviceRef, LinkMsg, Product, Str8};

use crate::framing::{Parsed, System, TOPIC};

pub struct Server {
    pub system: System,
    process: Process,
    /// Where subscribers connect.
    addr: SocketAddr,
    publisher: Publisher,
}

enum Process {
    Relay(RelayProcess),
    /// A peer server, with the directory it runs and logs in.
    Peer(Child, tempfile::TempDir),
}

enum Publisher {
    /// The relay's switch: a simulated switch in this process.
    Switch(SimSwitch),
    /// A client connection of the server (its replies are read and dropped).
    Client(tokio::net::tcp::OwnedWriteHalf),
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
        let port = free_port("127.0.0.1", false);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let (process, publisher, addr) = match system {
            System::Relay => {
                let switch =
                    SimSwitch::start("127.0.1.20:0".parse()?, Settings::officeserv(20)).await?;
                let bin = std::env::current_exe()?.with_file_name("relay");
                if !bin.exists() {
                    bail!(
                        "{} is missing: build it with cargo build --release -p relay-cli",
                        bin.display()
                    );
                }
                let relay = RelayProcess::start(&bin, switch.addr(), 5000)?;
                let bypass = relay.bypass;
                (Process::Relay(relay), Publisher::Switch(switch), bypass)
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
                let child = Process::Peer(spawn("redis-server", &args, dir.path())?, dir);
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
                let child = Process::Peer(spawn("nats-server", &args, dir.path())?, dir);
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
        };
        if system == System::Relay {
            // Serving once the switch link is up: an identify is accepted.
            let deadline = Instant::now() + Duration::from_secs(20);
            while server.subscriber().await.is_err() {
                if Instant::now() > deadline {
                    let output = match &server.process {
                        Process::Relay(relay) => relay.output(),
                        Process::Peer(..) => String::new(),
                    };
                    bail!("the relay did not serve its switch within 20 s; its output:\n{output}");
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
                    resume: None,
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
            // Written from this task, as the peers' publishers write theirs: the send time
            // in the payload is taken just before this write, for every system.
            Publisher::Switch(switch) => {
                if !switch.send_now(batch).await {
                    bail!("the relay's switch link is down");
                }
            }
            Publisher::Client(wr) => wr.write_all(&batch).await?,
        }
        Ok(())
    }

    pub fn stop(self) {
        if let Process::Peer(mut child, _dir) = self.process {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A relay process is killed when dropped.
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
