//! The call model: stations, calls between them, and what the switch says about each step.
//!
//! Request bodies (opaque to the relay; this is the simulator's own convention):
//! - `K` make call: `device str8`, `digits str8`
//! - `N` answer, `D` clear, `H` hold, `G` retrieve, `Y` query state: `device str8`
//! - `T` transfer: `device str8`, `target str8` (the device's partner goes to the target)
//! - `F` set forward: `device str8`, `target str8` (empty cancels)
//! - `+` Call+ display: `device str8`, `text str8`
//!
//! Answer results: 0 done, 1 unknown device, 2 busy, 3 no call in a state that allows it,
//! 4 invalid number, 5 malformed request, 6 unknown request.
//!
//! Events: `device str8`, `call u16`, `other str8`, then per code: `n` ringing, `d` dialling,
//! `e` established, `x` cleared, `h` held, `g` retrieved, `t` transferred (other = new
//! partner), `f` forward changed (other = target), `s` device state (`state u8`: 0 idle,
//! 1 dialling, 2 ringing, 3 connected, 4 held).

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use wire::frame::{put_header, NO_INVOKE};
use wire::{FieldReader, Kind, Station, StationKind, Str8};

use crate::smdr::{Leg, LegRecord, Printer, SmdrOptions};

pub mod result {
    pub const OK: u8 = 0;
    pub const UNKNOWN_DEVICE: u8 = 1;
    pub const BUSY: u8 = 2;
    pub const NO_CALL: u8 = 3;
    pub const INVALID_NUMBER: u8 = 4;
    pub const MALFORMED: u8 = 5;
    pub const UNKNOWN_REQUEST: u8 = 6;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Idle = 0,
    Dialling = 1,
    Ringing = 2,
    Connected = 3,
    Held = 4,
}

#[derive(Clone, Debug)]
struct Call {
    caller: String,
    callee: String,
    digits: String,
    /// The trunk carrying an outside party, if any.
    trunk: Option<String>,
    /// Milliseconds (switch clock) when the call reached its current extension.
    started_ms: u64,
    /// Milliseconds (switch clock) when the call was answered.
    answered_ms: Option<u64>,
    /// The SMDR call id, shared by the records of every leg.
    record_id: u32,
    /// It rang at the extension a forward sent it to.
    forwarded: bool,
}

#[derive(Clone, Debug)]
struct Device {
    kind: StationKind,
    state: State,
    call: Option<u16>,
    forward: Option<String>,
}

/// What one step produced: the answer's result and extra bytes, and frames to send after it.
#[derive(Debug, Default)]
pub struct Outcome {
    pub result: u8,
    pub extra: Vec<u8>,
    pub frames: Vec<Bytes>,
}

/// The switch's stations and calls.
pub struct CallModel {
    devices: BTreeMap<String, Device>,
    calls: BTreeMap<u16, Call>,
    next_call: u16,
    /// Prints SMDR records when caps bit1 sends them to the CTI link.
    smdr: Option<Printer>,
    next_record_id: u32,
    /// Finished calls per UCD group: (offered, answered).
    ucd: BTreeMap<String, (u32, u32)>,
}

impl CallModel {
    pub fn new(stations: &[Station], caps: u8) -> CallModel {
        let devices = stations
            .iter()
            .map(|s| {
                (
                    s.station.to_string(),
                    Device {
                        kind: s.kind,
                        state: State::Idle,
                        call: None,
                        forward: None,
                    },
                )
            })
            .collect();
        CallModel {
            devices,
            calls: BTreeMap::new(),
            next_call: 1,
            smdr: (caps & 0b010 != 0).then(|| Printer::new(SmdrOptions::default())),
            next_record_id: 1,
            ucd: BTreeMap::new(),
        }
    }

    /// Prints SMDR with `options` (when caps send SMDR at all).
    pub fn with_smdr(mut self, options: SmdrOptions) -> CallModel {
        if self.smdr.is_some() {
            self.smdr = Some(Printer::new(options));
        }
        self
    }

    pub fn state(&self, device: &str) -> Option<State> {
        self.devices.get(device).map(|d| d.state)
    }

    /// Idle keysets, in order (for traffic generators).
    pub fn idle_keysets(&self) -> Vec<String> {
        self.devices
            .iter()
            .filter(|(_, d)| d.kind == StationKind::Keyset && d.state == State::Idle)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Keysets and trunks that are in a call, in order.
    pub fn busy_stations(&self) -> Vec<(String, State)> {
        self.devices
            .iter()
            .filter(|(_, d)| {
                matches!(d.kind, StationKind::Keyset | StationKind::Trunk) && d.state != State::Idle
            })
            .map(|(n, d)| (n.clone(), d.state))
            .collect()
    }

    pub fn trunks(&self) -> Vec<String> {
        self.devices
            .iter()
            .filter(|(_, d)| d.kind == StationKind::Trunk)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Handles a request (`code`, body as the switch receives it) at switch time `now_ms`.
    pub fn request(&mut self, code: u8, body: &[u8], now_ms: u64) -> Outcome {
        let mut r = FieldReader::new(body);
        let text = |field: &[u8]| String::from_utf8_lossy(field).into_owned();
        let Some(device) = r.str8().map(text) else {
            return fail(result::MALFORMED);
        };
        let second = r.str8().map(text);
        if !matches!(
            code,
            b'K' | b'N' | b'D' | b'H' | b'G' | b'T' | b'F' | b'Y' | b'+'
        ) {
            return fail(result::UNKNOWN_REQUEST);
        }
        if !self.devices.contains_key(&device) {
            return fail(result::UNKNOWN_DEVICE);
        }
        match code {
            b'K' => match second {
                Some(digits) => self.make_call(&device, &digits, None, now_ms),
                None => fail(result::MALFORMED),
            },
            b'N' => self.answer(&device, now_ms),
            b'D' => self.clear(&device, now_ms),
            b'H' => self.hold(&device, true),
            b'G' => self.hold(&device, false),
            b'T' => match second {
                Some(target) => self.transfer(&device, &target, now_ms),
                None => fail(result::MALFORMED),
            },
            b'F' => match second {
                Some(target) => self.forward(&device, &target),
                None => fail(result::MALFORMED),
            },
            b'Y' => {
                let state = self.devices[&device].state;
                Outcome {
                    result: result::OK,
                    extra: vec![state as u8],
                    frames: vec![self.event(b's', &device, 0, "", &[state as u8])],
                }
            }
            _ => Outcome::default(), // `+`: shown on the phone's display; nothing to report.
        }
    }

    /// An outside call arriving on `trunk` for `device` at switch time `now_ms`.
    pub fn incoming(&mut self, trunk: &str, device: &str, now_ms: u64) -> Outcome {
        match self.devices.get(trunk) {
            Some(d) if d.kind == StationKind::Trunk && d.state == State::Idle => {}
            Some(_) => return fail(result::BUSY),
            None => return fail(result::UNKNOWN_DEVICE),
        }
        self.make_call(trunk, device, Some(trunk.to_owned()), now_ms)
    }

    fn make_call(
        &mut self,
        caller: &str,
        digits: &str,
        trunk: Option<String>,
        now_ms: u64,
    ) -> Outcome {
        if self.devices[caller].state != State::Idle {
            return fail(result::BUSY);
        }
        // An outside number (leading 0 or 9) goes out on the first idle trunk.
        let mut forwarded = false;
        let (callee, trunk) = if self.devices.contains_key(digits) {
            let mut callee = digits.to_owned();
            if let Some(fwd) = self.devices[digits].forward.clone() {
                callee = fwd;
                forwarded = true;
            }
            (callee, trunk)
        } else if digits.starts_with('0') || digits.starts_with('9') {
            match self
                .devices
                .iter()
                .find(|(_, d)| d.kind == StationKind::Trunk && d.state == State::Idle)
            {
                Some((t, _)) => (t.clone(), Some(t.clone())),
                None => return fail(result::BUSY),
            }
        } else {
            return fail(result::INVALID_NUMBER);
        };
        if callee == caller || self.devices[&callee].state != State::Idle {
            return fail(result::BUSY);
        }
        let id = self.next_call;
        self.next_call = self.next_call.checked_add(1).unwrap_or(1);
        let record_id = self.next_record_id;
        // Six columns of call id.
        self.next_record_id = if record_id >= 999_999 {
            1
        } else {
            record_id + 1
        };
        self.calls.insert(
            id,
            Call {
                caller: caller.to_owned(),
                callee: callee.clone(),
                digits: digits.to_owned(),
                trunk,
                started_ms: now_ms,
                answered_ms: None,
                record_id,
                forwarded,
            },
        );
        self.set(caller, State::Dialling, Some(id));
        self.set(&callee, State::Ringing, Some(id));
        let mut out = Outcome::default();
        out.frames.push(self.event(b'd', caller, id, &callee, &[]));
        out.frames.push(self.event(b'n', &callee, id, caller, &[]));
        out
    }

    fn answer(&mut self, device: &str, now_ms: u64) -> Outcome {
        let Some(call) = self.call_of(device, &[State::Ringing]) else {
            return fail(result::NO_CALL);
        };
        let c = self.calls.get_mut(&call).expect("listed");
        c.answered_ms = Some(now_ms);
        let (caller, callee) = (c.caller.clone(), c.callee.clone());
        self.set(&caller, State::Connected, Some(call));
        self.set(&callee, State::Connected, Some(call));
        let mut out = Outcome::default();
        out.frames
            .push(self.event(b'e', &caller, call, &callee, &[]));
        out.frames
            .push(self.event(b'e', &callee, call, &caller, &[]));
        out
    }

    fn clear(&mut self, device: &str, now_ms: u64) -> Outcome {
        let Some(id) = self.call_of(
            device,
            &[
                State::Dialling,
                State::Ringing,
                State::Connected,
                State::Held,
            ],
        ) else {
            return fail(result::NO_CALL);
        };
        let call = self.calls.remove(&id).expect("listed");
        self.set(&call.caller, State::Idle, None);
        self.set(&call.callee, State::Idle, None);
        let mut out = Outcome::default();
        out.frames
            .push(self.event(b'x', &call.caller, id, &call.callee, &[]));
        out.frames
            .push(self.event(b'x', &call.callee, id, &call.caller, &[]));
        if let Some(group) = [&call.caller, &call.callee]
            .into_iter()
            .find(|d| self.devices[*d].kind == StationKind::Group)
        {
            let entry = self.ucd.entry(group.clone()).or_default();
            entry.0 += 1;
            entry.1 += u32::from(call.answered_ms.is_some());
        }
        if let Some(leg) = self.leg_at_end(&call) {
            out.frames.extend(self.print(&call, leg, now_ms));
        }
        out
    }

    /// The SMDR leg a cleared outside call ends with: internal calls print nothing, nor does
    /// an outgoing call nobody answered.
    fn leg_at_end(&self, call: &Call) -> Option<Leg> {
        let trunk = call.trunk.as_deref()?;
        let incoming = call.caller == trunk;
        Some(match (incoming, call.answered_ms.is_some()) {
            (false, true) => Leg::Outgoing,
            (false, false) => return None,
            (true, true) if call.forwarded => Leg::Forwarded,
            (true, true) => Leg::Incoming,
            (true, false) => Leg::Abandoned,
        })
    }

    /// The record of one leg of an outside call, if the switch prints SMDR.
    fn print(&mut self, call: &Call, leg: Leg, now_ms: u64) -> Option<Bytes> {
        let printer = self.smdr.as_mut()?;
        let trunk = call.trunk.as_deref()?;
        let incoming = call.caller == trunk;
        let extension = if incoming { &call.callee } else { &call.caller };
        let group = if self.devices.get(extension).map(|d| d.kind) == Some(StationKind::Group) {
            extension.as_str()
        } else {
            ""
        };
        // An outside caller's number, made up from the call id, as the trunk would present it.
        let caller_id = if incoming {
            format!("04{:08}", call.record_id)
        } else {
            String::new()
        };
        Some(printer.print(&LegRecord {
            call_id: call.record_id,
            leg,
            extension,
            trunk,
            digits: &call.digits,
            caller_id: &caller_id,
            started_ms: call.started_ms,
            answered_ms: call.answered_ms,
            ended_ms: now_ms,
            group,
        }))
    }

    fn hold(&mut self, device: &str, hold: bool) -> Outcome {
        let from = if hold { State::Connected } else { State::Held };
        let Some(id) = self.call_of(device, &[from]) else {
            return fail(result::NO_CALL);
        };
        let other = self.partner(id, device);
        let to = if hold { State::Held } else { State::Connected };
        self.set(device, to, Some(id));
        let code = if hold { b'h' } else { b'g' };
        let mut out = Outcome::default();
        out.frames.push(self.event(code, device, id, &other, &[]));
        out.frames.push(self.event(code, &other, id, device, &[]));
        out
    }

    fn transfer(&mut self, device: &str, target: &str, now_ms: u64) -> Outcome {
        let Some(id) = self.call_of(device, &[State::Connected, State::Held]) else {
            return fail(result::NO_CALL);
        };
        if !self.devices.contains_key(target) {
            return fail(result::INVALID_NUMBER);
        }
        if self.devices[target].state != State::Idle {
            return fail(result::BUSY);
        }
        let other = self.partner(id, device);
        // An outside call's leg at this extension ends here, with a record of its own.
        let before = self.calls[&id].clone();
        let outgoing = before.trunk.as_deref().is_some_and(|t| t != before.caller);
        let record = match (before.trunk.is_some(), before.answered_ms.is_some()) {
            (true, true) => {
                let leg = if outgoing {
                    Leg::OutgoingTransferred
                } else {
                    Leg::Transferred
                };
                self.print(&before, leg, now_ms)
            }
            _ => None,
        };
        let call = self.calls.get_mut(&id).expect("listed");
        if call.caller == device {
            call.caller = other.clone();
        }
        call.callee = target.to_owned();
        call.answered_ms = None;
        call.started_ms = now_ms;
        call.forwarded = false;
        self.set(device, State::Idle, None);
        self.set(&other, State::Dialling, Some(id));
        self.set(target, State::Ringing, Some(id));
        let mut out = Outcome::default();
        out.frames.push(self.event(b't', device, id, target, &[]));
        out.frames.push(self.event(b't', &other, id, target, &[]));
        out.frames.push(self.event(b'n', target, id, &other, &[]));
        out.frames.extend(record);
        out
    }

    fn forward(&mut self, device: &str, target: &str) -> Outcome {
        if !target.is_empty() && (!self.devices.contains_key(target) || target == device) {
            return fail(result::INVALID_NUMBER);
        }
        let d = self.devices.get_mut(device).expect("checked");
        d.forward = (!target.is_empty()).then(|| target.to_owned());
        Outcome {
            result: result::OK,
            extra: Vec::new(),
            frames: vec![self.event(b'f', device, 0, target, &[])],
        }
    }

    /// A UCD statistics record per group that has had calls, as the switch prints it.
    pub fn ucd_records(&self) -> Vec<Bytes> {
        self.ucd
            .iter()
            .map(|(group, (offered, answered))| {
                let line = format!(
                    "UCD GROUP {group} OFFERED {offered:>4} ANSWERED {answered:>4} ABANDONED {:>4}",
                    offered - answered
                );
                record_frame(Kind::Ucd, b'U', &line)
            })
            .collect()
    }

    fn call_of(&self, device: &str, states: &[State]) -> Option<u16> {
        let d = self.devices.get(device)?;
        states.contains(&d.state).then_some(d.call).flatten()
    }

    fn partner(&self, id: u16, device: &str) -> String {
        let c = &self.calls[&id];
        if c.caller == device {
            c.callee.clone()
        } else {
            c.caller.clone()
        }
    }

    fn set(&mut self, device: &str, state: State, call: Option<u16>) {
        if let Some(d) = self.devices.get_mut(device) {
            d.state = state;
            d.call = call;
        }
    }

    fn event(&self, code: u8, device: &str, call: u16, other: &str, extra: &[u8]) -> Bytes {
        let device = Str8::lossy(device);
        let other = Str8::lossy(other);
        let len = 1 + device.len() + 2 + 1 + other.len() + extra.len();
        let mut out = BytesMut::with_capacity(6 + len);
        put_header(&mut out, Kind::Event, code, NO_INVOKE, len);
        out.put_u8(device.len() as u8);
        out.put_slice(device.as_bytes());
        out.put_u16(call);
        out.put_u8(other.len() as u8);
        out.put_slice(other.as_bytes());
        out.put_slice(extra);
        out.freeze()
    }
}

fn fail(result: u8) -> Outcome {
    Outcome {
        result,
        ..Outcome::default()
    }
}

fn record_frame(kind: Kind, code: u8, line: &str) -> Bytes {
    let mut out = BytesMut::new();
    put_header(&mut out, kind, code, NO_INVOKE, line.len());
    out.put_slice(line.as_bytes());
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;

    fn body(parts: &[&str]) -> Vec<u8> {
        let mut b = Vec::new();
        for p in parts {
            b.push(p.len() as u8);
            b.extend_from_slice(p.as_bytes());
        }
        b
    }

    fn codes(o: &Outcome) -> Vec<(char, String)> {
        o.frames
            .iter()
            .filter(|f| f[2] == b'E')
            .map(|f| {
                let n = f[6] as usize;
                (
                    f[3] as char,
                    String::from_utf8_lossy(&f[7..7 + n]).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn a_call_from_dialling_to_cleared_with_its_smdr_record() {
        let s = Settings::officeserv(1);
        let mut m = CallModel::new(&s.stations, s.caps);
        let o = m.request(b'K', &body(&["2201", "2202"]), 0);
        assert_eq!(o.result, 0);
        assert_eq!(codes(&o), [('d', "2201".into()), ('n', "2202".into())]);
        assert_eq!(
            m.request(b'K', &body(&["2203", "2202"]), 0).result,
            result::BUSY
        );
        assert_eq!(m.request(b'N', &body(&["2203"]), 0).result, result::NO_CALL);
        let o = m.request(b'N', &body(&["2202"]), 1_764_000_000_000);
        assert_eq!(codes(&o), [('e', "2201".into()), ('e', "2202".into())]);
        let o = m.request(b'D', &body(&["2201"]), 1_764_000_083_000);
        // An internal call: no SMDR record.
        assert_eq!(codes(&o), [('x', "2201".into()), ('x', "2202".into())]);
        assert_eq!(o.frames.len(), 2);
        assert_eq!(m.state("2201"), Some(State::Idle));
    }

    /// The SMDR records of an outside call's frames.
    fn records(o: &Outcome) -> Vec<wire::smdr::SmdrRecord> {
        o.frames
            .iter()
            .filter(|f| f[2] == b'S')
            .map(|f| wire::smdr::SmdrRecord::parse(&f[6..]).unwrap())
            .collect()
    }

    #[test]
    fn outside_calls_print_one_native_record_per_leg_with_one_call_id() {
        let s = Settings::officeserv(1);
        let mut m = CallModel::new(&s.stations, s.caps);
        const T0: u64 = 1_764_000_000_000; // 2025-11-24 16:00:00 UTC
                                           // Outgoing, answered, 83 s: `O`.
        m.request(b'K', &body(&["2201", "0212345678"]), T0);
        m.request(b'N', &body(&["701"]), T0 + 5_000);
        let o = m.request(b'D', &body(&["2201"]), T0 + 88_000);
        let r = &records(&o)[0];
        assert_eq!(
            String::from_utf8(r.to_line()).unwrap(),
            "  1      2201   701       11/24 16:00:05 00:01:23 O  0212345678                           0.20                         \r\n"
        );
        // Incoming, answered at 2202, transferred to 2203 after 60 s, then 30 s there:
        // `IT` then `IC`, both with call id 2.
        m.incoming("702", "2202", T0);
        m.request(b'N', &body(&["2202"]), T0 + 10_000);
        let o = m.request(b'T', &body(&["2202", "2203"]), T0 + 70_000);
        let it = records(&o);
        m.request(b'N', &body(&["2203"]), T0 + 72_000);
        let o = m.request(b'D', &body(&["2203"]), T0 + 102_000);
        let ic = records(&o);
        let legs: Vec<(&str, &str, &str, u32)> = it
            .iter()
            .chain(&ic)
            .map(|r| {
                (
                    r.call_id.as_str(),
                    r.flag.as_str(),
                    r.extension.as_str(),
                    r.duration.secs(),
                )
            })
            .collect();
        assert_eq!(legs, [("2", "IT", "2202", 60), ("2", "IC", "2203", 30)]);
        assert_eq!(ic[0].caller_id, "0400000002");
        // Incoming, never answered: `IA`. An outgoing call nobody answered prints nothing.
        m.incoming("703", "2204", T0);
        let o = m.request(b'D', &body(&["2204"]), T0 + 20_000);
        assert_eq!(records(&o)[0].flag, "IA");
        m.request(b'K', &body(&["2205", "0299"]), T0);
        let o = m.request(b'D', &body(&["2205"]), T0 + 20_000);
        assert!(records(&o).is_empty());
        // Forwarded: `FI` at the extension the call was sent to.
        m.request(b'F', &body(&["2206", "2207"]), T0);
        m.incoming("704", "2206", T0);
        m.request(b'N', &body(&["2207"]), T0 + 1_000);
        let o = m.request(b'D', &body(&["2207"]), T0 + 2_000);
        assert_eq!(records(&o)[0].flag, "FI");
        assert_eq!(records(&o)[0].extension, "2207");
    }

    #[test]
    fn outside_calls_take_a_trunk_and_unknown_things_are_refused() {
        let s = Settings::officeserv(1);
        let mut m = CallModel::new(&s.stations, s.caps);
        let o = m.request(b'K', &body(&["2201", "0212345678"]), 0);
        assert_eq!(codes(&o), [('d', "2201".into()), ('n', "701".into())]);
        assert_eq!(
            m.request(b'K', &body(&["2299", "2202"]), 0).result,
            result::UNKNOWN_DEVICE
        );
        assert_eq!(
            m.request(b'K', &body(&["2203", "5555"]), 0).result,
            result::INVALID_NUMBER
        );
        assert_eq!(
            m.request(b'Z', &body(&["2203"]), 0).result,
            result::UNKNOWN_REQUEST
        );
        assert_eq!(m.request(b'K', &[9, b'x'], 0).result, result::MALFORMED);
    }

    #[test]
    fn hold_retrieve_transfer_and_forward() {
        let s = Settings::officeserv(1);
        let mut m = CallModel::new(&s.stations, s.caps);
        m.request(b'K', &body(&["2201", "2202"]), 0);
        m.request(b'N', &body(&["2202"]), 0);
        let o = m.request(b'H', &body(&["2201"]), 0);
        assert_eq!(codes(&o), [('h', "2201".into()), ('h', "2202".into())]);
        let o = m.request(b'G', &body(&["2201"]), 0);
        assert_eq!(codes(&o), [('g', "2201".into()), ('g', "2202".into())]);
        let o = m.request(b'T', &body(&["2201", "2203"]), 0);
        assert_eq!(
            codes(&o),
            [
                ('t', "2201".into()),
                ('t', "2202".into()),
                ('n', "2203".into())
            ]
        );
        assert_eq!(m.state("2203"), Some(State::Ringing));
        let o = m.request(b'F', &body(&["2210", "2211"]), 0);
        assert_eq!(codes(&o), [('f', "2210".into())]);
        let o = m.request(b'K', &body(&["2212", "2210"]), 0);
        assert_eq!(
            codes(&o),
            [('d', "2212".into()), ('n', "2211".into())],
            "forwarded"
        );
        let o = m.request(b'Y', &body(&["2211"]), 0);
        assert_eq!((o.result, o.extra.clone()), (0, vec![State::Ringing as u8]));
    }
}
