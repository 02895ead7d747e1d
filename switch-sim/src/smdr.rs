//! The switch's SMDR printer: one native record (see [`wire::smdr`]) per leg of every outside
//! call, in an `S` frame, with the call id shared by the legs of one call and an optional page
//! header every N records.

use bytes::{BufMut, Bytes, BytesMut};
use wire::frame::{put_header, NO_INVOKE};
use wire::smdr::{self, CallerColumns, Hms, SmdrRecord};
use wire::Kind;

/// Which of the switch's two record layouts it prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// 121 bytes: no caller-name columns.
    #[default]
    Short,
    /// 153 bytes: caller name, group and ring time.
    Long,
}

/// How the switch prints SMDR (MMC 725).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmdrOptions {
    pub layout: Layout,
    /// A page header before every N-th record (0: none).
    pub page_every: u32,
}

/// What happened to one leg of a call, as its record's flag says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leg {
    /// `O`: an outgoing call, answered.
    Outgoing,
    /// `OT`: an outgoing call transferred by the extension.
    OutgoingTransferred,
    /// `IC`: an incoming call, answered.
    Incoming,
    /// `IA`: an incoming call abandoned while ringing.
    Abandoned,
    /// `IT`: an incoming call transferred by the extension.
    Transferred,
    /// `FI`: an incoming call answered at the extension it was forwarded to.
    Forwarded,
}

impl Leg {
    pub fn flag(self) -> &'static str {
        match self {
            Leg::Outgoing => "O",
            Leg::OutgoingTransferred => "OT",
            Leg::Incoming => "IC",
            Leg::Abandoned => "IA",
            Leg::Transferred => "IT",
            Leg::Forwarded => "FI",
        }
    }
}

/// One leg, with the switch times (Unix ms) it needs.
#[derive(Clone, Debug)]
pub struct LegRecord<'a> {
    pub call_id: u32,
    pub leg: Leg,
    pub extension: &'a str,
    pub trunk: &'a str,
    /// Dialled digits (outgoing) or the number called (incoming).
    pub digits: &'a str,
    pub caller_id: &'a str,
    /// When the call reached the extension.
    pub started_ms: u64,
    /// When it was answered, if it was.
    pub answered_ms: Option<u64>,
    pub ended_ms: u64,
    /// The UCD group the call came through, if any.
    pub group: &'a str,
}

/// Numbers records and prints them.
#[derive(Debug, Default)]
pub struct Printer {
    options: SmdrOptions,
    printed: u64,
}

impl Printer {
    pub fn new(options: SmdrOptions) -> Printer {
        Printer {
            options,
            printed: 0,
        }
    }

    /// The record of `leg` as the switch prints it, in an `S` frame (with a page header first
    /// when one is due).
    pub fn print(&mut self, leg: &LegRecord<'_>) -> Bytes {
        let record = self.record(leg);
        let mut body = Vec::with_capacity(smdr::LONG_LEN);
        let every = u64::from(self.options.page_every);
        if every > 0 && self.printed.is_multiple_of(every) {
            body.extend(smdr::page_header(
                "OFFICESERV",
                record.month,
                record.day,
                record.start,
                self.options.layout == Layout::Long,
            ));
        }
        self.printed += 1;
        body.extend(record.to_line());
        let mut out = BytesMut::with_capacity(6 + body.len());
        put_header(&mut out, Kind::Smdr, b'S', NO_INVOKE, body.len());
        out.put_slice(&body);
        out.freeze()
    }

    /// The record alone.
    pub fn record(&self, leg: &LegRecord<'_>) -> SmdrRecord {
        let start_ms = leg.answered_ms.unwrap_or(leg.started_ms);
        let (month, day, start) = month_day_time(start_ms);
        let talk = leg
            .answered_ms
            .map_or(0, |a| leg.ended_ms.saturating_sub(a) / 1000);
        let ring = leg
            .answered_ms
            .unwrap_or(leg.ended_ms)
            .saturating_sub(leg.started_ms)
            / 1000;
        let cost = match leg.leg {
            // Ten cents a started minute.
            Leg::Outgoing | Leg::OutgoingTransferred => {
                format!("{:.2}", talk.div_ceil(60) as f64 * 0.10)
            }
            _ => "0.00".to_owned(),
        };
        SmdrRecord {
            call_id: leg.call_id.to_string(),
            extension: leg.extension.to_owned(),
            trunk: leg.trunk.to_owned(),
            month,
            day,
            start,
            duration: Hms::from_secs(talk),
            flag: leg.leg.flag().to_owned(),
            digits: leg.digits.to_owned(),
            account: String::new(),
            cost,
            caller_id: leg.caller_id.to_owned(),
            caller: (self.options.layout == Layout::Long).then(|| CallerColumns {
                caller_name: if leg.caller_id.is_empty() {
                    String::new()
                } else {
                    format!("CALLER {}", leg.caller_id)
                },
                group: leg.group.to_owned(),
                ring: Hms::from_secs(ring),
            }),
        }
    }
}

/// Month, day and time of day (UTC) of a Unix time in ms.
fn month_day_time(unix_ms: u64) -> (u8, u8, Hms) {
    let secs = unix_ms / 1000;
    let (_, month, day) = wire::date::civil_from_days((secs / 86_400) as i64);
    (month as u8, day as u8, Hms::from_secs(secs % 86_400))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(leg: Leg) -> LegRecord<'static> {
        LegRecord {
            call_id: 59369,
            leg,
            extension: "2201",
            trunk: "701",
            digits: "0712345600",
            caller_id: "0498765478",
            started_ms: 1_766_479_500_000,
            answered_ms: Some(1_766_479_542_000),
            ended_ms: 1_766_479_820_000,
            group: "",
        }
    }

    #[test]
    fn an_outgoing_call_is_printed_in_the_native_columns() {
        let mut p = Printer::new(SmdrOptions::default());
        let frame = p.print(&leg(Leg::Outgoing));
        assert_eq!(&frame[..6], &[0, 125, b'S', b'S', 0xFF, 0xFF]);
        assert_eq!(
            std::str::from_utf8(&frame[6..]).unwrap(),
            "  59369  2201   701       12/23 08:45:42 00:04:38 O  0712345600                           0.50       0498765478        \r\n"
        );
    }

    #[test]
    fn the_long_layout_adds_ring_time_and_a_page_header_comes_when_due() {
        let mut p = Printer::new(SmdrOptions {
            layout: Layout::Long,
            page_every: 2,
        });
        let mut abandoned = leg(Leg::Abandoned);
        abandoned.answered_ms = None;
        let first = p.print(&abandoned);
        let (header, record) = smdr::split_page_header(&first[6..]);
        assert!(header.is_some_and(|h| h.starts_with(b"\x0cSMDR REPORT FOR OFFICESERV 12/23 ")));
        let r = SmdrRecord::parse(record).unwrap();
        assert_eq!(r.flag, "IA");
        assert_eq!(r.duration, Hms::default());
        assert_eq!(r.caller.unwrap().ring, Hms::from_secs(320));
        let second = p.print(&leg(Leg::Incoming));
        assert_eq!(second.len(), 6 + smdr::LONG_LEN);
        let third = p.print(&leg(Leg::Incoming));
        assert!(third.len() > 6 + smdr::LONG_LEN);
    }
}
