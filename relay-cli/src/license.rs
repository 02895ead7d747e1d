//! `relay license …`: licence status, this host's MACs, registration, and the issuer's tools.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ed25519_dalek::SigningKey;

use relay::clock::{SystemClock, WallClock};
use relay::config::{parse_mac, Config};
use relay::licensing::key::{self, MacType, Payload};
use relay::licensing::{self, store, LicenceStatus, Licensing, STATUS_FILE};

/// A running relay's published status is trusted while it is this fresh.
const FRESH_MS: u64 = 5_000;

/// `relay license show`.
pub fn show(config_path: &Path) -> anyhow::Result<String> {
    let config = Config::load(config_path)?;
    let now = SystemClock.now_ms();
    let (status, live) = match running_status(&config, now) {
        Some(status) => (status, true),
        None => {
            let licensing = Licensing::open(&config.state_dir, now).with_context(|| {
                format!(
                    "cannot read the state directory {}",
                    config.state_dir.display()
                )
            })?;
            let host = licensing::host_macs(&config);
            // Offline, a switch-MAC licence is shown as if its switch were connected.
            let switch_macs: Vec<[u8; 6]> = licensing
                .registered
                .load()
                .as_ref()
                .map(|r| vec![r.payload.mac])
                .unwrap_or_default();
            let standing = licensing.standing(now, &host, &switch_macs);
            (
                LicenceStatus::of(&licensing, &standing, &config, None, &[], now),
                false,
            )
        }
    };
    Ok(render_status(&status, live))
}

fn running_status(config: &Config, now: u64) -> Option<LicenceStatus> {
    let text = std::fs::read_to_string(config.state_dir.join(STATUS_FILE)).ok()?;
    let status: LicenceStatus = serde_yaml::from_str(&text).ok()?;
    (now.saturating_sub(status.at_ms) < FRESH_MS).then_some(status)
}

pub fn render_status(s: &LicenceStatus, live: bool) -> String {
    let mut out = String::new();
    let w = &mut out;
    use std::fmt::Write as _;
    match s.serial {
        Some(serial) => {
            let _ = writeln!(w, "Licence number:  {serial}");
            let _ = writeln!(w, "Licence type:    1 (standard)");
            let _ = writeln!(
                w,
                "MAC type:        {}",
                s.mac_type.as_deref().unwrap_or("-")
            );
            let _ = writeln!(
                w,
                "Allowed MAC:     {}",
                s.allowed_mac.as_deref().unwrap_or("-")
            );
            let _ = writeln!(
                w,
                "Expires:         {}",
                s.expires.as_deref().unwrap_or("-")
            );
        }
        None => {
            let _ = writeln!(w, "Licence number:  none registered");
        }
    }
    let standing = match s.standing.as_str() {
        "licensed" => "licensed".to_string(),
        "trial" => format!(
            "trial, day {} of 30 ({} days left)",
            s.trial_days_used + 1,
            s.trial_days_left
        ),
        _ => "trial expired and no valid licence: licensed products are refused (result 3)"
            .to_string(),
    };
    let _ = writeln!(w, "In force:        {standing}");
    let _ = writeln!(
        w,
        "Trial:           started {}; {} day(s) used, {} left",
        s.trial_started, s.trial_days_used, s.trial_days_left
    );
    let _ = writeln!(w);
    let use_head = if live {
        "In use"
    } else {
        "In use (relay not running)"
    };
    let _ = writeln!(w, "{:<32} {:<8} {use_head}", "Product", "Limit");
    for p in &s.products {
        let _ = writeln!(w, "{:<32} {:<8} {}", p.name, p.limit, p.in_use);
    }
    let _ = writeln!(
        w,
        "{:<32} {:<8} {}",
        "Simultaneous access",
        s.access_limit,
        if live {
            s.licensed_in_use.to_string()
        } else {
            "-".into()
        }
    );
    let _ = writeln!(w, "\nBypass products (no licence needed)");
    for b in &s.bypass {
        let used = if live {
            b.in_use.to_string()
        } else {
            "-".into()
        };
        let _ = writeln!(w, "{:<32} {:<8} {used}", b.name, b.limit);
    }
    out
}

/// `relay license mac`.
pub fn mac(config_path: &Path) -> anyhow::Result<String> {
    let config = Config::load(config_path)?;
    let mut out = String::from("This host's MAC addresses");
    if config.license.host_macs.is_some() {
        out.push_str(" (from license.host_macs)");
    }
    out.push_str(":\n");
    for m in licensing::host_macs(&config) {
        out.push_str(&format!("  {}\n", key::mac_text(&m)));
    }
    match running_status(&config, SystemClock.now_ms()) {
        Some(s) => {
            out.push_str("Connected switches' MAC addresses:\n");
            if s.switch_macs.is_empty() {
                out.push_str("  (no switch connected)\n");
            }
            for m in s.switch_macs {
                out.push_str(&format!("  {m}\n"));
            }
        }
        None => out.push_str("Connected switches' MAC addresses: the relay is not running\n"),
    }
    Ok(out)
}

/// `relay license register` (`replace` false) or `change` (`replace` true).
pub fn register(config_path: &Path, text: &str, replace: bool) -> anyhow::Result<String> {
    let config = Config::load(config_path)?;
    let existing = store::read(&config.state_dir)?;
    match (replace, existing.is_some()) {
        (false, true) => {
            bail!("a licence is already registered: use `relay license change KEY` to replace it")
        }
        (true, false) => bail!("no licence is registered yet: use `relay license register KEY`"),
        _ => {}
    }
    let issuers = key::issuer_keys(&config.license.issuer_keys).map_err(anyhow::Error::msg)?;
    let payload = key::verify(text, &issuers)?;
    // A running relay registers it itself: it knows which switches are connected now.
    if let Some(answer) = through_running_relay(&config, text) {
        return answer.map(|_| {
            format!(
                "Licence {} registered: {}.\nThe running relay checked it and has it in force now.\n",
                payload.serial,
                licensing::grants_text(&payload)
            )
        });
    }
    let now = SystemClock.now_ms();
    let host = licensing::host_macs(&config);
    let note = match payload.mac_type {
        MacType::Computer => {
            licensing::valid_now(&payload, now, &host, &[])?;
            String::new()
        }
        MacType::Switch => {
            let mac = key::mac_text(&payload.mac);
            match running_status(&config, now) {
                // A running relay knows its switches: a key for none of them is refused, as
                // the admin interface refuses it, and the licence in force stays.
                Some(status) => {
                    let connected: Vec<[u8; 6]> = status
                        .switch_macs
                        .iter()
                        .filter_map(|m| parse_mac(m))
                        .collect();
                    licensing::valid_now(&payload, now, &[], &connected).map_err(|e| {
                        anyhow::anyhow!(
                            "{e} of the running relay: the key is refused and the licence in \
                             force stays"
                        )
                    })?;
                    format!("\nIt is bound to switch MAC {mac}, connected now.")
                }
                None => {
                    licensing::valid_now(&payload, now, &[], &[payload.mac])?;
                    let stays = match &existing {
                        Some(_) => "the licence registered now stays in force",
                        None => "the trial terms apply",
                    };
                    format!(
                        "\nIt is bound to switch MAC {mac}. No relay is running, so that can only \
                         be checked once the relay has connected that switch: until then {stays} \
                         (a notification says so)."
                    )
                }
            }
        }
    };
    if payload.mac_type == MacType::Switch {
        store::write_keeping_previous(&config.state_dir, text)?;
    } else {
        store::write(&config.state_dir, text)?;
        store::remove_previous(&config.state_dir);
    }
    Ok(format!(
        "Licence {} registered: {}.{note}\nA running relay applies it within 2 seconds.\n",
        payload.serial,
        licensing::grants_text(&payload)
    ))
}

/// The running relay's answer to registering `text` through its admin interface (as `relay
/// ctl license register` does, with the token kept in its state directory), or `None` when
/// no relay answers at `admin.address:port` (then the state directory is used directly). An
/// admin interface behind TLS is not asked: `relay ctl --tls-ca FILE register KEY` is.
fn through_running_relay(config: &Config, text: &str) -> Option<anyhow::Result<String>> {
    use relay::config::TlsPort;
    if config.tls.ports.contains(&TlsPort::Admin) {
        return None;
    }
    let ip = match config.admin.address {
        std::net::IpAddr::V4(a) if a.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(a) if a.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let addr = std::net::SocketAddr::new(ip, config.admin.port);
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)).ok()?;
    let token = config
        .admin
        .token
        .clone()
        .or_else(|| relay::admin::token::read_kept(&config.state_dir));
    let ctl = crate::ctl::Ctl::new(&addr.to_string(), token, false);
    Some(
        ctl.run(&crate::ctl::CtlCommand::Register {
            key: text.to_owned(),
        })
        .map_err(|e| anyhow::anyhow!("{e:#}; the licence in force stays")),
    )
}

/// `relay license keygen --out FILE`: a new issuer key pair; the private key is written to
/// `out` (created, never overwritten, mode 0600) and the public key printed for
/// `license.issuer_keys`.
pub fn keygen(out: &Path) -> anyhow::Result<String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no system randomness: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(out)
        .with_context(|| format!("cannot create {} (it must not exist yet)", out.display()))?;
    writeln!(file, "{}", data_encoding::HEXLOWER.encode(&seed))?;
    file.sync_all()?;
    Ok(format!(
        "Private key written to {} (keep it secret).\nPublic key, for license.issuer_keys:\n{}\n",
        out.display(),
        data_encoding::HEXLOWER.encode(key.verifying_key().as_bytes())
    ))
}

/// What `relay license issue` puts in a key.
#[derive(clap::Args, Debug)]
pub struct IssueArgs {
    /// The issuer's private key file (from `keygen`).
    #[arg(long)]
    pub signing_key: PathBuf,
    /// computer or switch
    #[arg(long)]
    pub mac_type: String,
    #[arg(long)]
    pub mac: String,
    #[arg(long, default_value_t = 0)]
    pub call: u16,
    #[arg(long, default_value_t = 0)]
    pub opentsp: u16,
    #[arg(long, default_value_t = 0)]
    pub operator: u16,
    #[arg(long)]
    pub easyset: bool,
    #[arg(long)]
    pub news: bool,
    #[arg(long)]
    pub dataview: bool,
    /// Last day of validity, YYYY-MM-DD (default: never expires).
    #[arg(long)]
    pub expires: Option<String>,
    #[arg(long)]
    pub serial: u32,
}

/// `relay license issue …`: prints a signed key.
pub fn issue(a: &IssueArgs) -> anyhow::Result<String> {
    let hex = std::fs::read_to_string(&a.signing_key)
        .with_context(|| format!("cannot read the signing key {}", a.signing_key.display()))?;
    let seed: [u8; 32] = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.trim().as_bytes())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{} does not hold a private key (64 hex digits)",
                a.signing_key.display()
            )
        })?;
    let mac_type = match a.mac_type.as_str() {
        "computer" => MacType::Computer,
        "switch" => MacType::Switch,
        other => bail!("--mac-type {other:?}: use computer or switch"),
    };
    let mac = parse_mac(&a.mac)
        .ok_or_else(|| anyhow::anyhow!("--mac {:?} is not like AA:BB:CC:DD:EE:FF", a.mac))?;
    let expires = match &a.expires {
        None => 0,
        Some(d) => key::parse_day(d)
            .ok_or_else(|| anyhow::anyhow!("--expires {d:?} is not a date YYYY-MM-DD"))?,
    };
    let payload = Payload {
        serial: a.serial,
        mac_type,
        mac,
        call: a.call,
        opentsp: a.opentsp,
        operator: a.operator,
        easyset: a.easyset,
        news: a.news,
        dataview: a.dataview,
        expires,
    };
    Ok(format!(
        "{}\n",
        payload.sign(&SigningKey::from_bytes(&seed))
    ))
}
