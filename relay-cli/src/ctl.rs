//! `relay ctl …`: the command-line client of the admin API. Human-readable tables by default,
//! the API's JSON with `--json`.

use std::fmt::Write as _;

use relay::admin::contract::{
    AuditEntry, CallPage, CallQuery, Changed, ErrorReply, Level, LicenceKey, LicenceRegistered,
    LicenceStatus, Notification, SessionStatus, StatusReply,
};
use relay::Config;
use serde_json::{json, Value};

/// Where the admin API is and how to call it.
pub struct Ctl {
    pub base: String,
    pub token: Option<String>,
    pub json: bool,
    agent: ureq::Agent,
    /// For an admin interface speaking TLS: the authorities its certificate is checked against.
    tls: Option<ureq::tls::TlsConfig>,
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
    /// The lease on a shared site's links (bus.shared): `release` hands it to the other relay,
    /// which dials at once (this relay may take it back after 3 s if none did).
    Lease {
        #[command(subcommand)]
        command: LeaseCommand,
    },
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
    /// The audit log: changes made through the admin interface and reloads, newest last.
    Audit {
        /// How many of the newest entries (1..=10000).
        #[arg(long, short = 'n', default_value_t = 50)]
        limit: usize,
    },
}

/// Operations on the lease of a shared site.
#[derive(Debug, clap::Subcommand)]
pub enum LeaseCommand {
    /// Close this relay's links and give the lease to the other relay of the site now.
    Release,
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
        Ctl {
            base: format!("http://{address}"),
            token,
            json,
            agent: Ctl::agent(None, true),
            tls: None,
        }
    }

    /// Speaks HTTPS to an admin interface whose certificate an authority in `ca` (PEM) issued.
    pub fn with_tls(mut self, ca: &std::path::Path) -> anyhow::Result<Ctl> {
        let pem =
            std::fs::read(ca).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", ca.display()))?;
        let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                _ => None,
            })
            .collect();
        anyhow::ensure!(
            !certs.is_empty(),
            "{} holds no certificate (a PEM \"BEGIN CERTIFICATE\" block)",
            ca.display()
        );
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)))
            .build();
        self.base = self.base.replacen("http://", "https://", 1);
        self.agent = Ctl::agent(Some(tls.clone()), true);
        self.tls = Some(tls);
        Ok(self)
    }

    /// An agent for one call (`bounded`: 10 s in all) or a stream (10 s to connect).
    fn agent(tls: Option<ureq::tls::TlsConfig>, bounded: bool) -> ureq::Agent {
        let builder = ureq::Agent::config_builder().http_status_as_error(false);
        let builder = if bounded {
            builder.timeout_global(Some(std::time::Duration::from_secs(10)))
        } else {
            builder.timeout_connect(Some(std::time::Duration::from_secs(10)))
        };
        let builder = match tls {
            Some(tls) => builder.tls_config(tls),
            None => builder,
        };
        builder.build().into()
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

    /// The relay's configuration, as `GET /api/config` gives it (passwords masked).
    fn config(&self) -> anyhow::Result<Config> {
        let (_, text) = self.call("GET", "/api/config", None)?;
        reply(&text)
    }

    /// The configured switch `no`, as JSON to change and send back.
    fn switch_entry(&self, no: u8) -> anyhow::Result<Value> {
        let config = self.config()?;
        let entry = config.switches.iter().find(|s| s.no == no);
        let entry = entry.ok_or_else(|| anyhow::anyhow!("no switch {no} is configured"))?;
        Ok(serde_json::to_value(entry)?)
    }

    /// The configured user `ip`, as JSON to change and send back.
    fn user_entry(&self, ip: &str) -> anyhow::Result<Value> {
        let config = self.config()?;
        let entry = config.users.iter().find(|u| u.ip == ip);
        let entry = entry.ok_or_else(|| anyhow::anyhow!("no user {ip} is configured"))?;
        Ok(serde_json::to_value(entry)?)
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
                    let mut entry = self.switch_entry(*no)?;
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
                    let mut entry = self.user_entry(ip)?;
                    fields.overlay(&mut entry);
                    ("PUT", format!("/api/users/{ip}"), Some(entry))
                }
                UserCommand::Delete { ip } => ("DELETE", format!("/api/users/{ip}"), None),
            },
            CtlCommand::ConnectAll => ("POST", "/api/connect-all".into(), None),
            CtlCommand::DisconnectAll => ("POST", "/api/disconnect-all".into(), None),
            CtlCommand::Lease {
                command: LeaseCommand::Release,
            } => ("POST", "/api/bus/lease/release".into(), None),
            CtlCommand::Licence => ("GET", "/api/license".into(), None),
            CtlCommand::Register { key } => (
                "POST",
                "/api/license".into(),
                Some(serde_json::to_value(LicenceKey { key: key.clone() })?),
            ),
            CtlCommand::Notifications { .. } => ("GET", "/api/notifications".into(), None),
            CtlCommand::Calls(args) => {
                let query = serde_urlencoded::to_string(args.query())?;
                ("GET", format!("/api/calls?{query}"), None)
            }
            CtlCommand::Audit { limit } => ("GET", format!("/api/audit?limit={limit}"), None),
        })
    }

    /// Writes the kept notifications, then each new one as it comes, to `out`; returns after
    /// `limit` new ones (tests), or when the relay ends the stream.
    pub fn follow(&self, out: &mut dyn std::io::Write, limit: Option<usize>) -> anyhow::Result<()> {
        use std::io::BufRead;
        // Subscribe first, then read the kept list, so nothing falls between the two.
        let agent = Ctl::agent(self.tls.clone(), false);
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
        let kept: Vec<Notification> = reply(&kept)?;
        let json = self.json;
        let show = |n: &Notification, out: &mut dyn std::io::Write| -> anyhow::Result<u64> {
            if json {
                writeln!(out, "{}", serde_json::to_string(n)?)?;
            } else {
                out.write_all(notification_line(n).as_bytes())?;
            }
            out.flush()?;
            Ok(n.seq)
        };
        let mut last = 0;
        for n in &kept {
            last = show(n, out)?;
        }
        let mut seen = 0;
        let reader = std::io::BufReader::new(response.into_body().into_reader());
        for line in reader.lines() {
            let line = line?;
            let Some(data) = line.strip_prefix("data:") else {
                continue;
            };
            let n: Notification = reply(data.trim_start())?;
            if n.seq <= last {
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
            return Ok(calls_table(&reply(&text)?));
        }
        if self.json {
            let shown: Value = match command {
                CtlCommand::Switch {
                    command: SwitchCommand::List,
                } => serde_json::to_value(reply::<Config>(&text)?.switches)?,
                CtlCommand::User {
                    command: UserCommand::List,
                } => serde_json::to_value(reply::<Config>(&text)?.users)?,
                _ if text.is_empty() => json!({}),
                _ => reply(&text)?,
            };
            return Ok(format!("{shown}\n"));
        }
        Ok(match command {
            CtlCommand::Status => status_table(&reply(&text)?),
            CtlCommand::Sessions => sessions_table(&reply::<Vec<SessionStatus>>(&text)?),
            CtlCommand::Licence => licence_line(&reply(&text)?),
            CtlCommand::Notifications { .. } => reply::<Vec<Notification>>(&text)?
                .iter()
                .map(notification_line)
                .collect(),
            CtlCommand::Audit { .. } => reply::<Vec<AuditEntry>>(&text)?
                .iter()
                .map(audit_line)
                .collect(),
            CtlCommand::Register { .. } => {
                let r: LicenceRegistered = reply(&text)?;
                format!("Licence {} is in force: {}\n", r.serial, r.grants)
            }
            CtlCommand::Switch {
                command: SwitchCommand::List,
            } => switch_list(&reply(&text)?),
            CtlCommand::User {
                command: UserCommand::List,
            } => user_list(&reply(&text)?),
            CtlCommand::Switch {
                command:
                    SwitchCommand::Add { .. } | SwitchCommand::Set { .. } | SwitchCommand::Delete { .. },
            }
            | CtlCommand::User { .. } => {
                if reply::<Changed>(&text)?.saved {
                    "In force, and saved to the configuration file.\n".into()
                } else {
                    "In force (not saved: this relay runs without a configuration file).\n".into()
                }
            }
            CtlCommand::Lease { .. } => {
                "Handing over: this relay closes its links and releases the lease; the other relay of the site takes it at once.\n".into()
            }
            _ => "Done.\n".into(),
        })
    }
}

/// One audit entry as a line: when, who, what, and the outcome.
fn audit_line(e: &AuditEntry) -> String {
    let mut who = e.who.by.clone();
    if let Some(name) = &e.who.certificate {
        let _ = write!(who, " {name}");
    }
    if let Some(address) = &e.who.address {
        let _ = write!(who, " from {address}");
    }
    let outcome = match &e.error {
        Some(error) => format!("{} {error}", e.status),
        None => e.status.to_string(),
    };
    let body = e.body.as_ref().map(|b| format!(" {b}")).unwrap_or_default();
    format!("{}  {who}  {}{body}  -> {outcome}\n", e.time, e.what)
}

/// A reply body as its contract type, or an error saying the relay answered something else.
fn reply<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    serde_json::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "the relay's answer is not the expected {}: {e}",
            std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or("reply")
        )
    })
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
    match serde_json::from_str::<ErrorReply>(body) {
        Ok(e) => e.lines(),
        Err(_) => body.trim().to_owned(),
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

fn or_dash(text: impl ToString) -> String {
    let text = text.to_string();
    if text.is_empty() {
        "-".into()
    } else {
        text
    }
}

fn numbers(list: &[u8]) -> String {
    let list: Vec<String> = list.iter().map(u8::to_string).collect();
    or_dash(list.join(","))
}

fn yes_no(yes: bool) -> String {
    if yes { "yes" } else { "no" }.into()
}

fn switch_list(config: &Config) -> String {
    let rows = config
        .switches
        .iter()
        .map(|sw| {
            vec![
                sw.no.to_string(),
                match &sw.remote {
                    Some(r) => format!("bus: {}/{}", r.site, r.no),
                    None => format!("{}:{}", sw.address, sw.port),
                },
                or_dash(&sw.name),
                sw.kind.to_string(),
                yes_no(sw.enabled),
            ]
        })
        .collect();
    let mut out = table("", &["no", "address", "name", "type", "enabled"], rows);
    let _ = writeln!(out, "Default switch: {}", config.default_switch);
    out
}

fn user_list(config: &Config) -> String {
    let rows = config
        .users
        .iter()
        .map(|u| {
            vec![
                u.ip.to_string(),
                or_dash(&u.name),
                numbers(&u.switches),
                u.default_switch.map_or("-".into(), |n| n.to_string()),
                yes_no(u.filtering),
                or_dash(&u.info),
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
    let allow = config.access.allow_unregistered;
    let _ = writeln!(
        out,
        "Unregistered addresses: {}",
        if allow { "allowed" } else { "refused" }
    );
    out
}

fn status_table(v: &StatusReply) -> String {
    let s = &v.status;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Switches: {} configured, {} enabled, {} connected",
        s.switches_configured, s.switches_enabled, s.switches_connected
    );
    let rows = s
        .switches
        .iter()
        .map(|sw| {
            let link = match sw.link.as_str() {
                "connecting" | "waiting" => format!("{} {}/{}", sw.link, sw.attempt, sw.attempts),
                other => other.to_owned(),
            };
            vec![
                sw.no.to_string(),
                or_dash(&sw.name),
                if sw.port == 0 {
                    sw.address.clone()
                } else {
                    format!("{}:{}", sw.address, sw.port)
                },
                link,
                sw.model.clone().unwrap_or_else(|| "-".into()),
                sw.sessions.to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        "  ",
        &["no", "name", "address", "link", "model", "sessions"],
        rows,
    ));
    out.push_str(&sessions_table(&s.sessions));
    out.push_str(&licence_line(&s.licence));
    if let Some(bus) = &s.bus {
        let _ = writeln!(out, "Bus: {}", bus.summary());
    }
    let m = &v.monitors;
    let _ = writeln!(
        out,
        "Monitors: switch messages {}, SMDR/UCD {}, export {}",
        m.switch_messages, m.smdr_ucd, m.export
    );
    out
}

fn sessions_table(list: &[SessionStatus]) -> String {
    let mut out = format!("Sessions: {}\n", list.len());
    let rows = list
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.address.clone(),
                s.port.to_string(),
                s.protocol.to_string(),
                numbers(&s.switches),
                or_dash(&s.state),
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

fn licence_line(status: &LicenceStatus) -> String {
    format!("Licence: {}\n", status.summary())
}

fn notification_line(n: &Notification) -> String {
    let switch = n.switch.map(|s| format!("SW{s} ")).unwrap_or_default();
    let level = match n.level {
        Level::Info => "info",
        Level::Fault => "fault",
    };
    format!(
        "{} {level:<5} {switch}{}\n",
        crate::monitor::time_text(n.time_ms),
        n.text
    )
}
