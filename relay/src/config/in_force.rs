//! The configuration the relay runs on: a [`Config`] that keeps every rule, with what the relay
//! looks up on each connection made ready once (users by address and by certificate name).
//! Only [`InForce::new`] makes one, so holding one means the rules hold.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Deref;

use super::{Config, ConfigError, User};

/// A validated configuration, as the relay runs it. It reads as the [`Config`] it was made from.
#[derive(Debug)]
pub struct InForce {
    config: Config,
    /// `users[i]` by its address (`ip`), for the users that give one.
    by_ip: HashMap<IpAddr, usize>,
    /// `users[i]` by the name in its client certificate, for the users that give one.
    by_certificate: HashMap<String, usize>,
}

impl InForce {
    /// The configuration in force, if `config` keeps every rule; else every rule it breaks.
    pub fn new(config: Config) -> Result<InForce, Vec<ConfigError>> {
        config.validate()?;
        let mut by_ip = HashMap::new();
        let mut by_certificate = HashMap::new();
        for (i, user) in config.users.iter().enumerate() {
            // validate() has refused an address that does not parse unless a certificate
            // names the user instead, and any address or name given twice.
            if let Ok(ip) = user.ip.trim().parse::<IpAddr>() {
                by_ip.insert(ip.to_canonical(), i);
            }
            if let Some(name) = &user.certificate {
                by_certificate.insert(name.clone(), i);
            }
        }
        Ok(InForce {
            config,
            by_ip,
            by_certificate,
        })
    }

    /// The user registered at `ip`.
    pub fn user(&self, ip: IpAddr) -> Option<&User> {
        self.by_ip
            .get(&ip.to_canonical())
            .map(|&i| &self.config.users[i])
    }

    /// The user of a session from `ip` whose client certificate carries `names` (verified
    /// against `tls.client_ca`; none in clear text): the one its certificate names, else the
    /// one of its address.
    pub fn user_for(&self, ip: IpAddr, names: &[String]) -> Option<&User> {
        names
            .iter()
            .find_map(|n| self.by_certificate.get(n))
            .map(|&i| &self.config.users[i])
            .or_else(|| self.user(ip))
    }
}

impl Deref for InForce {
    type Target = Config;

    fn deref(&self) -> &Config {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(ip: &str, certificate: Option<&str>) -> User {
        User {
            ip: ip.into(),
            name: format!("{ip}{certificate:?}"),
            info: String::new(),
            switches: Vec::new(),
            default_switch: None,
            filtering: false,
            certificate: certificate.map(Into::into),
        }
    }

    #[test]
    fn users_are_found_by_address_and_by_certificate_name() {
        let mut c = Config::default();
        c.tls.ports = vec![crate::config::TlsPort::Client];
        c.tls.cert = Some("relay.pem".into());
        c.tls.key = Some("relay.key".into());
        c.tls.client_ca = Some("ca.pem".into());
        c.users = vec![
            user("192.0.2.51", None),
            user(" 192.0.2.52 ", Some("alice")),
            user("", Some("bob")),
        ];
        let c = InForce::new(c).unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(c.user(ip("192.0.2.51")).unwrap().ip, "192.0.2.51");
        assert_eq!(c.user(ip("192.0.2.52")).unwrap().ip, " 192.0.2.52 ");
        assert_eq!(c.user(ip("::ffff:192.0.2.51")).unwrap().ip, "192.0.2.51");
        assert!(c.user(ip("192.0.2.53")).is_none());
        let bob = c.user_for(ip("192.0.2.51"), &["bob".into()]).unwrap();
        assert_eq!(bob.certificate.as_deref(), Some("bob"));
        let by_address = c.user_for(ip("192.0.2.51"), &["carol".into()]).unwrap();
        assert_eq!(by_address.ip, "192.0.2.51");
    }

    #[test]
    fn a_configuration_that_breaks_a_rule_is_not_put_in_force() {
        let c = Config {
            users: vec![user("192.0.2.51", None), user("192.0.2.51", None)],
            ..Config::default()
        };
        let errors = InForce::new(c).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "users[1].ip");
    }
}
