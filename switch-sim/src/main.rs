//! `switch-sim`: a simulated switch (MCP CTI port) on a real TCP port.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use switch_sim::smdr::{Layout, SmdrOptions};
use switch_sim::{Answering, Settings, SimSwitch};
use wire::{Station, StationKind, Str8};

#[derive(Parser)]
#[command(
    name = "switch-sim",
    version,
    about = "A simulated key-phone switch speaking the CTI relay protocol"
)]
struct Args {
    /// Address and port to accept the relay's CTI link on.
    #[arg(long, default_value = "127.0.1.1:5002")]
    listen: SocketAddr,
    /// Accept the CTI link over TLS with this certificate chain (PEM), as a TLS terminator in
    /// front of a switch would.
    #[arg(long = "tls-cert", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long = "tls-key", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    #[arg(long, default_value = "OfficeServ 7200")]
    model: String,
    #[arg(long, default_value = "SVMi-20 4.60")]
    software: String,
    /// The switch's MAC address.
    #[arg(long, default_value = "00:00:F0:5A:00:01")]
    mac: String,
    /// Capabilities: bit0 Call+, bit1 SMDR to the CTI link, bit2 UCD to the CTI link.
    #[arg(long, default_value_t = 7)]
    caps: u8,
    /// Keyset stations, as a range or list: 2201-2232 or 2201,2202.
    #[arg(long, default_value = "2201-2232")]
    keysets: String,
    /// Single-line stations.
    #[arg(long, default_value = "")]
    single_lines: String,
    #[arg(long, default_value = "701-708")]
    trunks: String,
    #[arg(long, default_value = "500-503")]
    groups: String,
    /// Stations per station-table page.
    #[arg(long, default_value_t = 16)]
    page_size: usize,
    /// The EasySet password (MMC 841).
    #[arg(long, default_value = "1234")]
    password: String,
    /// The CTI server address (MMC 830): only this address may open the link.
    #[arg(long)]
    cti_server: Option<IpAddr>,
    /// How requests are answered: model, echo or silent.
    #[arg(long, default_value = "model")]
    answering: String,
    /// Delay before each answer (e.g. 200ms).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    answer_delay: Duration,
    /// Do not answer the relay's heartbeats.
    #[arg(long)]
    no_heartbeat_replies: bool,
    /// The SMDR record layout (MMC 725): short (121 bytes) or long (153 bytes, with the
    /// caller name, group and ring time).
    #[arg(long, default_value = "short")]
    smdr_layout: String,
    /// Print an SMDR page header before every N-th record (0: never).
    #[arg(long, default_value_t = 0)]
    smdr_page_every: u32,
    /// Refuse the first N opens with result 1.
    #[arg(long, default_value_t = 0)]
    refuse_opens: u32,
    /// Live call traffic: one phone action every this long (e.g. 500ms); off when absent.
    #[arg(long, value_parser = humantime::parse_duration)]
    traffic: Option<Duration>,
    /// Seed of the live traffic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Load mode: this many timestamped events per second.
    #[arg(long)]
    load_rate: Option<u64>,
    /// Device of the load events.
    #[arg(long, default_value = "2201")]
    load_device: String,
    /// Body size of the load events in bytes.
    #[arg(long, default_value_t = 64)]
    load_body: usize,
    /// Drop the link this long after it opens (fault injection).
    #[arg(long, value_parser = humantime::parse_duration)]
    drop_after: Option<Duration>,
    /// Stop after this long; runs until Ctrl-C when absent.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let outcome = settings(&args).and_then(|settings| {
        let rt = tokio::runtime::Runtime::new()?;
        rt.block_on(run(args, settings))
    });
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn settings(a: &Args) -> anyhow::Result<Settings> {
    let mac = parse_mac(&a.mac)
        .ok_or_else(|| anyhow::anyhow!("--mac {:?} is not like AA:BB:CC:DD:EE:FF", a.mac))?;
    let mut stations = Vec::new();
    for (spec, kind, flag) in [
        (&a.keysets, StationKind::Keyset, "--keysets"),
        (&a.single_lines, StationKind::SingleLine, "--single-lines"),
        (&a.trunks, StationKind::Trunk, "--trunks"),
        (&a.groups, StationKind::Group, "--groups"),
    ] {
        for name in expand(spec).map_err(|e| anyhow::anyhow!("{flag} {spec:?}: {e}"))? {
            stations.push(Station {
                station: Str8::lossy(&name),
                kind,
            });
        }
    }
    let answering = match a.answering.as_str() {
        "model" => Answering::CallModel,
        "echo" => Answering::Echo,
        "silent" => Answering::Silent,
        other => anyhow::bail!("--answering {other:?}: use model, echo or silent"),
    };
    let layout = match a.smdr_layout.as_str() {
        "short" => Layout::Short,
        "long" => Layout::Long,
        other => anyhow::bail!("--smdr-layout {other:?}: use short or long"),
    };
    Ok(Settings {
        model: a.model.clone(),
        software: a.software.clone(),
        mac,
        caps: a.caps,
        stations,
        page_size: a.page_size,
        easyset_password: a.password.clone(),
        cti_server: a.cti_server,
        answering,
        heartbeat_replies: !a.no_heartbeat_replies,
        answer_opens: true,
        answer_delay: a.answer_delay,
        epoch_ms: None,
        tag_events: false,
        smdr: SmdrOptions {
            layout,
            page_every: a.smdr_page_every,
        },
    })
}

/// `2201-2205,2210` → each station name.
fn expand(spec: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (
                    a.parse().map_err(|_| format!("{a:?} is not a number"))?,
                    b.parse().map_err(|_| format!("{b:?} is not a number"))?,
                );
                if b < a || b - a > 10_000 {
                    return Err(format!("range {part} is empty or too large"));
                }
                out.extend((a..=b).map(|n| n.to_string()));
            }
            None => out.push(part.to_owned()),
        }
    }
    Ok(out)
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let parts: Vec<&str> = text.split([':', '-']).collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return None;
    }
    for (b, p) in mac.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    Some(mac)
}

async fn run(args: Args, settings: Settings) -> anyhow::Result<()> {
    let net: Box<dyn netseam::Network> = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Box::new(netseam::tls::TlsListenNetwork::new(
            netseam::tls::server_config(cert, key)?,
        )),
        _ => Box::new(netseam::TcpNetwork),
    };
    let switch = SimSwitch::start_on(net.as_ref(), args.listen, settings)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", args.listen))?;
    switch.refuse_next_opens(args.refuse_opens);
    println!("switch-sim listening on {}", switch.addr());
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(every) = args.traffic {
        tasks.spawn(switch_sim::traffic::run(switch.clone(), every, args.seed));
    }
    if let Some(rate) = args.load_rate {
        tasks.spawn(switch_sim::load::run(
            switch.clone(),
            rate,
            args.load_device.clone(),
            args.load_body,
        ));
    }
    if let Some(after) = args.drop_after {
        let sw = switch.clone();
        tasks.spawn(async move {
            sw.wait_opened(1).await;
            tokio::time::sleep(after).await;
            sw.drop_link();
        });
    }
    let watch = switch.clone();
    tasks.spawn(async move {
        let mut n = 0;
        loop {
            n += 1;
            watch.wait_opened(n).await;
            println!("CTI link opened ({n})");
            watch.wait_closed(n).await;
            println!("CTI link closed ({n})");
        }
    });
    match args.duration {
        Some(d) => tokio::time::sleep(d).await,
        None => {
            tokio::signal::ctrl_c().await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Args::command().debug_assert();
    }
}
