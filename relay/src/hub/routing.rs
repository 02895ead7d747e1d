//! Which switches a session is served (docs/behaviour.md §4), as pure functions of the configuration.

use crate::config::{Config, User};

/// The switches a session is served, in ascending order, and its default switch (the one that
/// device and request switch 0 means).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub switches: Vec<u8>,
    pub default: u8,
}

/// Applies the served-switch rules for a session of `user` (`None`: unregistered) speaking
/// `protocol` (2 or 3).
pub fn served_switches(config: &Config, user: Option<&User>, protocol: u8) -> Served {
    let default = user
        .and_then(|u| u.default_switch)
        .unwrap_or(config.default_switch);
    if protocol == 2 {
        return Served {
            switches: vec![default],
            default,
        };
    }
    let mut switches = match user {
        Some(User { switches, .. }) if !switches.is_empty() => switches.clone(),
        Some(_) => vec![default],
        None => config
            .switches
            .iter()
            .filter(|s| s.enabled)
            .map(|s| s.no)
            .collect(),
    };
    switches.sort_unstable();
    switches.dedup();
    // An unregistered session's default is the global default when it is served, else its
    // lowest switch.
    let default = if switches.contains(&default) {
        default
    } else {
        switches.first().copied().unwrap_or(default)
    };
    Served { switches, default }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> crate::config::InForce {
        let file = Config::parse(
            r#"
switches:
  - { no: 1, address: 10.0.0.1 }
  - { no: 2, address: 10.0.0.2 }
  - { no: 3, address: 10.0.0.3, enabled: false }
  - { no: 4, address: 10.0.0.4 }
default_switch: 2
users:
  - { ip: 192.0.2.51, switches: [1, 4], default_switch: 4 }
  - { ip: 192.0.2.52, default_switch: 1 }
  - { ip: 192.0.2.53 }
"#,
        )
        .unwrap();
        crate::config::InForce::new(file).unwrap()
    }

    fn ip(s: &str) -> std::net::IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn protocol_2_uses_the_users_default_switch_else_the_global_one() {
        let c = config();
        assert_eq!(
            served_switches(&c, c.user(ip("192.0.2.51")), 2).switches,
            vec![4]
        );
        assert_eq!(
            served_switches(&c, c.user(ip("192.0.2.52")), 2).switches,
            vec![1]
        );
        assert_eq!(
            served_switches(&c, c.user(ip("192.0.2.53")), 2).switches,
            vec![2]
        );
        assert_eq!(
            served_switches(&c, c.user(ip("192.0.2.99")), 2).switches,
            vec![2]
        );
    }

    #[test]
    fn protocol_3_uses_the_users_switches_then_default_then_global() {
        let c = config();
        let s = served_switches(&c, c.user(ip("192.0.2.51")), 3);
        assert_eq!((s.switches, s.default), (vec![1, 4], 4));
        assert_eq!(
            served_switches(&c, c.user(ip("192.0.2.52")), 3).switches,
            vec![1]
        );
        assert_eq!(
            served_switches(&c, c.user(ip("192.0.2.53")), 3).switches,
            vec![2]
        );
    }

    #[test]
    fn protocol_3_unregistered_is_served_every_enabled_switch() {
        let c = config();
        let s = served_switches(&c, c.user(ip("192.0.2.99")), 3);
        assert_eq!((s.switches, s.default), (vec![1, 2, 4], 2));
    }
}
