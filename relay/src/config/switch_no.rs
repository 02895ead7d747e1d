//! A switch's number at its site, 1..=8: what the configuration's rules let through, so that
//! code holding one can index the relay's eight switch slots without a check.

use std::fmt;

/// A switch number in 1..=8. Made from a configured number ([`SwitchNo::new`]) or one of
/// [`SwitchNo::ALL`]; a number read from the network stays a `u8` until it is checked here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SwitchNo(u8);

impl SwitchNo {
    /// Every switch number, in order.
    pub const ALL: [SwitchNo; 8] = [
        SwitchNo(1),
        SwitchNo(2),
        SwitchNo(3),
        SwitchNo(4),
        SwitchNo(5),
        SwitchNo(6),
        SwitchNo(7),
        SwitchNo(8),
    ];

    /// `no` when it is in 1..=8.
    pub fn new(no: u8) -> Option<SwitchNo> {
        (1..=8).contains(&no).then_some(SwitchNo(no))
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// Its place among the eight: 0..=7.
    pub fn index(self) -> usize {
        usize::from(self.0 - 1)
    }
}

impl fmt::Display for SwitchNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<SwitchNo> for u8 {
    fn from(no: SwitchNo) -> u8 {
        no.0
    }
}

#[cfg(test)]
mod tests {
    use super::SwitchNo;

    #[test]
    fn only_one_to_eight_are_switch_numbers() {
        assert_eq!(SwitchNo::new(0), None);
        assert_eq!(SwitchNo::new(9), None);
        assert_eq!(SwitchNo::new(255), None);
        let all: Vec<(u8, usize)> = (1..=8)
            .map(|n| SwitchNo::new(n).unwrap())
            .map(|n| (n.get(), n.index()))
            .collect();
        assert_eq!(
            all,
            (1..=8).map(|n| (n, usize::from(n) - 1)).collect::<Vec<_>>()
        );
        assert_eq!(SwitchNo::ALL.map(SwitchNo::get), [1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
