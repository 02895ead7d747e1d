//! A live configuration change worked out as a pure function: from the configuration in force
//! and the one proposed, either what it does (the switches it adds) or every reason the change
//! cannot apply. [`crate::Relay`] saves and applies it; its switch reconciler then starts and
//! stops each switch's tasks to match.

use crate::config::{Config, ConfigError};

/// Who asks for the change, which decides what switches may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// SIGHUP or `Relay::reconfigure`: switches may only be added.
    Reload,
    /// The admin interface: a switch that is down may also be changed or deleted.
    Operator,
}

/// What applying a change does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Switches the new configuration adds.
    pub added: Vec<u8>,
}

const RESTART: &str = "cannot be changed while the relay runs: restart it to apply";

/// Plans the change from `old` to `new`; `up(no)` says whether switch `no`'s link is up now.
/// A configuration that breaks a rule, or changes what cannot change while running, is
/// refused with every reason.
pub fn plan(
    old: &Config,
    new: &Config,
    origin: Origin,
    up: impl Fn(u8) -> bool,
) -> Result<Plan, Vec<ConfigError>> {
    new.validate()?;
    let mut refused: Vec<ConfigError> = [
        ("listen", old.listen != new.listen),
        ("monitor", old.monitor != new.monitor),
        ("export", old.export != new.export),
        ("admin", old.admin != new.admin),
        ("bus", old.bus != new.bus),
        ("tls.ports", old.tls.ports != new.tls.ports),
        ("state_dir", old.state_dir != new.state_dir),
        ("log_dir", old.log_dir != new.log_dir),
        ("log.format", old.log != new.log),
        (
            "options.debug_log",
            old.options.debug_log != new.options.debug_log,
        ),
    ]
    .iter()
    .filter(|(_, changed)| *changed)
    .map(|(field, _)| ConfigError {
        field: (*field).into(),
        message: RESTART.into(),
    })
    .collect();
    for (index, sw) in old.switches.iter().enumerate() {
        if new.switch(sw.no) == Some(sw) {
            continue;
        }
        let message = match origin {
            Origin::Reload => format!(
                "switch {} cannot be changed or deleted by a reload: only switches can be added",
                sw.no
            ),
            Origin::Operator if up(sw.no) => format!(
                "switch {} is connected: disconnect it before changing or deleting it",
                sw.no
            ),
            Origin::Operator => continue,
        };
        refused.push(ConfigError {
            field: format!("switches[{index}]"),
            message,
        });
    }
    if !refused.is_empty() {
        return Err(refused);
    }
    Ok(Plan {
        added: new
            .switches
            .iter()
            .filter(|s| old.switch(s.no).is_none())
            .map(|s| s.no)
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SwitchConfig;

    fn site(switches: &[(u8, &str, bool)]) -> Config {
        let mut c = Config::default();
        for &(no, address, enabled) in switches {
            c.switches.push(SwitchConfig {
                enabled,
                ..SwitchConfig::new(no, address, 5002, "1234")
            });
        }
        c
    }

    fn fields(result: Result<Plan, Vec<ConfigError>>) -> Vec<(String, String)> {
        result
            .expect_err("refused")
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    #[test]
    fn each_change_is_planned_or_refused_with_every_reason() {
        let one = site(&[(1, "10.0.0.1", true)]);
        let none_up = |_| false;
        let all_up = |_| true;

        // Nothing changes: nothing to do.
        assert_eq!(
            plan(&one, &one, Origin::Reload, none_up),
            Ok(Plan::default())
        );

        // Switches added, enabled or not, are reported.
        let three = site(&[
            (1, "10.0.0.1", true),
            (2, "10.0.0.2", false),
            (3, "10.0.0.3", true),
        ]);
        assert_eq!(
            plan(&one, &three, Origin::Reload, all_up),
            Ok(Plan { added: vec![2, 3] })
        );

        // Live settings change without a word.
        let mut users = one.clone();
        users.options.notification_lines = 200;
        users.default_switch = 1;
        assert_eq!(
            plan(&one, &users, Origin::Reload, all_up),
            Ok(Plan::default())
        );

        // What needs a restart is refused, every field named, in a fixed order.
        let mut ports = one.clone();
        ports.listen.client_port = 7000;
        ports.options.debug_log = !one.options.debug_log;
        ports.log_dir = "elsewhere".into();
        assert_eq!(
            fields(plan(&one, &ports, Origin::Operator, none_up)),
            vec![
                ("listen".into(), RESTART.into()),
                ("log_dir".into(), RESTART.into()),
                ("options.debug_log".into(), RESTART.into()),
            ]
        );

        // A changed switch: never by a reload; by an operator only while it is down.
        let renamed = site(&[(1, "10.0.0.9", true)]);
        assert_eq!(
            fields(plan(&one, &renamed, Origin::Reload, none_up)),
            vec![(
                "switches[0]".into(),
                "switch 1 cannot be changed or deleted by a reload: only switches can be added"
                    .into()
            )]
        );
        assert_eq!(
            fields(plan(&one, &renamed, Origin::Operator, all_up)),
            vec![(
                "switches[0]".into(),
                "switch 1 is connected: disconnect it before changing or deleting it".into()
            )]
        );
        assert_eq!(
            plan(&one, &renamed, Origin::Operator, none_up),
            Ok(Plan::default())
        );

        // A deleted switch is a change too.
        let empty = site(&[]);
        assert_eq!(
            fields(plan(&one, &empty, Origin::Operator, |no| no == 1)).len(),
            1
        );
        assert_eq!(
            plan(&one, &empty, Origin::Operator, none_up),
            Ok(Plan::default())
        );

        // A configuration that breaks a rule is refused by the rule, before anything else.
        let broken = site(&[(1, "10.0.0.1", true), (9, "10.0.0.2", true)]);
        let refused = fields(plan(&one, &broken, Origin::Reload, none_up));
        assert_eq!(refused[0].0, "switches[1].no");
    }
}
