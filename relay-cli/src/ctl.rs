//! `relay ctl …`: the command-line client of the admin API. Human-readable tables by default,
//! the API's JSON with `--json`.

use std::fmt::Write as _;

use relay::calls::{CallPage, CallQuery};
use serde::Deserialize;
use serde_json::{json, Value};

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
    /// The switch table: list, add, set, delete; connect, disconnect, abort one switch.
    Switch {
        #[command(subcommand)]
        command: SwitchCommand,
    },
    /// Registered users (per-address settings): list, add, set, delete.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Connect every switch.
    ConnectAll,
    /// Disconnect every switch and close every session.
    DisconnectAll,
    /// The licence in force, limits and use.
    #[command(name = "license", alias = "licence")]
    Licence,
    /// Register or change the licence key.
    #[command(alias = "change")]
    Register { key: String },
    /// The kept notifications; with --follow, then each new one as it comes, until Ctrl-C.
    Notifications {
        #[arg(long, short)]
        follow: bool,
    },
    /// Stored call records (SMDR), oldest first, filtered; --csv for CSV.
    Calls(CallsArgs),
}

/// Filters of `relay ctl calls` (the same as `GET /api/calls`).
#[derive(Debug, Default, clap::Args)]
pub struct CallsArgs {
    /// Calls that started at or after (switch time): YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS.
    #[arg(long)]
    pub from: Option<String>,
    /// Calls that started before, same forms.
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub extension: Option<String>,
    /// Call-type flag: O, IC, IA, IT, FI…
    #[arg(long)]
    pub flag: Option<String>,
    #[arg(long)]
    pub call_id: Option<String>,
    #[arg(long)]
    pub switch: Option<u8>,
    /// Records after this id (the `next` a previous page gave).
    #[arg(long)]
    pub after: Option<i64>,
    /// Records per page (default 100, CSV: all).
    #[arg(long)]
    pub limit: Option<u32>,
    /// CSV instead of a table.
    #[arg(long)]
    pub csv: bool,
}

impl CallsArgs {
    fn query(&self) -> CallQuery {
        CallQuery {
            from: self.from.clone(),
            to: self.to.clone(),
            extension: self.extension.clone(),
            flag: self.flag.clone(),
            call_id: self.call_id.clone(),
            switch: self.switch,
            after: self.after,
            limit: self.limit,
            format: self.csv.then(|| "csv".into()),
        }
    }
}

/// Operations on one switch, or on the switch table.
#[derive(Debug, clap::Subcommand)]
pub enum SwitchCommand {
    /// The switch table as configured.
    List,
    /// Add a switch (it is dialled at once when enabled).
    Add {
        no: u8,
        #[command(flatten)]
        fields: SwitchFields,
    },
    /// Change some fields of a switch (disconnect it first).
    Set {
        no: u8,
        #[command(flatten)]
        fields: SwitchFields,
    },
    /// Delete a switch (disconnect it first).
    Delete { no: u8 },
    /// Dial the switch now.
    Connect { no: u8 },
    /// Close the link, and stop recovering it until connected again.
    Disconnect { no: u8 },
    /// Give up the attempt in progress (the schedule goes on).
    Abort { no: u8 },
}

/// Switch fields; those left out keep their value (or take the default on `add`).
#[derive(Debug, Default, clap::Args)]
pub struct SwitchFields {
    #[arg(long)]
    pub address: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
    #[arg(long)]
    pub name: Option<String>,
    /// officeserv or general
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// The EasySet password used to download the station table.
    #[arg(long)]
    pub password: Option<String>,
    /// true or false: only enabled switches are dialled.
    #[arg(long)]
    pub enabled: Option<bool>,
}

/// Operations on registered users.
#[derive(Debug, clap::Subcommand)]
pub enum UserCommand {
    /// Registered users.
    List,
    /// Register an address.
    Add {
        ip: String,
        #[command(flatten)]
        fields: UserFields,
    },
    /// Change some fields of a registered user.
    Set {
        ip: String,
        #[command(flatten)]
        fields: UserFields,
    },
    /// Remove a registered user.
    Delete { ip: String },
}

/// User fields; those left out keep their value (or take the default on `add`).
#[derive(Debug, Default, clap::Args)]
pub struct UserFields {
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub info: Option<String>,
    /// The switches this user is served, e.g. 1,2,4 (`none`: the default rules).
    #[arg(long, value_parser = parse_switch_list)]
    pub switches: Option<SwitchList>,
    /// The user's default switch (`none`: the global default).
    #[arg(long, value_parser = parse_optional_switch)]
    pub default_switch: Option<OptionalSwitch>,
    /// true or false: send the user only the devices it watches.
    #[arg(long)]
    pub filtering: Option<bool>,
}

/// A list of switch numbers given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SwitchList(pub Vec<u8>);

/// A switch number, or none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionalSwitch(pub Option<u8>);

fn parse_switch_number(text: &str) -> Result<u8, String> {
    text.trim()
        .parse::<u8>()
        .map_err(|_| format!("{text:?} is not a switch number (1..=8)"))
}

fn parse_switch_list(text: &str) -> Result<SwitchList, String> {
    if text.is_empty() || text == "none" {
        return Ok(SwitchList(Vec::new()));
    }
    text.split(',')
        .map(parse_switch_number)
        .collect::<Result<_, _>>()
        .map(SwitchList)
}

fn parse_optional_switch(text: &str) -> Result<OptionalSwitch, String> {
    if text == "none" {
        return Ok(OptionalSwitch(None));
    }
    parse_switch_number(text).map(|n| OptionalSwitch(Some(n)))
}

impl SwitchFields {
    fn overlay(&self, entry: &mut Value) {
        set(entry, "address", self.address.as_ref().map(|v| json!(v)));
        set(entry, "port", self.port.map(|v| json!(v)));
        set(entry, "name", self.name.as_ref().map(|v| json!(v)));
        set(entry, "type", self.kind.as_ref().map(|v| json!(v)));
        set(
            entry,
            "easyset_password",
            self.password.as_ref().map(|v| json!(v)),
        );
        set(entry, "enabled", self.enabled.map(|v| json!(v)));
    }
}

impl UserFields {
    fn overlay(&self, entry: &mut Value) {
        set(entry, "name", self.name.as_ref().map(|v| json!(v)));
        set(entry, "info", self.info.as_ref().map(|v| json!(v)));
        set(
            entry,
            "switches",
            self.switches.as_ref().map(|v| json!(v.0)),
        );
        set(
            entry,
            "default_switch",
            self.default_switch.map(|v| json!(v.0)),
        );
        set(entry, "filtering", self.filtering.map(|v| json!(v)));
    }
}

fn set(entry: &mut Value, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        entry[key] = v;
    }
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
        let result = match method {
            "GET" | "DELETE" => {
                let mut r = if method == "GET" {
                    self.agent.get(&url)
                } else {
                    self.agent.delete(&url)
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            _ => {
                let mut r = if method == "PUT" {
                    self.agent.put(&url)
                } else {
                    self.agent.post(&url)
                };
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
        if !(200..300).contains(&status) {
            anyhow::bail!("{}", error_text(&text));
        }
        Ok((status, text))
    }

    /// The configured entry of `list` (`switches` or `users`) whose `key` field is `value`.
    fn entry(&self, list: &str, key: &str, value: &str) -> anyhow::Result<Value> {
        let (_, text) = self.call("GET", "/api/config", None)?;
        let config: Value = serde_json::from_str(&text)?;
        config[list]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| match &e[key] {
                Value::String(s) => s == value,
                other => other.as_u64().is_some() && other.as_u64() == value.parse().ok(),
            })
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no {} {value} is configured", &list[..list.len() - 1]))
    }

    /// The API call that carries out `command`.
    fn request(
        &self,
        command: &CtlCommand,
    ) -> anyhow::Result<(&'static str, String, Option<Value>)> {
        Ok(match command {
            CtlCommand::Status => ("GET", "/api/status".into(), None),
            CtlCommand::Sessions => ("GET", "/api/sessions".into(), None),
            CtlCommand::Close { id } => ("DELETE", format!("/api/sessions/{id}"), None),
            CtlCommand::Switch { command } => match command {
                SwitchCommand::List => ("GET", "/api/config".into(), None),
                SwitchCommand::Add { no, fields } => {
                    let mut entry = json!({ "no": no });
                    fields.overlay(&mut entry);
                    ("POST", "/api/switches".into(), Some(entry))
                }
                SwitchCommand::Set { no, fields } => {
                    let mut entry = self.entry("switches", "no", &no.to_string())?;
                    fields.overlay(&mut entry);
                    ("PUT", format!("/api/switches/{no}"), Some(entry))
                }
                SwitchCommand::Delete { no } => ("DELETE", format!("/api/switches/{no}"), None),
                SwitchCommand::Connect { no } => {
                    ("POST", format!("/api/switches/{no}/connect"), None)
                }
                SwitchCommand::Disconnect { no } => {
                    ("POST", format!("/api/switches/{no}/disconnect"), None)
                }
                SwitchCommand::Abort { no } => ("POST", format!("/api/switches/{no}/abort"), None),
            },
            CtlCommand::User { command } => match command {
                UserCommand::List => ("GET", "/api/config".into(), None),
                UserCommand::Add { ip, fields } => {
                    let mut entry = json!({ "ip": ip });
                    fields.overlay(&mut entry);
                    ("POST", "/api/users".into(), Some(entry))
                }
                UserCommand::Set { ip, fields } => {
                    let mut entry = self.entry("users", "ip", ip)?;
                    fields.overlay(&mut entry);
                    ("PUT", format!("/api/users/{ip}"), Some(entry))
                }
                UserCommand::Delete { ip } => ("DELETE", format!("/api/users/{ip}"), None),
            },
            CtlCommand::ConnectAll => ("POST", "/api/connect-all".into(), None),
            CtlCommand::DisconnectAll => ("POST", "/api/disconnect-all".into(), None),
            CtlCommand::Licence => ("GET", "/api/license".into(), None),
            CtlCommand::Register { key } => {
                ("POST", "/api/license".into(), Some(json!({ "key": key })))
            }
            CtlCommand::Notifications { .. } => ("GET", "/api/notifications".into(), None),
            CtlCommand::Calls(args) => {
                let query = serde_urlencoded::to_string(args.query())?;
                ("GET", format!("/api/calls?{query}"), None)
            }
        })
    }

    /// Writes the kept notifications, then each new one as it comes, to `out`; returns after
    /// `limit` new ones (tests), or when the relay ends the stream.
    pub fn follow(&self, out: &mut dyn std::io::Write, limit: Option<usize>) -> anyhow::Result<()> {
        use std::io::BufRead;
        // Subscribe first, then read the kept list, so nothing falls between the two.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(std::time::Duration::from_secs(10)))
            .build()
            .into();
        let mut request = agent.get(format!("{}/api/notifications/live", self.base));
        if let Some(t) = &self.token {
            request = request.header("Authorization", format!("Bearer {t}"));
        }
        let response = request.call().map_err(|e| {
            anyhow::anyhow!("cannot reach the admin interface at {}: {e}", self.base)
        })?;
        if !response.status().is_success() {
            let text = response.into_body().read_to_string().unwrap_or_default();
            anyhow::bail!("{}", error_text(&text));
        }
        let (_, kept) = self.call("GET", "/api/notifications", None)?;
        let kept: Value = serde_json::from_str(&kept)?;
        let json = self.json;
        let show = |n: &Value, out: &mut dyn std::io::Write| -> std::io::Result<u64> {
            if json {
                writeln!(out, "{n}")?;
            } else {
                out.write_all(notification_line(n).as_bytes())?;
            }
            out.flush()?;
            Ok(n["seq"].as_u64().unwrap_or(0))
        };
        let mut last = 0;
        for n in kept.as_array().into_iter().flatten() {
            last = show(n, out)?;
        }
        let mut seen = 0;
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let line = line?;
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let n: Value = serde_json::from_str(data.trim_start())?;
            if n["seq"].as_u64().unwrap_or(0) <= last {
                continue;
            }
            show(&n, out)?;
            seen += 1;
            if limit.is_some_and(|l| seen >= l) {
                break;
            }
        }
        Ok(())
    }

    /// Runs a command and returns what to print.
    pub fn run(&self, command: &CtlCommand) -> anyhow::Result<String> {
        if let CtlCommand::Notifications { follow: true } = command {
            self.follow(&mut std::io::stdout().lock(), None)?;
            return Ok(String::new());
        }
        let (method, path, body) = self.request(command)?;
        let (_, text) = self.call(method, &path, body)?;
        if let CtlCommand::Calls(args) = command {
            if args.csv || self.json {
                return Ok(text);
            }
            let page: CallPage = serde_json::from_str(&text)
                .map_err(|e| anyhow::anyhow!("the relay's answer is not a page of calls: {e}"))?;
            return Ok(calls_table(&page));
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if self.json {
            let shown = match command {
                CtlCommand::Switch {
                    command: SwitchCommand::List,
                } => v["switches"].clone(),
                CtlCommand::User {
                    command: UserCommand::List,
                } => v["users"].clone(),
                _ if text.is_empty() => json!({}),
                _ => v,
            };
            return Ok(format!("{shown}\n"));
        }
        Ok(match command {
            CtlCommand::Status => status_table(&v),
            CtlCommand::Sessions => sessions_table(&v),
            CtlCommand::Licence => licence_line(&v),
            CtlCommand::Notifications { .. } => notifications_list(&v),
            CtlCommand::Register { .. } => format!(
                "Licence {} is in force: {}\n",
                v["serial"],
                v["grants"].as_str().unwrap_or("")
            ),
            CtlCommand::Switch {
                command: SwitchCommand::List,
            } => switch_list(&v),
            CtlCommand::User {
                command: UserCommand::List,
            } => user_list(&v),
            CtlCommand::Switch {
                command:
                    SwitchCommand::Add { .. } | SwitchCommand::Set { .. } | SwitchCommand::Delete { .. },
            }
            | CtlCommand::User { .. } => {
                if v["saved"].as_bool() == Some(true) {
                    "In force, and saved to the configuration file.\n".into()
                } else {
                    "In force (not saved: this relay runs without a configuration file).\n".into()
                }
            }
            _ => "Done.\n".into(),
        })
    }
}

fn calls_table(page: &CallPage) -> String {
    let rows = page
        .calls
        .iter()
        .map(|c| {
            vec![
                c.id.to_string(),
                c.switch.to_string(),
                c.start.clone().unwrap_or_else(|| "-".into()),
                c.call_id.clone(),
                c.extension.clone(),
                c.trunk.clone(),
                c.flag.clone(),
                c.duration_s
                    .map(|s| wire::smdr::Hms::from_secs(u64::from(s)).to_string())
                    .unwrap_or_else(|| "-".into()),
                c.digits.clone(),
                c.caller_id.clone(),
                if c.layout == "unknown" {
                    c.raw.clone()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let mut out = table(
        "",
        &[
            "ID", "SW", "START", "CALL", "EXT", "TRUNK", "FLAG", "DURATION", "DIGITS", "CALLER",
            "RAW",
        ],
        rows,
    );
    match page.next {
        Some(next) => {
            let _ = writeln!(out, "More: relay ctl calls --after {next} (same filters).");
        }
        None => {
            let _ = writeln!(out, "{} record(s).", page.calls.len());
        }
    }
    out
}

/// An API error body as one line per error: the message and the field it concerns.
fn error_text(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let line = |e: &Value| {
        let field = e["field"]
            .as_str()
            .map(|f| format!(" ({f})"))
            .unwrap_or_default();
        let message = e["error"].as_str().or(e["message"].as_str()).unwrap_or("");
        format!("{message}{field}")
    };
    match v["errors"].as_array() {
        Some(list) if !list.is_empty() => list.iter().map(line).collect::<Vec<_>>().join("\n"),
        _ if v["error"].is_string() => line(&v),
        _ => body.trim().to_owned(),
    }
}

/// Left-aligned columns as wide as their widest cell, two spaces apart, each line indented.
fn table(indent: &str, headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = indent.to_owned();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn numbers(v: &Value) -> String {
    let list: Vec<String> = v.as_array().into_iter().flatten().map(text).collect();
    if list.is_empty() {
        "-".into()
    } else {
        list.join(",")
    }
}

fn yes_no(v: &Value) -> String {
    if v.as_bool() == Some(true) {
        "yes"
    } else {
        "no"
    }
    .into()
}

fn switch_list(config: &Value) -> String {
    let rows = config["switches"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|sw| {
            vec![
                text(&sw["no"]),
                format!("{}:{}", text(&sw["address"]), sw["port"]),
                text(&sw["name"]),
                text(&sw["type"]),
                yes_no(&sw["enabled"]),
            ]
        })
        .collect();
    let mut out = table("", &["no", "address", "name", "type", "enabled"], rows);
    let _ = writeln!(out, "Default switch: {}", config["default_switch"]);
    out
}

fn user_list(config: &Value) -> String {
    let rows = config["users"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| {
            vec![
                text(&u["ip"]),
                text(&u["name"]),
                numbers(&u["switches"]),
                text(&u["default_switch"]),
                yes_no(&u["filtering"]),
                text(&u["info"]),
            ]
        })
        .collect();
    let mut out = table(
        "",
        &[
            "address",
            "name",
            "switches",
            "default",
            "filtering",
            "info",
        ],
        rows,
    );
    let allow = config["access"]["allow_unregistered"].as_bool() == Some(true);
    let _ = writeln!(
        out,
        "Unregistered addresses: {}",
        if allow { "allowed" } else { "refused" }
    );
    out
}

fn status_table(v: &Value) -> String {
    let s = &v["status"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Switches: {} configured, {} enabled, {} connected",
        s["switches_configured"], s["switches_enabled"], s["switches_connected"]
    );
    let rows = s["switches"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|sw| {
            let link = match sw["link"].as_str().unwrap_or("") {
                "connecting" => format!("connecting {}/{}", sw["attempt"], sw["attempts"]),
                "waiting" => format!("waiting {}/{}", sw["attempt"], sw["attempts"]),
                other => other.to_owned(),
            };
            vec![
                text(&sw["no"]),
                text(&sw["name"]),
                format!("{}:{}", text(&sw["address"]), sw["port"]),
                link,
                text(&sw["model"]),
                text(&sw["sessions"]),
            ]
        })
        .collect();
    out.push_str(&table(
        "  ",
        &["no", "name", "address", "link", "model", "sessions"],
        rows,
    ));
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
    let list = v.as_array().cloned().unwrap_or_default();
    let mut out = format!("Sessions: {}\n", list.len());
    let rows = list
        .iter()
        .map(|s| {
            vec![
                text(&s["id"]),
                text(&s["address"]),
                text(&s["port"]),
                text(&s["protocol"]),
                numbers(&s["switches"]),
                text(&s["state"]),
            ]
        })
        .collect();
    out.push_str(&table(
        "  ",
        &["id", "address", "port", "proto", "switches", "state"],
        rows,
    ));
    out
}

fn licence_line(l: &Value) -> String {
    match relay::licensing::LicenceStatus::deserialize(l) {
        Ok(status) => format!("Licence: {}\n", status.summary()),
        Err(e) => format!("Licence: not understood ({e})\n"),
    }
}

fn notifications_list(v: &Value) -> String {
    v.as_array()
        .into_iter()
        .flatten()
        .map(notification_line)
        .collect()
}

fn notification_line(n: &Value) -> String {
    let ms = n["time_ms"].as_u64().unwrap_or(0);
    let switch = n["switch"]
        .as_u64()
        .map(|s| format!("SW{s} "))
        .unwrap_or_default();
    format!(
        "{} {:<5} {switch}{}\n",
        crate::monitor::time_text(ms),
        n["level"].as_str().unwrap_or(""),
        n["text"].as_str().unwrap_or("")
    )
}
