//! Live call traffic for demonstrations and soak runs: phone users placing, answering and
//! ending calls, outside calls arriving on trunks, and periodic UCD reports. Seeded, so the
//! same seed gives the same sequence of actions.

use std::time::Duration;

use crate::calls::State;
use crate::switch::SimSwitch;

/// A small deterministic random source (xorshift64*).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// Takes one action on `switch`, as its phone users and the outside parties would: answer a
/// ringing phone (an extension, or the far end of an outgoing call), hang up a call, give up
/// waiting, or start a call (internal, outgoing, or incoming on a trunk).
pub fn step(switch: &SimSwitch, rng: &mut Rng) {
    let busy = switch.with_model(|m| m.busy_stations());
    let pick = |rng: &mut Rng, state: State| -> Option<String> {
        let all: Vec<&String> = busy
            .iter()
            .filter(|(_, s)| *s == state)
            .map(|(d, _)| d)
            .collect();
        (!all.is_empty()).then(|| all[rng.below(all.len())].clone())
    };
    if rng.chance(70) {
        if let Some(ringing) = pick(rng, State::Ringing) {
            switch.phone(b'N', &ringing, None);
            return;
        }
    }
    if rng.chance(40) {
        if let Some(talking) = pick(rng, State::Connected) {
            switch.phone(b'D', &talking, None);
            return;
        }
    }
    // A caller who waited long enough hangs up (an incoming call abandoned, or an outgoing
    // call nobody answered).
    if rng.chance(5) {
        if let Some(waiting) = pick(rng, State::Dialling) {
            switch.phone(b'D', &waiting, None);
            return;
        }
    }
    let idle = switch.with_model(|m| m.idle_keysets());
    if idle.len() < 2 {
        return;
    }
    let from = &idle[rng.below(idle.len())];
    match rng.below(10) {
        0 => {
            let trunks = switch.with_model(|m| m.trunks());
            if !trunks.is_empty() {
                switch.incoming_call(&trunks[rng.below(trunks.len())], from);
            }
        }
        1 => {
            let number = format!("0{}", 200_000_000 + rng.below(99_999_999));
            switch.phone(b'K', from, Some(&number));
        }
        _ => {
            let to = &idle[rng.below(idle.len())];
            if to != from {
                switch.phone(b'K', from, Some(to));
            }
        }
    }
}

/// Runs [`step`] every `every`, and reports UCD statistics every 30 steps, until dropped.
pub async fn run(switch: SimSwitch, every: Duration, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut tick = tokio::time::interval(every);
    let mut n = 0u64;
    loop {
        tick.tick().await;
        step(&switch, &mut rng);
        n += 1;
        if n.is_multiple_of(30) {
            switch.report_ucd();
        }
    }
}
