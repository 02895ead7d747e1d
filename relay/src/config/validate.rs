//! Every rule of docs/configuration.md, checked at once: each broken rule names its field and value.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::{parse_mac, valid_site, Config, ConfigError};

impl Config {
    /// Checks every rule of docs/configuration.md and returns all that are broken.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut err = |field: String, message: String| errors.push(ConfigError { field, message });

        let client = self.listen.client_port;
        if !(1025..=65035).contains(&client) {
            err(
                "listen.client_port".into(),
                format!("{client} is out of range: use 1025..=65035 (the bypass port, client_port + 500, must fit)"),
            );
        }

        let mut numbers: BTreeMap<u8, usize> = BTreeMap::new();
        let mut addresses: BTreeMap<String, u8> = BTreeMap::new();
        for (i, sw) in self.switches.iter().enumerate() {
            let at = format!("switches[{i}]");
            if !(1..=8).contains(&sw.no) {
                err(
                    format!("{at}.no"),
                    format!("{} is out of range: use 1..=8", sw.no),
                );
            } else if let Some(first) = numbers.insert(sw.no, i) {
                err(
                    format!("{at}.no"),
                    format!(
                        "switch number {} is already used by switches[{first}]",
                        sw.no
                    ),
                );
            }
            let address = sw.address.trim();
            if let Some(remote) = &sw.remote {
                if !address.is_empty() {
                    err(
                        format!("{at}.address"),
                        "a remote switch has no address: its site's relay dials it; remove one of the two".into(),
                    );
                }
                if !valid_site(&remote.site) {
                    err(
                        format!("{at}.remote.site"),
                        format!(
                            "{:?} is not a site name: use letters, digits, - and _",
                            remote.site
                        ),
                    );
                } else if remote.site == self.bus.site {
                    err(
                        format!("{at}.remote.site"),
                        format!(
                            "{:?} is this relay's own site: give the switch's address instead",
                            remote.site
                        ),
                    );
                }
                if sw.source_address.is_some() {
                    err(
                        format!("{at}.source_address"),
                        "a remote switch is not dialled from here: remove source_address".into(),
                    );
                }
                if sw.tls_ca.is_some() {
                    err(
                        format!("{at}.tls_ca"),
                        "a remote switch is not dialled from here: remove tls_ca".into(),
                    );
                }
                if !(1..=8).contains(&remote.no) {
                    err(
                        format!("{at}.remote.no"),
                        format!("{} is out of range: use 1..=8", remote.no),
                    );
                }
                if !self.bus.enabled() {
                    err(
                        format!("{at}.remote"),
                        "a remote switch needs the bus: set bus.nats and bus.site".into(),
                    );
                }
            } else if address.is_empty() {
                err(
                    format!("{at}.address"),
                    "is empty: give the switch's IP address or host name".into(),
                );
            } else if let Some(other) = addresses.get(&address.to_ascii_lowercase()) {
                err(
                    format!("{at}.address"),
                    format!("{address}: address already assigned to switch {other}"),
                );
            } else {
                addresses.insert(address.to_ascii_lowercase(), sw.no);
            }
            if sw.port == 0 {
                err(
                    format!("{at}.port"),
                    "0 is out of range: use 1..=65535".into(),
                );
            }
            if sw.name.len() > 255 {
                err(
                    format!("{at}.name"),
                    format!("is {} bytes long: at most 255", sw.name.len()),
                );
            }
            if sw.easyset_password.len() > 255 {
                err(
                    format!("{at}.easyset_password"),
                    format!("is {} bytes long: at most 255", sw.easyset_password.len()),
                );
            }
        }
        let exists = |no: u8| self.switches.iter().any(|s| s.no == no);
        if !self.switches.is_empty() && !exists(self.default_switch) {
            err(
                "default_switch".into(),
                format!("{} is not a configured switch", self.default_switch),
            );
        }

        let o = &self.options;
        if !(100..=9999).contains(&o.notification_lines) {
            err(
                "options.notification_lines".into(),
                format!("{} is out of range: use 100..=9999", o.notification_lines),
            );
        }
        let spool = self.export.spool;
        if !(1..=65536).contains(&spool.max_mb) {
            err(
                "export.spool.max_mb".into(),
                format!("{} is out of range: use 1..=65536", spool.max_mb),
            );
        }
        if !(1..=3650).contains(&spool.max_days) {
            err(
                "export.spool.max_days".into(),
                format!("{} is out of range: use 1..=3650", spool.max_days),
            );
        }
        if !(1..=3650).contains(&self.calls.keep_days) {
            err(
                "calls.keep_days".into(),
                format!("{} is out of range: use 1..=3650", self.calls.keep_days),
            );
        }
        if self.bus.shared && !self.bus.enabled() {
            err(
                "bus.shared".into(),
                "sharing the switch links needs the bus: set bus.nats, bus.site and bus.node"
                    .into(),
            );
        }
        if let Some(url) = &self.bus.nats {
            if !url.starts_with("nats://") || url.len() <= "nats://".len() {
                err(
                    "bus.nats".into(),
                    format!("{url:?} is not a NATS server address: write nats://HOST:PORT"),
                );
            }
            if self.bus.shared && !valid_site(&self.bus.node) {
                err(
                    "bus.node".into(),
                    format!(
                        "{:?} is not a node name: a relay sharing its site's links needs a name of its own (letters, digits, - and _)",
                        self.bus.node
                    ),
                );
            }
            if !valid_site(&self.bus.site) {
                err(
                    "bus.site".into(),
                    format!(
                        "{:?} is not a site name: use 1 to 64 letters, digits, - and _",
                        self.bus.site
                    ),
                );
            }
        }
        if self.resume.window_seconds > 3600 {
            err(
                "resume.window_seconds".into(),
                format!(
                    "{} is out of range: use 0..=3600 (0 turns resume off)",
                    self.resume.window_seconds
                ),
            );
        }
        if !(1..=1024).contains(&self.resume.max_mib) {
            err(
                "resume.max_mib".into(),
                format!("{} is out of range: use 1..=1024", self.resume.max_mib),
            );
        }
        if !(1..=999).contains(&o.recovery.attempts) {
            err(
                "options.recovery.attempts".into(),
                format!("{} is out of range: use 1..=999", o.recovery.attempts),
            );
        }
        if !(1..=60).contains(&o.recovery.cycle_minutes) {
            err(
                "options.recovery.cycle_minutes".into(),
                format!("{} is out of range: use 1..=60", o.recovery.cycle_minutes),
            );
        }

        // Listening ports: each in range and no two equal.
        let mut ports: Vec<(&str, u32)> = vec![("listen.client_port", u32::from(client))];
        ports.push((
            "listen.client_port + 500 (bypass port)",
            self.listen.bypass_port(),
        ));
        for (field, port) in [
            ("monitor.sw_port", self.monitor.sw_port),
            ("monitor.su_port", self.monitor.su_port),
            ("export.port", self.export.port),
            ("admin.port", Some(self.admin.port)),
        ] {
            match port {
                Some(0) => err(field.into(), "0 is out of range: use 1..=65535".into()),
                Some(p) => ports.push((field, u32::from(p))),
                None => {}
            }
        }
        for (i, (field, port)) in ports.iter().enumerate() {
            if let Some((other, _)) = ports[..i].iter().find(|(_, p)| p == port) {
                err(
                    (*field).into(),
                    format!("port {port} is already used by {other}"),
                );
            }
        }

        let mut ips: BTreeMap<IpAddr, usize> = BTreeMap::new();
        let mut certificates: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, user) in self.users.iter().enumerate() {
            let at = format!("users[{i}]");
            if let Some(name) = &user.certificate {
                if name.trim().is_empty() {
                    err(
                        format!("{at}.certificate"),
                        "is empty: give the name in the user's client certificate".into(),
                    );
                } else if let Some(first) = certificates.insert(name, i) {
                    err(
                        format!("{at}.certificate"),
                        format!("{name:?} already names users[{first}]"),
                    );
                }
                if self.tls.client_ca.is_none() {
                    err(
                        format!("{at}.certificate"),
                        "needs tls.client_ca: client certificates are checked only with it".into(),
                    );
                }
            }
            match user.ip.trim().parse::<IpAddr>() {
                Err(_) if user.ip.trim().is_empty() && user.certificate.is_some() => {}
                Err(_) if user.ip.trim().is_empty() => err(
                    format!("{at}.ip"),
                    "is required: give the user's address, or the name in its client certificate (certificate)".into(),
                ),
                Err(_) => err(
                    format!("{at}.ip"),
                    format!("{:?} is not a valid IP address", user.ip),
                ),
                Ok(ip) => {
                    if let Some(first) = ips.insert(ip, i) {
                        err(
                            format!("{at}.ip"),
                            format!("{ip} is already registered by users[{first}]"),
                        );
                    }
                }
            }
            let mut seen = BTreeSet::new();
            for no in &user.switches {
                if !exists(*no) {
                    err(
                        format!("{at}.switches"),
                        format!("switch {no} is not configured"),
                    );
                } else if !seen.insert(*no) {
                    err(
                        format!("{at}.switches"),
                        format!("switch {no} is listed twice"),
                    );
                }
            }
            if let Some(d) = user.default_switch {
                if !exists(d) {
                    err(
                        format!("{at}.default_switch"),
                        format!("switch {d} is not configured"),
                    );
                } else if !user.switches.is_empty() && !user.switches.contains(&d) {
                    err(
                        format!("{at}.default_switch"),
                        format!("default switch {d} is not among the user's switches"),
                    );
                }
            }
        }

        for (i, key) in self.license.issuer_keys.iter().enumerate() {
            let ok = key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                err(
                    format!("license.issuer_keys[{i}]"),
                    format!("{key:?} is not a 32-byte public key written as 64 hex digits"),
                );
            }
        }
        for (i, mac) in self.license.host_macs.iter().flatten().enumerate() {
            if parse_mac(mac).is_none() {
                err(
                    format!("license.host_macs[{i}]"),
                    format!("{mac:?} is not a MAC address like AA:BB:CC:DD:EE:FF"),
                );
            }
        }

        let tls = &self.tls;
        if !tls.ports.is_empty() {
            if tls.cert.is_none() {
                err(
                    "tls.cert".into(),
                    "is required because tls.ports names a port: give the relay's certificate chain (PEM)".into(),
                );
            }
            if tls.key.is_none() {
                err(
                    "tls.key".into(),
                    "is required because tls.ports names a port: give the certificate's private key (PEM)".into(),
                );
            }
        } else if tls.cert.is_some() || tls.key.is_some() || tls.client_ca.is_some() {
            err(
                "tls.ports".into(),
                "is empty, so no port speaks TLS: name them (client, monitor, export, admin), or remove tls".into(),
            );
        }

        let admin = &self.admin;
        if !admin.require_token && !admin.address.is_loopback() {
            err(
                "admin.require_token".into(),
                format!(
                    "false is allowed only on a loopback address, and admin.address {} is not one: remove it (a token is then made at first start) or set admin.token",
                    admin.address
                ),
            );
        }
        if admin.token.as_deref().is_some_and(|t| t.trim().is_empty()) {
            err(
                "admin.token".into(),
                "is empty: remove it to have the relay make one (kept in state_dir/admin.token), or set admin.require_token: false on a loopback address".into(),
            );
        } else if admin
            .token
            .as_deref()
            .is_some_and(|t| t.trim() != t || t.contains(char::is_control))
        {
            err(
                "admin.token".into(),
                "has spaces at an end or control characters, which an Authorization header cannot carry".into(),
            );
        }
        for (i, host) in admin.allowed_hosts.iter().enumerate() {
            let valid = !host.is_empty()
                && host.len() <= 253
                && host.chars().all(|c| {
                    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']')
                });
            if !valid {
                err(
                    format!("admin.allowed_hosts[{i}]"),
                    format!("{host:?} is not a host name (letters, digits, '.', '-'; no scheme, port or path)"),
                );
            }
        }
        for (i, origin) in admin.allowed_origins.iter().enumerate() {
            if super::web_origin::WebOrigin::parse(origin).is_none() {
                err(
                    format!("admin.allowed_origins[{i}]"),
                    format!("{origin:?} is not an origin like https://crm.example.com or http://10.1.2.3:8081 (a scheme, a host, an optional port; no path)"),
                );
            }
        }
        if !(1..=16384).contains(&admin.max_message_kib) {
            err(
                "admin.max_message_kib".into(),
                format!("{} is out of range: use 1..=16384", admin.max_message_kib),
            );
        }

        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}
