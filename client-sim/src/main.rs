//! `client-sim`: simulated CTI applications on real TCP, one verbose session or a load of many.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use client_sim::describe::describe;
use client_sim::{str8_body, SimApp};
use hdrhistogram::Histogram;
use wire::{CallMsg, Kind, Product};

#[derive(Parser)]
#[command(
    name = "client-sim",
    version,
    about = "Simulated CTI applications for the relay"
)]
struct Args {
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
    requests: Vec<String>,
    /// Load mode: this many sessions, reporting events/s and latency each second.
    #[arg(long)]
    load: Option<usize>,
    /// Stop after this long; until the relay closes (or Ctrl-C) when absent.
    #[arg(long = "for", value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
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
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let product = product(&args.product)?;
        anyhow::ensure!(matches!(args.protocol, 2 | 3), "--protocol must be 2 or 3");
        let mut addr = args.relay;
        if product.port() == wire::Port::Bypass {
            addr.set_port(addr.port() + 500);
        }
        let devices = devices(&args.devices)?;
        match (args.load, args.duration) {
            // Load mode keeps its own time, so that it can print the summary.
            (Some(n), _) => load(&args, addr, product, &devices, n).await,
            (None, Some(d)) => tokio::time::timeout(d, single(&args, addr, product, &devices))
                .await
                .unwrap_or(Ok(())),
            (None, None) => single(&args, addr, product, &devices).await,
        }
    })
}

async fn connect(
    args: &Args,
    addr: SocketAddr,
    product: Product,
    devices: &[(u8, String)],
) -> anyhow::Result<SimApp> {
    let mut app = SimApp::connect(addr, args.source).await?;
    let devs: Vec<(u8, &str)> = devices.iter().map(|(s, d)| (*s, d.as_str())).collect();
    let id = app
        .identify(args.protocol, product.byte(), &args.name, &devs)
        .await?;
    anyhow::ensure!(
        id.result == 0,
        "identify refused with result {} ({})",
        id.result,
        wire::IdentifyResult::from_byte(id.result).map_or("unknown", |r| r.describe())
    );
    Ok(app)
}

async fn single(
    args: &Args,
    addr: SocketAddr,
    product: Product,
    devices: &[(u8, String)],
) -> anyhow::Result<()> {
    let app = connect(args, addr, product, devices).await?;
    let p3 = args.protocol == 3;
    let from = args
        .source
        .map_or("the default address".to_string(), |ip| ip.to_string());
    println!(
        "identified as {product} (protocol {}) from {from}",
        args.protocol
    );
    let (mut rd, mut wr) = app.into_split();
    let requests = args.requests.clone();
    let sender = tokio::spawn(async move {
        for (i, spec) in requests.iter().enumerate() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut parts = spec.splitn(3, ':');
            let (Some(sw), Some(code), fields) = (parts.next(), parts.next(), parts.next()) else {
                eprintln!("--request {spec:?}: use SWITCH:CODE:FIELD,FIELD");
                continue;
            };
            let fields: Vec<&str> = fields.map(|f| f.split(',').collect()).unwrap_or_default();
            let body = str8_body(&fields);
            let code = code.bytes().next().unwrap_or(b'?');
            let _ = wr.request(sw.parse().ok(), code, i as u16 + 1, &body).await;
        }
        wr
    });
    while let Some(frame) = rd.next_frame().await? {
        println!("{}", describe(&frame, p3));
    }
    println!("closed by the relay");
    drop(sender);
    Ok(())
}

async fn load(
    args: &Args,
    addr: SocketAddr,
    product: Product,
    devices: &[(u8, String)],
    n: usize,
) -> anyhow::Result<()> {
    let events = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        60_000_000_000,
        3,
    )?));
    let ended = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let app = connect(args, addr, product, devices).await?;
        let (events, latency, p3) = (events.clone(), latency.clone(), args.protocol == 3);
        let ended = ended.clone();
        tasks.spawn(async move {
            let (mut rd, _wr) = app.into_split();
            let mut local =
                Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("bounds");
            let mut count = 0u64;
            while let Ok(Some(f)) = rd.next_frame().await {
                if f.kind() != Kind::Event {
                    continue;
                }
                count += 1;
                if let Ok(m) = CallMsg::decode(&f, p3) {
                    if let Some(sent) = switch_sim::load::sent_ns(m.code, &m.body) {
                        let _ =
                            local.record(switch_sim::load::unix_ns().saturating_sub(sent).max(1));
                    }
                }
                if count.is_multiple_of(1024) {
                    events.fetch_add(count, Ordering::Relaxed);
                    count = 0;
                    let _ = latency
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .add(&local);
                    local.reset();
                }
            }
            events.fetch_add(count, Ordering::Relaxed);
            ended.fetch_add(1, Ordering::Relaxed);
        });
    }
    println!("{n} sessions identified; reporting each second");
    let mut total = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut all_events = 0u64;
    let mut second = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        second += 1;
        let e = events.swap(0, Ordering::Relaxed);
        all_events += e;
        let h = std::mem::replace(
            &mut *latency.lock().unwrap_or_else(|e| e.into_inner()),
            Histogram::new_with_bounds(1, 60_000_000_000, 3)?,
        );
        total.add(&h)?;
        println!(
            "t={second}s events/s={e} latency p50={} p99={} p999={}",
            us(h.value_at_quantile(0.5)),
            us(h.value_at_quantile(0.99)),
            us(h.value_at_quantile(0.999))
        );
        let gone = ended.load(Ordering::Relaxed);
        if gone > 0 {
            println!("{gone} session(s) closed by the relay; stopping");
            break;
        }
        if args
            .duration
            .is_some_and(|d| Duration::from_secs(second + 1) > d)
        {
            break;
        }
    }
    println!(
        "total: {all_events} events over {second} s = {}/s; latency p50={} p99={} p999={}",
        all_events / second.max(1),
        us(total.value_at_quantile(0.5)),
        us(total.value_at_quantile(0.99)),
        us(total.value_at_quantile(0.999))
    );
    Ok(())
}

fn us(ns: u64) -> String {
    format!("{:.1}µs", ns as f64 / 1000.0)
}
