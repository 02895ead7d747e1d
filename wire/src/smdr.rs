//! The switch's native SMDR record: one line of fixed columns, 121 bytes (no caller-name
//! columns) or 153 bytes (with them), CR LF included. On the export port each record is
//! followed by one NUL; in an `S` frame the body is the record, optionally after a page
//! header (form feed, title, a line of `=`, column titles).
//!
//! | columns | field |
//! |---|---|
//! | 2–7 | call id |
//! | 9–14 | extension |
//! | 16–24 | authorisation or trunk |
//! | 26–27, 28, 29–39 | month, `/`, `DD HH:MM:SS` |
//! | 41–48 | duration `HH:MM:SS` |
//! | 50–51 | call-type flag |
//! | 53–70 | dialled digits or status text |
//! | 72–88 | account code |
//! | 90–99 | cost |
//! | 101–116 | caller id |
//! | 118–135, 137–142, 143–150 | caller name, group, ring time (153-byte form) |

use std::fmt;

/// Bytes of the short form, CR LF included.
pub const SHORT_LEN: usize = 121;
/// Bytes of the long form (caller name, group, ring time), CR LF included.
pub const LONG_LEN: usize = 153;

/// Columns of each field: (first, width).
const CALL_ID: (usize, usize) = (2, 6);
const EXTENSION: (usize, usize) = (9, 6);
const TRUNK: (usize, usize) = (16, 9);
const MONTH: (usize, usize) = (26, 2);
const SLASH: usize = 28;
const DAY: (usize, usize) = (29, 2);
const START: (usize, usize) = (32, 8);
const DURATION: (usize, usize) = (41, 8);
const FLAG: (usize, usize) = (50, 2);
const DIGITS: (usize, usize) = (53, 18);
const ACCOUNT: (usize, usize) = (72, 17);
const COST: (usize, usize) = (90, 10);
const CALLER_ID: (usize, usize) = (101, 16);
const CALLER_NAME: (usize, usize) = (118, 18);
const GROUP: (usize, usize) = (137, 6);
const RING: (usize, usize) = (143, 8);

/// A time of day or a duration as the record writes it, `HH:MM:SS`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hms {
    pub hours: u8,
    pub minutes: u8,
    pub seconds: u8,
}

impl Hms {
    /// From a number of seconds (durations of 100 hours or more are written as 99:59:59).
    pub fn from_secs(secs: u64) -> Hms {
        let secs = secs.min(99 * 3600 + 59 * 60 + 59);
        Hms {
            hours: (secs / 3600) as u8,
            minutes: (secs / 60 % 60) as u8,
            seconds: (secs % 60) as u8,
        }
    }

    pub fn secs(&self) -> u32 {
        u32::from(self.hours) * 3600 + u32::from(self.minutes) * 60 + u32::from(self.seconds)
    }
}

impl fmt::Display for Hms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}:{:02}:{:02}",
            self.hours, self.minutes, self.seconds
        )
    }
}

/// The caller-name columns of the 153-byte form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallerColumns {
    pub caller_name: String,
    pub group: String,
    pub ring: Hms,
}

/// One SMDR record, its text fields without their padding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SmdrRecord {
    pub call_id: String,
    pub extension: String,
    /// Authorisation code or trunk.
    pub trunk: String,
    pub month: u8,
    pub day: u8,
    pub start: Hms,
    pub duration: Hms,
    /// `IC`, `IR`, `IA`, `IT`, `SU`, `O`, `I`, `A`, `T`, `OT`, `TT`, `FI`, `FO`…
    pub flag: String,
    /// Dialled digits, or a status text such as `DND ON`.
    pub digits: String,
    pub account: String,
    pub cost: String,
    pub caller_id: String,
    /// Present in the 153-byte form.
    pub caller: Option<CallerColumns>,
}

/// Why bytes are not an SMDR record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SmdrError {
    #[error(
        "an SMDR record is {SHORT_LEN} or {LONG_LEN} bytes ending in CR LF; this is {0} bytes"
    )]
    Length(usize),
    #[error("an SMDR record ends in CR LF")]
    NoLineEnd,
    #[error("an SMDR record is printable text; byte 0x{byte:02X} at column {at} is not")]
    NotText { at: usize, byte: u8 },
    #[error("SMDR column {at}: the {field} {text:?} is not {expected}")]
    Field {
        field: &'static str,
        at: usize,
        text: String,
        expected: &'static str,
    },
}

impl SmdrRecord {
    /// Parses one record (121 or 153 bytes, CR LF included).
    pub fn parse(line: &[u8]) -> Result<SmdrRecord, SmdrError> {
        if line.len() != SHORT_LEN && line.len() != LONG_LEN {
            return Err(SmdrError::Length(line.len()));
        }
        let (text, end) = line.split_at(line.len() - 2);
        if end != b"\r\n" {
            return Err(SmdrError::NoLineEnd);
        }
        if let Some(at) = text.iter().position(|b| !(0x20..0x7F).contains(b)) {
            return Err(SmdrError::NotText { at, byte: text[at] });
        }
        // Checked printable ASCII above.
        let text = std::str::from_utf8(text).expect("ASCII");
        let field = |(at, width): (usize, usize)| text[at..at + width].trim().to_owned();
        if &text[SLASH..=SLASH] != "/" {
            return Err(SmdrError::Field {
                field: "date separator",
                at: SLASH,
                text: text[SLASH..=SLASH].to_owned(),
                expected: "'/'",
            });
        }
        let caller = (line.len() == LONG_LEN)
            .then(|| {
                Ok::<_, SmdrError>(CallerColumns {
                    caller_name: field(CALLER_NAME),
                    group: field(GROUP),
                    ring: hms(text, RING, "ring time")?,
                })
            })
            .transpose()?;
        Ok(SmdrRecord {
            call_id: field(CALL_ID),
            extension: field(EXTENSION),
            trunk: field(TRUNK),
            month: number(text, MONTH, "month", 1..=12)?,
            day: number(text, DAY, "day", 1..=31)?,
            start: hms(text, START, "start time")?,
            duration: hms(text, DURATION, "duration")?,
            flag: field(FLAG),
            digits: field(DIGITS),
            account: field(ACCOUNT),
            cost: field(COST),
            caller_id: field(CALLER_ID),
            caller,
        })
    }

    /// The record's line: 121 bytes, or 153 with the caller columns, CR LF included. A field
    /// longer than its columns is cut; bytes outside printable ASCII become `?`.
    pub fn to_line(&self) -> Vec<u8> {
        let len = if self.caller.is_some() {
            LONG_LEN
        } else {
            SHORT_LEN
        };
        let mut out = vec![b' '; len];
        let mut put = |(at, width): (usize, usize), text: &str| {
            for (slot, b) in out[at..at + width].iter_mut().zip(text.bytes()) {
                *slot = if (0x20..0x7F).contains(&b) { b } else { b'?' };
            }
        };
        put(CALL_ID, &self.call_id);
        put(EXTENSION, &self.extension);
        put(TRUNK, &self.trunk);
        put(MONTH, &format!("{:02}", self.month));
        put((SLASH, 1), "/");
        put(DAY, &format!("{:02}", self.day));
        put(START, &self.start.to_string());
        put(DURATION, &self.duration.to_string());
        put(FLAG, &self.flag);
        put(DIGITS, &self.digits);
        put(ACCOUNT, &self.account);
        put(COST, &self.cost);
        put(CALLER_ID, &self.caller_id);
        if let Some(c) = &self.caller {
            put(CALLER_NAME, &c.caller_name);
            put(GROUP, &c.group);
            put(RING, &c.ring.to_string());
        }
        out[len - 2..].copy_from_slice(b"\r\n");
        out
    }
}

/// Splits an `S` record body into its page header (if the switch sent one) and the record:
/// the record is the last 121 or 153 bytes, and a header starts with a form feed.
pub fn split_page_header(body: &[u8]) -> (Option<&[u8]>, &[u8]) {
    if body.first() != Some(&0x0C) {
        return (None, body);
    }
    for len in [LONG_LEN, SHORT_LEN] {
        if body.len() > len {
            let (header, record) = body.split_at(body.len() - len);
            if header.ends_with(b"\r\n") && SmdrRecord::parse(record).is_ok() {
                return (Some(header), record);
            }
        }
    }
    (None, body)
}

/// The page header a switch prints before a page of records.
pub fn page_header(site: &str, month: u8, day: u8, time: Hms, long: bool) -> Vec<u8> {
    let width = if long { LONG_LEN } else { SHORT_LEN } - 2;
    let mut out = vec![0x0C];
    out.extend_from_slice(
        format!("SMDR REPORT FOR {site} {month:02}/{day:02} {time}\r\n").as_bytes(),
    );
    out.extend(std::iter::repeat_n(b'=', width));
    out.extend_from_slice(b"\r\n");
    let mut titles = vec![b' '; width];
    let mut names = vec![
        (CALL_ID.0, "CALLID"),
        (EXTENSION.0, "EXT"),
        (TRUNK.0, "TRUNK"),
        (MONTH.0, "DATE"),
        (START.0, "TIME"),
        (DURATION.0, "DURATION"),
        (FLAG.0, "TY"),
        (DIGITS.0, "DIALLED"),
        (ACCOUNT.0, "ACCOUNT"),
        (COST.0, "COST"),
        (CALLER_ID.0, "CALLER ID"),
    ];
    if long {
        names.extend([
            (CALLER_NAME.0, "NAME"),
            (GROUP.0, "GROUP"),
            (RING.0, "RING"),
        ]);
    }
    for (at, name) in names {
        titles[at..at + name.len()].copy_from_slice(name.as_bytes());
    }
    out.extend_from_slice(&titles);
    out.extend_from_slice(b"\r\n");
    out
}

fn number(
    text: &str,
    (at, width): (usize, usize),
    field: &'static str,
    range: std::ops::RangeInclusive<u8>,
) -> Result<u8, SmdrError> {
    let raw = &text[at..at + width];
    match raw.trim().parse::<u8>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(SmdrError::Field {
            field,
            at,
            text: raw.to_owned(),
            expected: "a number in range",
        }),
    }
}

fn hms(text: &str, (at, width): (usize, usize), field: &'static str) -> Result<Hms, SmdrError> {
    let raw = &text[at..at + width];
    let bad = || SmdrError::Field {
        field,
        at,
        text: raw.to_owned(),
        expected: "HH:MM:SS",
    };
    let b = raw.as_bytes();
    if b.len() != 8 || b[2] != b':' || b[5] != b':' {
        return Err(bad());
    }
    let two = |i: usize| -> Result<u8, SmdrError> {
        match (b[i], b[i + 1]) {
            (h @ b'0'..=b'9', l @ b'0'..=b'9') => Ok((h - b'0') * 10 + (l - b'0')),
            _ => Err(bad()),
        }
    };
    let t = Hms {
        hours: two(0)?,
        minutes: two(3)?,
        seconds: two(6)?,
    };
    if t.minutes > 59 || t.seconds > 59 {
        return Err(bad());
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record of the example, short form.
    fn example() -> SmdrRecord {
        SmdrRecord {
            call_id: "59369".into(),
            extension: "2501".into(),
            trunk: "8503".into(),
            month: 12,
            day: 23,
            start: Hms {
                hours: 8,
                minutes: 45,
                seconds: 42,
            },
            duration: Hms::from_secs(4 * 60 + 38),
            flag: "IC".into(),
            digits: "0712345600".into(),
            account: "Incoming".into(),
            cost: "0.0".into(),
            caller_id: "0498765478".into(),
            caller: None,
        }
    }

    #[test]
    fn a_short_record_is_written_column_for_column() {
        let line = example().to_line();
        assert_eq!(line.len(), 121);
        assert_eq!(
            String::from_utf8(line.clone()).unwrap(),
            "  59369  2501   8503      12/23 08:45:42 00:04:38 IC 0712345600         Incoming          0.0        0498765478        \r\n"
        );
        assert_eq!(&line[2..7], b"59369");
        assert_eq!(&line[50..52], b"IC");
        assert_eq!(&line[101..111], b"0498765478");
        assert_eq!(SmdrRecord::parse(&line), Ok(example()));
    }

    #[test]
    fn a_long_record_carries_the_caller_columns() {
        let mut r = example();
        r.caller = Some(CallerColumns {
            caller_name: "ACME SALES".into(),
            group: "5004".into(),
            ring: Hms::from_secs(1),
        });
        let line = r.to_line();
        assert_eq!(line.len(), 153);
        assert_eq!(&line[118..128], b"ACME SALES");
        assert_eq!(&line[137..141], b"5004");
        assert_eq!(&line[143..151], b"00:00:01");
        assert_eq!(SmdrRecord::parse(&line), Ok(r));
    }

    #[test]
    fn what_is_not_a_record_is_refused_with_the_reason() {
        let line = example().to_line();
        assert_eq!(SmdrRecord::parse(&line[..120]), Err(SmdrError::Length(120)));
        let mut bad = line.clone();
        bad[119] = b' ';
        assert_eq!(SmdrRecord::parse(&bad), Err(SmdrError::NoLineEnd));
        let mut bad = line.clone();
        bad[26..28].copy_from_slice(b"13");
        assert_eq!(
            SmdrRecord::parse(&bad).unwrap_err().to_string(),
            "SMDR column 26: the month \"13\" is not a number in range"
        );
        let mut bad = line.clone();
        bad[44] = b'x';
        assert!(matches!(
            SmdrRecord::parse(&bad),
            Err(SmdrError::Field {
                field: "duration",
                ..
            })
        ));
        let mut bad = line;
        bad[60] = 0;
        assert_eq!(
            SmdrRecord::parse(&bad),
            Err(SmdrError::NotText { at: 60, byte: 0 })
        );
    }

    #[test]
    fn a_page_header_is_split_from_its_record() {
        let record = example().to_line();
        let mut body = page_header("MAIN", 12, 23, Hms::default(), false);
        let header_len = body.len();
        body.extend_from_slice(&record);
        let (header, rest) = split_page_header(&body);
        assert_eq!(header.map(<[u8]>::len), Some(header_len));
        assert_eq!(rest, &record[..]);
        assert_eq!(split_page_header(&record), (None, &record[..]));
    }
}
