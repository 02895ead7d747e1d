//! `relay ctl …`: the command-line client of the admin API. Human-readable tables by default,
//! the API's JSON with `--json`.

use std::fmt::Write as _;

use serde_json::Value;

/// Where the admin API is and how to call it.
pub struct Ctl {
    pub base: String,
    pub token: Option<String>,
    pub json: bool,
    agent: ureq::Agent,
}

/// What an operator can ask.
#[derive(Debug, clap::Subcommand)]
pub enum CtlCommand {
    /// Switches, sessions, licence use.
    Status,
    /// Sessions with their devices.
    Sessions,
    /// Close a session (the application gets X reason 7).
    Close { id: u64 },
    /// Connect, disconnect, or abort the attempt in progress on one switch.
    Switch {
        /// connect, disconnect or abort
        action: String,
        no: u8,
    },
    /// Connect every switch.
    ConnectAll,
    /// Disconnect every switch and close every session.
    DisconnectAll,
    /// The licence in force, limits and use.
    Licence,
    /// Register or change the licence key.
    Register { key: String },
    /// The kept notifications.
    Notifications,
}

impl Ctl {
    pub fn new(address: &str, token: Option<String>, json: bool) -> Ctl {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        Ctl {
            base: format!("http://{address}"),
            token,
            json,
            agent,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<(u16, String)> {
        let url = format!("{}{path}", self.base);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            ("DELETE", _) => {
                let mut r = self.agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (_, body) => {
                let mut r = self.agent.post(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                match body {
                    Some(b) => r
                        .header("Content-Type", "application/json")
                        .send(b.to_string()),
                    None => r.send_empty(),
                }
            }
        };
        let mut response = result.map_err(|e| {
            anyhow::anyhow!("cannot reach the admin interface at {}: {e}", self.base)
        })?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        Ok((status, text))
    }

    /// Runs a command and returns what to print.
    pub fn run(&self, command: &CtlCommand) -> anyhow::Result<String> {
        let (method, path, body) = match command {
            CtlCommand::Status => ("GET", "/api/status".to_string(), None),
            CtlCommand::Sessions => ("GET", "/api/sessions".into(), None),
            CtlCommand::Close { id } => ("DELETE", format!("/api/sessions/{id}"), None),
            CtlCommand::Switch { action, no } => {
                ("POST", format!("/api/switches/{no}/{action}"), None)
            }
            CtlCommand::ConnectAll => ("POST", "/api/connect-all".into(), None),
            CtlCommand::DisconnectAll => ("POST", "/api/disconnect-all".into(), None),
            CtlCommand::Licence => ("GET", "/api/licence".into(), None),
            CtlCommand::Register { key } => (
                "POST",
                "/api/licence".into(),
                Some(serde_json::json!({ "key": key })),
            ),
            CtlCommand::Notifications => ("GET", "/api/notifications".into(), None),
        };
        let (status, text) = self.call(method, &path, body)?;
        if !(200..300).contains(&status) {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let field = v["field"]
                .as_str()
                .map(|f| format!(" ({f})"))
                .unwrap_or_default();
            anyhow::bail!("{}{field}", v["error"].as_str().unwrap_or(&text));
        }
        if self.json {
            return Ok(if text.is_empty() {
                "{}\n".into()
            } else {
                format!("{text}\n")
            });
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(match command {
            CtlCommand::Status => status_table(&v),
            CtlCommand::Sessions => sessions_table(&v),
            CtlCommand::Licence => licence_line(&v),
            CtlCommand::Notifications => notifications_list(&v),
            CtlCommand::Register { .. } => format!(
                "Licence {} is in force: {}\n",
                v["serial"],
                v["grants"].as_str().unwrap_or("")
            ),
            _ => "Done.\n".into(),
        })
    }
}

fn status_table(v: &Value) -> String {
    let s = &v["status"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Switches: {} configured, {} enabled, {} connected",
        s["switches_configured"], s["switches_enabled"], s["switches_connected"]
    );
    let _ = writeln!(
        out,
        "  {:<3} {:<22} {:<5} {:<17} {:>8}",
        "no", "address", "link", "model", "sessions"
    );
    for sw in s["switches"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<3} {:<22} {:<5} {:<17} {:>8}",
            sw["no"].to_string(),
            format!("{}:{}", sw["address"].as_str().unwrap_or(""), sw["port"]),
            if sw["up"].as_bool() == Some(true) {
                "up"
            } else {
                "down"
            },
            sw["model"].as_str().unwrap_or("-"),
            sw["sessions"].to_string()
        );
    }
    out.push_str(&sessions_table(&s["sessions"]));
    out.push_str(&licence_line(&s["licence"]));
    let m = &v["monitors"];
    let _ = writeln!(
        out,
        "Monitors: switch messages {}, SMDR/UCD {}, export {}",
        m["switch_messages"], m["smdr_ucd"], m["export"]
    );
    out
}

fn sessions_table(v: &Value) -> String {
    let mut out = String::new();
    let list = v.as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "Sessions: {}", list.len());
    let _ = writeln!(
        out,
        "  {:<4} {:<16} {:<6} {:<6} {:<9} state",
        "id", "address", "port", "proto", "switches"
    );
    for s in list {
        let switches: Vec<String> = s["switches"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| n.to_string())
            .collect();
        let _ = writeln!(
            out,
            "  {:<4} {:<16} {:<6} {:<6} {:<9} {}",
            s["id"].to_string(),
            s["address"].as_str().unwrap_or(""),
            s["port"].to_string(),
            s["protocol"].to_string(),
            switches.join(","),
            s["state"].as_str().unwrap_or("")
        );
    }
    out
}

fn licence_line(l: &Value) -> String {
    let products: Vec<String> = l["products"]
        .as_array()
        .into_iter()
        .flatten()
        .take(3)
        .map(|p| {
            let name = p[0].as_str().unwrap_or("").split(' ').next().unwrap_or("");
            format!(
                "{name} {}/{}",
                p[2].as_str().unwrap_or("-"),
                p[1].as_str().unwrap_or("-")
            )
        })
        .collect();
    format!(
        "Licence: {} (trial day {} of 30); {}; licensed sessions {}/{}\n",
        l["standing"].as_str().unwrap_or("?"),
        l["trial_days_used"].as_u64().unwrap_or(0) + 1,
        products.join(", "),
        l["licensed_in_use"],
        l["access_limit"]
    )
}

fn notifications_list(v: &Value) -> String {
    let mut out = String::new();
    for n in v.as_array().into_iter().flatten() {
        let ms = n["time_ms"].as_u64().unwrap_or(0);
        let switch = n["switch"]
            .as_u64()
            .map(|s| format!("SW{s} "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{} {:<5} {switch}{}",
            crate::monitor_cli::time_text(ms),
            n["level"].as_str().unwrap_or(""),
            n["text"].as_str().unwrap_or("")
        );
    }
    out
}
