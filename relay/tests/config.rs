//! docs/configuration.md: the configuration file, its defaults and every rule.

use relay::config::{Config, ConfigError, Language};

fn errors(yaml: &str) -> Vec<String> {
    let config = Config::parse(yaml).expect("parses");
    match config.validate() {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(ConfigError::to_string).collect(),
    }
}

#[test]
fn an_empty_file_is_the_documented_defaults() {
    let c = Config::parse("").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.listen.client_port, 6000);
    assert_eq!(c.listen.bypass_port(), 6500);
    assert_eq!(c.default_switch, 1);
    assert!(c.options.auto_connect);
    assert_eq!(c.options.notification_lines, 500);
    assert_eq!(
        (
            c.options.recovery.attempts,
            c.options.recovery.cycle_minutes
        ),
        (30, 1)
    );
    assert_eq!(c.options.language, Language::En);
    assert_eq!(
        (c.monitor.sw_port, c.monitor.su_port),
        (Some(6001), Some(6002))
    );
    assert_eq!(c.export.port, Some(6003));
    assert!(c.access.allow_unregistered);
    assert_eq!(
        (
            c.bypass_limits.acd,
            c.bypass_limits.messenger,
            c.bypass_limits.other
        ),
        (1, 8, 8)
    );
    assert_eq!(
        (c.admin.address.to_string(), c.admin.port),
        ("127.0.0.1".into(), 8080)
    );
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn the_documented_example_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/relay.example.yaml");
    let c = Config::load(std::path::Path::new(path)).unwrap();
    assert_eq!(c.switches.len(), 2);
    assert_eq!(c.switches[0].easyset_password, "1234");
    assert!(!c.switches[1].enabled);
    assert_eq!(c.users[0].switches, vec![1, 2]);
}

/// Every setting, down to the fields of a switch and a user entry, is named in the example.
#[test]
fn the_example_names_every_setting() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/relay.example.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut every = Config::parse(
        "switches:\n  - { no: 1, address: 10.0.0.1, source_address: 10.0.0.2, tls_ca: ca.pem }\n  - { no: 2, remote: { site: hq, no: 1 } }\nusers:\n  - { ip: 10.0.0.5, certificate: c }\n",
    )
    .unwrap();
    every.tls.cert = Some("c.pem".into());
    every.bus.nats = Some("nats://x".into());
    let mut keys = std::collections::BTreeSet::new();
    fn walk(v: &serde_yaml::Value, keys: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                for (k, v) in m {
                    keys.insert(k.as_str().unwrap().to_owned());
                    walk(v, keys);
                }
            }
            serde_yaml::Value::Sequence(items) => items.iter().for_each(|v| walk(v, keys)),
            _ => {}
        }
    }
    walk(&serde_yaml::to_value(&every).unwrap(), &mut keys);
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| !text.contains(&format!("{k}:")))
        .collect();
    assert!(missing.is_empty(), "the example does not name {missing:?}");
}

#[test]
fn an_unknown_key_is_refused_naming_it() {
    let err = Config::parse("options: { auto_conect: true }")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `auto_conect`"), "{err}");
    let err = Config::parse("listen: { port: 6000 }")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `port`"), "{err}");
}

#[test]
fn every_broken_rule_is_reported_at_once_with_field_and_value() {
    let yaml = r#"
listen: { client_port: 65100 }
switches:
  - { no: 0, address: 10.0.0.1 }
  - { no: 2, address: 10.0.0.1 }
  - { no: 2, address: 10.0.0.3, port: 0 }
  - { no: 4, address: 10.0.0.4 }
default_switch: 5
options: { notification_lines: 50, recovery: { attempts: 0, cycle_minutes: 61 } }
monitor: { sw_port: 6001, su_port: 6001 }
export: { port: 8080 }
users:
  - { ip: 10.1.1.1, switches: [2, 7], default_switch: 4 }
  - { ip: 10.1.1.1 }
  - { ip: not-an-address, default_switch: 9 }
  - { ip: 10.1.1.4, switches: [2, 2] }
license: { issuer_keys: ["abcd"], host_macs: ["00:11:22:33:44"] }
admin: { address: 0.0.0.0, require_token: false, token: "", max_message_kib: 0,
         allowed_hosts: ["http://x/"], allowed_origins: ["null"] }
"#;
    assert_eq!(
        errors(yaml),
        [
            "listen.client_port: 65100 is out of range: use 1025..=65035 (the bypass port, client_port + 500, must fit)",
            "switches[0].no: 0 is out of range: use 1..=8",
            "switches[1].address: 10.0.0.1: address already assigned to switch 0",
            "switches[2].no: switch number 2 is already used by switches[1]",
            "switches[2].port: 0 is out of range: use 1..=65535",
            "default_switch: 5 is not a configured switch",
            "options.notification_lines: 50 is out of range: use 100..=9999",
            "options.recovery.attempts: 0 is out of range: use 1..=999",
            "options.recovery.cycle_minutes: 61 is out of range: use 1..=60",
            "monitor.su_port: port 6001 is already used by monitor.sw_port",
            "admin.port: port 8080 is already used by export.port",
            "users[0].switches: switch 7 is not configured",
            "users[0].default_switch: default switch 4 is not among the user's switches",
            "users[1].ip: 10.1.1.1 is already registered by users[0]",
            "users[2].ip: \"not-an-address\" is not a valid IP address",
            "users[2].default_switch: switch 9 is not configured",
            "users[3].switches: switch 2 is listed twice",
            "license.issuer_keys[0]: \"abcd\" is not a 32-byte public key written as 64 hex digits",
            "license.host_macs[0]: \"00:11:22:33:44\" is not a MAC address like AA:BB:CC:DD:EE:FF",
            "admin.require_token: false is allowed only on a loopback address, and admin.address 0.0.0.0 is not one: remove it (a token is then made at first start) or set admin.token",
            "admin.token: is empty: remove it to have the relay make one (kept in state_dir/admin.token), or set admin.require_token: false on a loopback address",
            "admin.allowed_hosts[0]: \"http://x/\" is not a host name (letters, digits, '.', '-'; no scheme, port or path)",
            "admin.allowed_origins[0]: \"null\" is not an origin like https://crm.example.com or http://10.1.2.3:8081 (a scheme, a host, an optional port; no path)",
            "admin.max_message_kib: 0 is out of range: use 1..=16384",
        ]
    );
}

#[test]
fn the_bypass_port_counts_as_a_listening_port() {
    assert_eq!(
        errors("listen: { client_port: 6000 }\nmonitor: { sw_port: 6500 }"),
        ["monitor.sw_port: port 6500 is already used by listen.client_port + 500 (bypass port)"]
    );
    // A port of null turns a monitor off and frees its number.
    assert_eq!(
        errors("monitor: { sw_port: null }\nexport: { port: 6001 }"),
        Vec::<String>::new()
    );
}

#[test]
fn saving_is_atomic_and_a_failed_write_leaves_the_old_file_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.yaml");
    let mut config = Config::parse("switches: [ { no: 1, address: 10.0.0.1 } ]").unwrap();
    config.save_atomic(&path).unwrap();
    let saved = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        Config::parse(&saved).unwrap(),
        config,
        "what is saved reads back the same"
    );

    // Make the write fail: a directory stands where the temporary file must go.
    std::fs::create_dir(dir.path().join(".relay.yaml.tmp")).unwrap();
    config.default_switch = 1;
    config.switches[0].address = "10.0.0.99".into();
    assert!(config.save_atomic(&path).is_err());
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        saved,
        "the old file is whole"
    );
}

/// Saving from the admin interface edits the operator's file in place: the comments stay, only
/// the entry that changed is written anew; the file it replaces is kept whole as
/// `relay.yaml.bak`.
#[test]
fn saving_keeps_the_comments_and_the_file_it_replaces_as_bak() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.yaml");
    let original = "# Head office switches\nswitches:\n  - { no: 1, address: 10.0.0.1 }  # the main PBX\n\n# Who may connect\naccess: { allow_unregistered: true }\n";
    std::fs::write(&path, original).unwrap();
    let mut config = Config::parse(original).unwrap();
    config.switches[0].address = "10.0.0.2".into();
    config.save_atomic(&path).unwrap();
    let bak = dir.path().join("relay.yaml.bak");
    assert_eq!(std::fs::read_to_string(&bak).unwrap(), original);
    let saved = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = saved.lines().collect();
    assert_eq!(lines[0], "# Head office switches");
    assert_eq!(lines[1], "switches:");
    assert!(
        lines[2].starts_with("  - { no: 1, address: 10.0.0.2, port: 5002,"),
        "{saved}"
    );
    assert_eq!(
        lines[3..],
        [
            "",
            "# Who may connect",
            "access: { allow_unregistered: true }"
        ]
    );
    assert_eq!(Config::parse(&saved).unwrap(), config);
}

#[test]
fn the_two_site_examples_are_valid_and_name_each_other() {
    let load = |name: &str| {
        let path = format!("{}/../config/{name}", env!("CARGO_MANIFEST_DIR"));
        let c = Config::load(std::path::Path::new(&path)).unwrap();
        assert_eq!(c.validate(), Ok(()), "{name}");
        c
    };
    let hq = load("site-hq.yaml");
    let branch = load("site-branch.yaml");
    assert_eq!(hq.bus.site, "hq");
    assert_eq!(hq.bus.nats, branch.bus.nats);
    let remote = branch.switches[1].remote.as_ref().expect("a remote switch");
    assert_eq!((remote.site.as_str(), remote.no), ("hq", hq.switches[0].no));
    // hq's standby: the same site, switch and bus, another node.
    let standby = load("site-hq-standby.yaml");
    assert_eq!(
        (standby.bus.site.as_str(), standby.bus.shared),
        ("hq", true)
    );
    assert_eq!(
        (hq.bus.node.as_str(), standby.bus.node.as_str()),
        ("a", "b")
    );
    assert_eq!(standby.switches, hq.switches);
}

#[test]
fn a_remote_switch_needs_the_bus_and_no_address() {
    let mut c: Config = serde_yaml::from_str(
        "switches: [{ no: 2, address: 10.0.0.9, remote: { site: hq, no: 1 } }]\ndefault_switch: 2",
    )
    .unwrap();
    let fields: Vec<String> = c
        .validate()
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, vec!["switches[0].address", "switches[0].remote"]);
    c.switches[0].address.clear();
    c.bus.nats = Some("nats://127.0.0.1:4222".into());
    c.bus.site = "hq".into();
    let errors = c.validate().unwrap_err();
    assert_eq!(errors[0].field, "switches[0].remote.site");
    assert!(errors[0].message.contains("this relay's own site"));
    c.bus.site = "branch".into();
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn tls_needs_its_files_and_a_certificate_user_needs_client_certificates() {
    assert_eq!(
        errors("tls: { ports: [client, admin] }"),
        vec![
            "tls.cert: is required because tls.ports names a port: give the relay's certificate chain (PEM)",
            "tls.key: is required because tls.ports names a port: give the certificate's private key (PEM)",
        ]
    );
    assert_eq!(
        errors("tls: { cert: relay.pem, key: relay.key }"),
        vec!["tls.ports: is empty, so no port speaks TLS: name them (client, monitor, export, admin), or remove tls"]
    );
    assert_eq!(
        errors("users: [{ name: Nobody }, { certificate: reception }]"),
        vec![
            "users[0].ip: is required: give the user's address, or the name in its client certificate (certificate)",
            "users[1].certificate: needs tls.client_ca: client certificates are checked only with it",
        ]
    );
    assert_eq!(
        errors(
            "tls: { ports: [client], cert: r.pem, key: r.key, client_ca: ca.pem }\n\
             users: [{ certificate: reception }, { ip: 10.0.0.5, certificate: reception }]"
        ),
        vec!["users[1].certificate: \"reception\" already names users[0]"]
    );
}
