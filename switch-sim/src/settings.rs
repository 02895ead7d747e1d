//! What a simulated switch is: model, software, MAC, capabilities, station table, passwords.

use std::net::IpAddr;

use wire::{Station, StationKind, Str8};

use crate::smdr::SmdrOptions;

/// How the switch answers requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answering {
    /// Through the call model: real results and the events that follow.
    CallModel,
    /// Result 0 and the request body, nothing else (for relay tests that check bytes).
    Echo,
    /// Never answer (to exercise timeouts).
    Silent,
}

#[derive(Clone, Debug)]
pub struct Settings {
    pub model: String,
    pub software: String,
    pub mac: [u8; 6],
    /// `o` caps: bit0 Call+, bit1 SMDR, bit2 UCD.
    pub caps: u8,
    pub stations: Vec<Station>,
    /// Stations per `c` page.
    pub page_size: usize,
    /// MMC 841.
    pub easyset_password: String,
    /// MMC 830: the only address allowed to open the CTI link (`None`: any).
    pub cti_server: Option<IpAddr>,
    pub answering: Answering,
    /// Whether `H` from the relay is answered with `h`.
    pub heartbeat_replies: bool,
    /// Whether `O` is answered at all (false: the open hangs, as with a switch that is busy).
    pub answer_opens: bool,
    /// Delay before each answer ("answer slowly").
    pub answer_delay: std::time::Duration,
    /// Wall time (Unix ms) at start, for SMDR dates; `None`: the system clock.
    pub epoch_ms: Option<u64>,
    /// Append a sequence number (u32, counting every event this switch has sent) to each
    /// event's body and keep a log of the events sent, so that a checker can tell exactly
    /// which events each application should have received, in which order.
    pub tag_events: bool,
    /// How SMDR records are printed (MMC 725).
    pub smdr: SmdrOptions,
}

impl Settings {
    /// An OfficeServ-like switch: keysets 2201–2232, trunks 701–708, groups 500–503.
    pub fn officeserv(mac_last: u8) -> Settings {
        let mut stations = Vec::new();
        let mut add = |name: String, kind| {
            stations.push(Station {
                station: Str8::lossy(&name),
                kind,
            })
        };
        (2201..=2232).for_each(|n| add(n.to_string(), StationKind::Keyset));
        (701..=708).for_each(|n| add(n.to_string(), StationKind::Trunk));
        (500..=503).for_each(|n| add(n.to_string(), StationKind::Group));
        Settings {
            model: "OfficeServ 7200".into(),
            software: "SVMi-20 4.60".into(),
            mac: [0x00, 0x00, 0xF0, 0x5A, 0x00, mac_last],
            caps: 0b111,
            stations,
            page_size: 16,
            easyset_password: "1234".into(),
            cti_server: None,
            answering: Answering::CallModel,
            heartbeat_replies: true,
            answer_opens: true,
            answer_delay: std::time::Duration::ZERO,
            epoch_ms: None,
            tag_events: false,
            smdr: SmdrOptions::default(),
        }
    }
}
