//! `relay monitor sw` and `relay monitor su`: connect to a monitor port, print each message as
//! time, direction, switch and contents, keep an on-screen view of at most N lines, optionally
//! save to rotating files, and reconnect with backoff when the relay goes away.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::monitor_files::{self, RotatingFiles};
use relay::licensing::key::day_text;
use wire::{Frame, FrameReader, Kind, LinkMsg, MonitorMsg, Str8};

/// Which monitor port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    SwitchMessages,
    SmdrUcd,
}

pub struct MonitorArgs {
    pub which: Which,
    pub host: String,
    pub port: u16,
    pub password: String,
    /// Clear the screen every this many lines (0: never).
    pub lines: usize,
    pub save: Option<PathBuf>,
    /// Stop after this long (for scripted use); run until Ctrl-C when absent.
    pub duration: Option<Duration>,
    /// TCP, or TLS to a monitor port that speaks it.
    pub net: std::sync::Arc<dyn netseam::Network>,
}

/// The text of one monitor frame, or `None` for frames that are not messages (gaps are text).
pub fn render(frame: &Frame) -> Option<(String, Option<Kind>)> {
    if frame.kind() != Kind::Monitor {
        return None;
    }
    let (code, time_ms, switch, inner) = match MonitorMsg::decode(frame) {
        Ok(MonitorMsg::Gap { dropped }) => {
            return Some((
                format!("*** {dropped} message(s) missed: this monitor read too slowly"),
                None,
            ))
        }
        Ok(MonitorMsg::Link {
            code,
            time_ms,
            switch,
            frame,
        }) => (code, time_ms, switch, frame),
        Err(e) => return Some((format!("*** {e}"), None)),
    };
    let when = time_text(time_ms);
    match code {
        b'<' | b'>' => {
            let arrow = if code == b'>' { "->" } else { "<-" };
            // INVOKE and body, as the switch link carried them.
            let hex: Vec<String> = inner.as_bytes()[4..]
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect();
            Some((
                format!(
                    "{when} {arrow} SW{switch} '{}' {}",
                    inner.code().escape_ascii(),
                    hex.join(" ")
                ),
                Some(inner.kind()),
            ))
        }
        _ => {
            let kind = inner.kind();
            let label = if code == b'S' { "SMDR" } else { "UCD" };
            // One line per record: a page header the switch printed before it is left out,
            // and so are its line end and trailing padding.
            let (_, record) = wire::smdr::split_page_header(inner.body());
            let record = record.trim_ascii_end();
            let text = String::from_utf8_lossy(record).into_owned();
            Some((format!("{when} <- SW{switch} {label} {text}"), Some(kind)))
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC).
pub fn time_text(ms: u64) -> String {
    let secs = ms / 1000;
    format!(
        "{} {:02}:{:02}:{:02}.{:03}",
        day_text((secs / 86_400) as u32),
        secs / 3600 % 24,
        secs / 60 % 60,
        secs % 60,
        ms % 1000
    )
}

struct Saver {
    swmsg: Option<RotatingFiles>,
    smdr: Option<RotatingFiles>,
    ucd: Option<RotatingFiles>,
}

impl Saver {
    fn open(which: Which, dir: Option<&PathBuf>) -> anyhow::Result<Saver> {
        let open = |name| -> anyhow::Result<RotatingFiles> {
            let d = dir.expect("checked");
            RotatingFiles::open(d, name, monitor_files::MAX_BYTES)
                .map_err(|e| anyhow::anyhow!("cannot write in {}: {e}", d.display()))
        };
        Ok(match (which, dir.is_some()) {
            (_, false) => Saver {
                swmsg: None,
                smdr: None,
                ucd: None,
            },
            (Which::SwitchMessages, true) => Saver {
                swmsg: Some(open(monitor_files::swmsg_name)?),
                smdr: None,
                ucd: None,
            },
            (Which::SmdrUcd, true) => Saver {
                swmsg: None,
                smdr: Some(open(monitor_files::smdr_name)?),
                ucd: Some(open(monitor_files::ucd_name)?),
            },
        })
    }

    fn save(&mut self, which: Which, kind: Option<Kind>, line: &str) {
        let target = match (which, kind) {
            (Which::SwitchMessages, _) => self.swmsg.as_mut(),
            (Which::SmdrUcd, Some(Kind::Ucd)) => self.ucd.as_mut(),
            (Which::SmdrUcd, _) => self.smdr.as_mut(),
        };
        if let Some(files) = target {
            if let Err(e) = files.line(line) {
                eprintln!("cannot save to {}: {e}", files.current().display());
            }
        }
    }
}

/// Runs a monitor program until Ctrl-C (or `duration`).
pub async fn run(args: MonitorArgs) -> anyhow::Result<()> {
    let mut saver = Saver::open(args.which, args.save.as_ref())?;
    let work = monitor_loop(&args, &mut saver);
    match args.duration {
        Some(d) => match tokio::time::timeout(d, work).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        },
        None => {
            tokio::select! {
                r = work => r,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
    }
}

async fn monitor_loop(args: &MonitorArgs, saver: &mut Saver) -> anyhow::Result<()> {
    let mut backoff = Duration::from_secs(1);
    let mut shown = 0usize;
    let mut out = std::io::stdout();
    loop {
        match session(args, saver, &mut shown, &mut out).await {
            Ok(Ended::Refused) => anyhow::bail!("the relay refused the monitor password"),
            Ok(Ended::Lost) => {
                backoff = Duration::from_secs(1);
                println!(
                    "*** connection to the relay lost; reconnecting in {} s",
                    backoff.as_secs()
                );
            }
            Err(e) => println!(
                "*** cannot reach the relay at {}:{} ({e}); retrying in {} s",
                args.host,
                args.port,
                backoff.as_secs()
            ),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

enum Ended {
    Refused,
    Lost,
}

async fn session(
    args: &MonitorArgs,
    saver: &mut Saver,
    shown: &mut usize,
    out: &mut std::io::Stdout,
) -> std::io::Result<Ended> {
    let mut stream = args.net.connect(&args.host, args.port).await?;
    let hello = LinkMsg::Password {
        password: Str8::lossy(&args.password),
    }
    .encode()
    .map_err(std::io::Error::other)?;
    stream.write_all(&hello).await?;
    let mut reader = FrameReader::new();
    let mut accepted = false;
    loop {
        let frame = match reader.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => {
                if stream.read_buf(reader.buffer_mut()).await? == 0 {
                    return Ok(if accepted {
                        Ended::Lost
                    } else {
                        Ended::Refused
                    });
                }
                continue;
            }
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        };
        if !accepted {
            match LinkMsg::decode(&frame) {
                Ok(LinkMsg::PasswordResult { result: 0 }) => {
                    accepted = true;
                    println!("*** connected to {}:{}", args.host, args.port);
                    continue;
                }
                _ => return Ok(Ended::Refused),
            }
        }
        if let Some((line, kind)) = render(&frame) {
            if args.lines > 0 && *shown >= args.lines {
                // Auto-clear the on-screen view.
                print!("\x1b[2J\x1b[H");
                *shown = 0;
            }
            let _ = writeln!(out, "{line}");
            *shown += 1;
            saver.save(args.which, kind, &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_messages_show_time_arrow_switch_code_and_hex() {
        let inner = [0u8, 9, b'E', b'e', 0xFF, 0xFF, 4, b'2', b'2', b'0', b'1'];
        let m = wire::monitor::encode_link(b'<', 1_764_000_000_123, 2, &inner).unwrap();
        let (line, kind) = render(&Frame::new(m).unwrap()).unwrap();
        assert_eq!(
            line,
            "2025-11-24 16:00:00.123 <- SW2 'e' FF FF 04 32 32 30 31"
        );
        assert_eq!(kind, Some(Kind::Event));
        let smdr = Frame::build(Kind::Smdr, b'S', 0xFFFF, b"2201 701 x");
        let m = wire::monitor::encode_link(b'S', 0, 1, smdr.as_bytes()).unwrap();
        assert_eq!(
            render(&Frame::new(m).unwrap()).unwrap().0,
            "1970-01-01 00:00:00.000 <- SW1 SMDR 2201 701 x"
        );
        let truncated = Frame::build(Kind::Monitor, b'G', 0xFFFF, &[0, 1]);
        assert_eq!(
            render(&truncated).unwrap().0,
            "*** monitor frame 'G' is truncated"
        );
        // A native record after a page header: the record's line, without its CR LF and padding.
        let record = wire::smdr::SmdrRecord {
            call_id: "7".into(),
            extension: "2201".into(),
            month: 1,
            day: 5,
            flag: "O".into(),
            ..Default::default()
        }
        .to_line();
        let mut body = wire::smdr::page_header("MAIN", 1, 5, Default::default(), false);
        body.extend_from_slice(&record);
        let smdr = Frame::build(Kind::Smdr, b'S', 0xFFFF, &body);
        let m = wire::monitor::encode_link(b'S', 0, 1, smdr.as_bytes()).unwrap();
        assert_eq!(
            render(&Frame::new(m).unwrap()).unwrap().0,
            format!(
                "1970-01-01 00:00:00.000 <- SW1 SMDR {}",
                std::str::from_utf8(&record).unwrap().trim_end()
            )
        );
    }
}
