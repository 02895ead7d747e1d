//! `client-sim`: simulated CTI applications on real TCP, one verbose session or a load of many.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use client_sim::app::AppIdentity;
use client_sim::interactive::RequestSpec;
use client_sim::load::LoadOptions;
use client_sim::soak::RelayProcess;
use netseam::TcpNetwork;
use wire::Product;

#[derive(Parser)]
#[command(
    name = "client-sim",
    version,
    about = "Simulated CTI applications for the relay",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// The relay's client port; bypass products go to this port + 500.
    #[arg(long, default_value = "127.0.0.1:6000")]
    relay: SocketAddr,
    /// Source address to connect from (e.g. 127.0.0.51, to be a registered user).
    #[arg(long)]
    source: Option<IpAddr>,
    /// 2 (single switch) or 3 (multi-switch).
    #[arg(long, default_value_t = 3)]
    protocol: u8,
    /// call, callplus, operator, opentsp, easyset, dataview, news, acd, messenger,
    /// bypass-dataview, callpro, callsim or other.
    #[arg(long, default_value = "call")]
    product: String,
    /// Application name sent in identify.
    #[arg(long, default_value = "client-sim")]
    name: String,
    /// A device to watch, SWITCH:DEVICE (switch 0 = my default); repeatable.
    #[arg(long = "device")]
    devices: Vec<String>,
    /// A request to send after identify, SWITCH:CODE:FIELD,FIELD… (e.g. 1:K:2201,2202);
    /// repeatable, sent one per second.
    #[arg(long = "request")]
    requests: Vec<RequestSpec>,
    /// Ask for a resumable session and, whenever the connection ends, come back with its
    /// token and get what was missed (until --for ends it).
    #[arg(long, conflicts_with_all = ["load", "requests"])]
    resumable: bool,
    /// Load mode: this many sessions, reporting events/s and latency each second.
    #[arg(long)]
    load: Option<usize>,
    /// Stop after this long; until the relay closes (or Ctrl-C) when absent.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    #[command(flatten)]
    tls: TlsArgs,
}

/// TLS to a relay port that speaks it.
#[derive(clap::Args)]
struct TlsArgs {
    /// Speak TLS, trusting the authorities in this PEM file.
    #[arg(long = "tls-ca")]
    tls_ca: Option<std::path::PathBuf>,
    /// Present this client certificate (PEM), for a relay with tls.client_ca.
    #[arg(long = "tls-cert", requires_all = ["tls_ca", "tls_key"])]
    tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long = "tls-key", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// The name the relay's certificate must carry (default: the address dialled).
    #[arg(long = "tls-name", requires = "tls_ca")]
    tls_name: Option<String>,
}

impl TlsArgs {
    /// The network to dial the relay over: TLS when asked for, else TCP.
    fn network(&self) -> anyhow::Result<Arc<dyn netseam::Network>> {
        let Some(ca) = &self.tls_ca else {
            return Ok(Arc::new(TcpNetwork));
        };
        let identity = self.tls_cert.as_deref().zip(self.tls_key.as_deref());
        let config = netseam::tls::client_config(ca, identity)?;
        Ok(Arc::new(
            netseam::tls::TlsNetwork::new(config).with_server_name(self.tls_name.clone()),
        ))
    }
}

#[derive(clap::Subcommand)]
enum Command {
    /// Soak a running relay in real time: simulated switches (list them in the relay's
    /// configuration), living applications, link faults, and invariants checked throughout;
    /// a report each minute, and a non-zero exit on any violation.
    Soak(SoakArgs),
}

#[derive(clap::Args)]
struct SoakArgs {
    /// The relay's client port (bypass = this + 500).
    #[arg(long, default_value = "127.0.0.1:6000")]
    relay: SocketAddr,
    /// How many simulated switches (1..=8).
    #[arg(long, default_value_t = 2)]
    switches: u8,
    /// Where switch 1 listens; switch N at the address N-1 above, same port.
    #[arg(long, default_value = "127.0.1.1:5002")]
    switch_base: SocketAddr,
    /// Applications (mostly multi-switch bypass programs, some single-switch ones, and up to
    /// 15 Call softphones).
    #[arg(long, default_value_t = 50)]
    apps: usize,
    /// Requests per second over all applications.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long = "for", value_parser = humantime::parse_duration, default_value = "1h")]
    duration: Duration,
    /// A link fault on a random switch this often; 0s turns faults off.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    faults: Duration,
    /// Each switch's phone users act this often.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20ms")]
    traffic: Duration,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The relay's process id, for its resident memory in the report (found by name when
    /// left out and one process is named `relay`).
    #[arg(long)]
    relay_pid: Option<u32>,
    /// How often a report line is printed.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1m")]
    report_every: Duration,
}

fn soak(a: SoakArgs) -> anyhow::Result<()> {
    let opts = client_sim::soak::SoakOptions {
        relay: a.relay,
        switch_base: a.switch_base,
        switches: a.switches,
        apps: a.apps,
        rate: a.rate,
        duration: a.duration,
        faults: (!a.faults.is_zero()).then_some(a.faults),
        traffic: a.traffic,
        seed: a.seed,
        relay_process: a
            .relay_pid
            .map_or(RelayProcess::Named("relay".into()), RelayProcess::Pid),
        report_every: a.report_every,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let summary = rt.block_on(client_sim::soak::run(Arc::new(TcpNetwork), opts, |line| {
        println!("{line}")
    }))?;
    anyhow::ensure!(
        summary.violations == 0,
        "{} invariant violation(s)",
        summary.violations
    );
    Ok(())
}

fn product(name: &str) -> anyhow::Result<Product> {
    Product::parse(name)
        .ok_or_else(|| anyhow::anyhow!("--product {name:?} is not a product (see --help)"))
}

fn devices(specs: &[String]) -> anyhow::Result<Vec<(u8, String)>> {
    specs
        .iter()
        .map(|s| {
            let (sw, dev) = s
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("--device {s:?}: use SWITCH:DEVICE"))?;
            Ok((
                sw.parse()
                    .map_err(|_| anyhow::anyhow!("--device {s:?}: bad switch"))?,
                dev.to_owned(),
            ))
        })
        .collect()
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if let Some(Command::Soak(a)) = args.command {
        return soak(a);
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let product = product(&args.product)?;
        anyhow::ensure!(matches!(args.protocol, 2 | 3), "--protocol must be 2 or 3");
        let mut relay = args.relay;
        if product.port() == wire::Port::Bypass {
            relay.set_port(relay.port() + 500);
        }
        let who = AppIdentity {
            relay,
            source: args.source,
            protocol: args.protocol,
            product: product.byte(),
            name: args.name.clone(),
            devices: devices(&args.devices)?,
        };
        let net = args.tls.network()?;
        if let Some(sessions) = args.load {
            // Load mode keeps its own time, so that it can print the summary.
            let opts = LoadOptions {
                app: who,
                sessions,
                duration: args.duration,
            };
            client_sim::load::run(net, &opts, |line| println!("{line}")).await?;
            return Ok(());
        }
        if args.resumable {
            let session =
                client_sim::interactive::run_resumable(net, &who, |line| println!("{line}"));
            return match args.duration {
                Some(d) => tokio::time::timeout(d, session).await.unwrap_or(Ok(())),
                None => session.await,
            };
        }
        let session =
            client_sim::interactive::run(net, &who, &args.requests, |line| println!("{line}"));
        match args.duration {
            Some(d) => tokio::time::timeout(d, session)
                .await
                .unwrap_or(Ok(ended_by_time())),
            None => session.await,
        }
        .map(|_| ())
    })
}

fn ended_by_time() -> client_sim::interactive::Ended {
    client_sim::interactive::Ended {
        frames: 0,
        close: None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
