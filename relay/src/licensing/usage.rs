//! Entitlements and current use: the admission decision for each identify, and the release
//! when a session ends.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::BypassLimits;
use wire::{IdentifyResult, Product};

use super::key::Payload;

/// What may be used at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Entitlements {
    pub call: u32,
    pub opentsp: u32,
    pub operator: u32,
    pub easyset: bool,
    pub news: bool,
    pub dataview: bool,
}

impl Entitlements {
    pub const TRIAL: Entitlements = Entitlements {
        call: 20,
        opentsp: 1,
        operator: 2,
        easyset: true,
        news: true,
        dataview: true,
    };

    pub fn of_licence(p: &Payload) -> Entitlements {
        Entitlements {
            call: u32::from(p.call),
            opentsp: u32::from(p.opentsp),
            operator: u32::from(p.operator),
            easyset: p.easyset,
            news: p.news,
            dataview: p.dataview,
        }
    }

    /// The simultaneous access limit: the sum of the counted entitlements.
    pub fn access_limit(&self) -> u32 {
        self.call + self.opentsp + self.operator
    }
}

/// What an admitted session holds, given back when it ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    Counted(Product),
    Flag(Product, Vec<u8>),
    Bypass(Product),
}

/// Current use.
#[derive(Debug, Default)]
pub struct Usage {
    counted: BTreeMap<Product, u32>,
    licensed_total: u32,
    flags: BTreeSet<(Product, u8)>,
    bypass: BTreeMap<Product, u32>,
}

/// The counted product a licensed product uses (CallPlus counts as Call).
fn counted_as(p: Product) -> Option<Product> {
    match p {
        Product::Call | Product::CallPlus => Some(Product::Call),
        Product::OpenTsp | Product::Operator => Some(p),
        _ => None,
    }
}

pub fn bypass_limit(limits: &BypassLimits, p: Product) -> u32 {
    match p {
        Product::Acd => limits.acd,
        Product::Messenger => limits.messenger,
        Product::BypassDataView => limits.dataview,
        Product::CallPro => limits.callpro,
        Product::CallSim => limits.callsim,
        _ => limits.other,
    }
}

impl Usage {
    /// Decides an identify of `product` served `switches`; on success the use is recorded.
    /// `entitlements` is `None` once the trial has expired with no valid licence.
    pub fn admit(
        &mut self,
        product: Product,
        switches: &[u8],
        entitlements: Option<&Entitlements>,
        bypass_limits: &BypassLimits,
    ) -> Result<Grant, IdentifyResult> {
        if product.port() == wire::Port::Bypass {
            let used = self.bypass.entry(product).or_default();
            if *used >= bypass_limit(bypass_limits, product) {
                return Err(IdentifyResult::CountUsedUp);
            }
            *used += 1;
            return Ok(Grant::Bypass(product));
        }
        let e = entitlements.ok_or(IdentifyResult::TrialExpired)?;
        if let Some(counted) = counted_as(product) {
            let limit = match counted {
                Product::Call => e.call,
                Product::OpenTsp => e.opentsp,
                _ => e.operator,
            };
            if limit == 0 {
                return Err(IdentifyResult::NotLicensed);
            }
            if self.counted.get(&counted).copied().unwrap_or(0) >= limit {
                return Err(IdentifyResult::CountUsedUp);
            }
            if self.licensed_total >= e.access_limit() {
                return Err(IdentifyResult::AccessLimit);
            }
            *self.counted.entry(counted).or_default() += 1;
            self.licensed_total += 1;
            return Ok(Grant::Counted(counted));
        }
        let allowed = match product {
            Product::EasySet => e.easyset,
            Product::News => e.news,
            _ => e.dataview,
        };
        if !allowed {
            return Err(IdentifyResult::NotLicensed);
        }
        if switches.iter().any(|s| self.flags.contains(&(product, *s))) {
            return Err(IdentifyResult::SingleUseActive);
        }
        if self.licensed_total >= e.access_limit() {
            return Err(IdentifyResult::AccessLimit);
        }
        self.flags.extend(switches.iter().map(|s| (product, *s)));
        self.licensed_total += 1;
        Ok(Grant::Flag(product, switches.to_vec()))
    }

    /// Gives back what a session held.
    pub fn release(&mut self, grant: &Grant) {
        match grant {
            Grant::Counted(p) => {
                if let Some(n) = self.counted.get_mut(p) {
                    *n = n.saturating_sub(1);
                }
                self.licensed_total = self.licensed_total.saturating_sub(1);
            }
            Grant::Flag(p, switches) => {
                for s in switches {
                    self.flags.remove(&(*p, *s));
                }
                self.licensed_total = self.licensed_total.saturating_sub(1);
            }
            Grant::Bypass(p) => {
                if let Some(n) = self.bypass.get_mut(p) {
                    *n = n.saturating_sub(1);
                }
            }
        }
    }

    /// Sessions using each counted product (Call includes CallPlus).
    pub fn counted(&self, p: Product) -> u32 {
        self.counted.get(&p).copied().unwrap_or(0)
    }

    /// Switches with an active session of a flag product.
    pub fn flag_switches(&self, p: Product) -> Vec<u8> {
        self.flags
            .iter()
            .filter(|(q, _)| *q == p)
            .map(|(_, s)| *s)
            .collect()
    }

    pub fn bypass(&self, p: Product) -> u32 {
        self.bypass.get(&p).copied().unwrap_or(0)
    }

    /// Licensed-port sessions in use.
    pub fn licensed_total(&self) -> u32 {
        self.licensed_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_21st_call_in_trial_is_refused_and_callplus_counts_as_call() {
        let mut u = Usage::default();
        let l = BypassLimits::default();
        let t = Entitlements::TRIAL;
        for i in 0..20 {
            let p = if i % 2 == 0 {
                Product::Call
            } else {
                Product::CallPlus
            };
            assert!(u.admit(p, &[1], Some(&t), &l).is_ok());
        }
        assert_eq!(
            u.admit(Product::CallPlus, &[1], Some(&t), &l),
            Err(IdentifyResult::CountUsedUp)
        );
        u.release(&Grant::Counted(Product::Call));
        assert!(u.admit(Product::Call, &[1], Some(&t), &l).is_ok());
    }

    #[test]
    fn flag_products_are_single_use_per_switch() {
        let mut u = Usage::default();
        let l = BypassLimits::default();
        let t = Entitlements::TRIAL;
        let g = u.admit(Product::EasySet, &[1], Some(&t), &l).unwrap();
        assert_eq!(
            u.admit(Product::EasySet, &[1], Some(&t), &l),
            Err(IdentifyResult::SingleUseActive)
        );
        assert!(u.admit(Product::EasySet, &[2], Some(&t), &l).is_ok());
        u.release(&g);
        assert!(u.admit(Product::EasySet, &[1], Some(&t), &l).is_ok());
    }

    #[test]
    fn flag_products_count_against_the_simultaneous_access_limit() {
        let mut u = Usage::default();
        let l = BypassLimits::default();
        let t = Entitlements::TRIAL;
        for _ in 0..20 {
            u.admit(Product::Call, &[1], Some(&t), &l).unwrap();
        }
        u.admit(Product::Operator, &[1], Some(&t), &l).unwrap();
        u.admit(Product::Operator, &[1], Some(&t), &l).unwrap();
        u.admit(Product::OpenTsp, &[1], Some(&t), &l).unwrap();
        assert_eq!(u.licensed_total(), t.access_limit());
        assert_eq!(
            u.admit(Product::EasySet, &[1], Some(&t), &l),
            Err(IdentifyResult::AccessLimit)
        );
        assert!(
            u.admit(Product::Acd, &[1], Some(&t), &l).is_ok(),
            "bypass is outside the limit"
        );
    }

    #[test]
    fn expiry_not_licensed_and_bypass_limits() {
        let mut u = Usage::default();
        let l = BypassLimits::default();
        assert_eq!(
            u.admit(Product::Call, &[1], None, &l),
            Err(IdentifyResult::TrialExpired)
        );
        assert!(
            u.admit(Product::Acd, &[1], None, &l).is_ok(),
            "bypass is unaffected by expiry"
        );
        assert_eq!(
            u.admit(Product::Acd, &[1], None, &l),
            Err(IdentifyResult::CountUsedUp)
        );
        let none = Entitlements {
            call: 0,
            opentsp: 1,
            operator: 0,
            easyset: false,
            news: false,
            dataview: false,
        };
        assert_eq!(
            u.admit(Product::Call, &[1], Some(&none), &l),
            Err(IdentifyResult::NotLicensed)
        );
        assert_eq!(
            u.admit(Product::News, &[1], Some(&none), &l),
            Err(IdentifyResult::NotLicensed)
        );
    }
}
