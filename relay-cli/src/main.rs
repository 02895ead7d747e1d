//! The `relay` command: run the relay, or check a configuration file.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use netseam::TcpNetwork;
use relay::config::LogFormat;
use relay::debug_log::{DebugLog, Layout};
use relay::{Config, Listeners, Relay, RelayParts};

/// jemalloc gives freed memory back to the system after a short delay (a background thread,
/// within a second: `.cargo/config.toml`), so that the relay's resident size follows what it
/// holds rather than the highest it ever held.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "relay",
    version,
    about = "CTI link relay between key-phone switches and CTI applications"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay in the foreground until SIGINT or SIGTERM.
    Run {
        /// The configuration file (YAML).
        #[arg(long, short, default_value = "relay.yaml")]
        config: PathBuf,
    },
    /// Run the relay with two simulated switches carrying live calls and a few simulated
    /// applications, all on loopback, with a live view; until Ctrl-C or --for passes.
    Demo {
        /// Stop after this long (e.g. 10s, 2m).
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// The client port applications connect to (bypass = this + 500).
        #[arg(long, default_value_t = 6000)]
        client_port: u16,
        /// The port the two simulated switches listen on, at 127.0.1.1 and 127.0.1.2.
        #[arg(long, default_value_t = 5002)]
        switch_port: u16,
        /// The port of the admin interface and web console, on 127.0.0.1.
        #[arg(long, default_value_t = 8080)]
        admin_port: u16,
    },
    /// Operate a running relay through its admin interface.
    Ctl {
        /// The admin interface's address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        admin: String,
        /// The admin token. Without it, the token a relay on this host made and kept in its
        /// state_dir is used: the one of --config's relay, or else of ./state or
        /// /var/lib/cti-relay.
        #[arg(long, env = "RELAY_ADMIN_TOKEN")]
        token: Option<String>,
        /// The relay's configuration file, to find the token kept in its state_dir.
        #[arg(long, env = "RELAY_CONFIG")]
        config: Option<PathBuf>,
        /// Print the API's JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// The admin interface speaks TLS: check its certificate against the authorities in
        /// this PEM file.
        #[arg(long = "tls-ca")]
        tls_ca: Option<PathBuf>,
        #[command(subcommand)]
        command: relay_cli::ctl::CtlCommand,
    },
    /// Watch a monitor port: `sw` (switch messages) or `su` (SMDR/UCD records).
    Monitor {
        /// sw or su
        which: String,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Default: 6001 for sw, 6002 for su.
        #[arg(long)]
        port: Option<u16>,
        #[arg(long, default_value = "")]
        password: String,
        /// Clear the on-screen view every N lines (0: never).
        #[arg(long, default_value_t = 0)]
        lines: usize,
        /// Save to rotating files in this directory (SWMSGn.LOG, or SMDRnn.TXT and UCDnn.TXT).
        #[arg(long)]
        save: Option<PathBuf>,
        /// Stop after this long.
        #[arg(long = "for", value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
        /// Speak TLS, trusting the authorities in this PEM file.
        #[arg(long = "tls-ca")]
        tls_ca: Option<PathBuf>,
        /// Present this client certificate (PEM), for a relay with tls.client_ca.
        #[arg(long = "tls-cert", requires_all = ["tls_ca", "tls_key"])]
        tls_cert: Option<PathBuf>,
        /// The client certificate's private key (PEM).
        #[arg(long = "tls-key", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Licence status, this host's MACs, registration, and the issuer's tools.
    #[command(alias = "licence")]
    License {
        #[command(subcommand)]
        command: LicenseCommand,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to standard output.
    Completions { shell: clap_complete::Shell },
    /// Write the manual pages (relay.1 and one per command, such as relay-ctl.1) to a directory.
    Man { dir: PathBuf },
    /// Check a configuration file and print every error in it.
    Check {
        #[arg(long, short, default_value = "relay.yaml")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum LicenseCommand {
    /// Licence number, type, MAC, limits and current use, trial days.
    Show {
        #[arg(long, short, default_value = "relay.yaml")]
        config: PathBuf,
    },
    /// This host's MAC addresses, and the connected switches' when the relay runs.
    Mac {
        #[arg(long, short, default_value = "relay.yaml")]
        config: PathBuf,
    },
    /// Register a licence key (the running relay applies it within 2 s).
    Register {
        key: String,
        #[arg(long, short, default_value = "relay.yaml")]
        config: PathBuf,
    },
    /// Replace the registered licence key.
    Change {
        key: String,
        #[arg(long, short, default_value = "relay.yaml")]
        config: PathBuf,
    },
    /// Make an issuer key pair: the private key to --out (mode 0600), the public key printed.
    Keygen {
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue (sign) a licence key.
    Issue(relay_cli::license::IssueArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "relay", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { dir } => print_outcome(
            relay_cli::manual::write_pages(<Cli as clap::CommandFactory>::command(), &dir)
                .map(|pages| format!("{pages} manual pages written to {}\n", dir.display())),
        ),
        Command::Check { config } => check(&config),
        Command::License { command } => license(command),
        Command::Ctl {
            admin,
            token,
            config,
            json,
            tls_ca,
            command,
        } => {
            let token = match token {
                Some(token) => Some(token),
                None => match kept_token(config.as_deref()) {
                    Ok(token) => token,
                    Err(e) => {
                        eprintln!("error: {e:#}");
                        return ExitCode::FAILURE;
                    }
                },
            };
            let ctl = relay_cli::ctl::Ctl::new(&admin, token, json);
            let ctl = match &tls_ca {
                Some(ca) => ctl.with_tls(ca),
                None => Ok(ctl),
            };
            print_outcome(ctl.and_then(|ctl| ctl.run(&command)))
        }
        Command::Monitor {
            which,
            host,
            port,
            password,
            lines,
            save,
            duration,
            tls_ca,
            tls_cert,
            tls_key,
        } => {
            use relay_cli::monitor::{MonitorArgs, Which};
            let net: Arc<dyn netseam::Network> = match &tls_ca {
                None => Arc::new(TcpNetwork),
                Some(ca) => {
                    let identity = tls_cert.as_deref().zip(tls_key.as_deref());
                    match netseam::tls::client_config(ca, identity) {
                        Ok(config) => Arc::new(netseam::tls::TlsNetwork::new(config)),
                        Err(e) => {
                            eprintln!("error: {e}");
                            return ExitCode::FAILURE;
                        }
                    }
                }
            };
            let (which, default_port) = match which.as_str() {
                "sw" => (Which::SwitchMessages, 6001),
                "su" => (Which::SmdrUcd, 6002),
                other => {
                    eprintln!(
                        "error: `relay monitor {other}`: use sw (switch messages) or su (SMDR/UCD)"
                    );
                    return ExitCode::FAILURE;
                }
            };
            block_on(relay_cli::monitor::run(MonitorArgs {
                which,
                host,
                port: port.unwrap_or(default_port),
                password,
                lines,
                save,
                duration,
                net,
            }))
        }
        Command::Demo {
            duration,
            client_port,
            switch_port,
            admin_port,
        } => {
            init_tracing("warn", LogFormat::Text, None);
            use std::io::IsTerminal;
            let opts = relay_cli::demo::DemoOptions {
                duration,
                client_port,
                switch_port,
                admin_port,
                clear_screen: std::io::stdout().is_terminal(),
            };
            block_on(relay_cli::demo::run(opts, async {
                let _ = stop_signal().await;
            }))
        }
        Command::Run { config: path } => {
            let config = match Config::load(&path) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let debug_log = if config.options.debug_log {
                match DebugLog::start(Layout::new(&config.log_dir)) {
                    Ok(log) => Some(log),
                    Err(e) => {
                        eprintln!(
                            "error: cannot write the debug log in {} (log_dir): {e}",
                            config.log_dir.display()
                        );
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                None
            };
            init_tracing("info", config.log.format, debug_log);
            block_on(run(path, config))
        }
    }
}

/// Runs `job` on a new runtime and turns its outcome into the exit code.
fn block_on(job: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(job) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn license(command: LicenseCommand) -> ExitCode {
    use relay_cli::license as cli;
    let outcome = match command {
        LicenseCommand::Show { config } => cli::show(&config),
        LicenseCommand::Mac { config } => cli::mac(&config),
        LicenseCommand::Register { key, config } => cli::register(&config, &key, false),
        LicenseCommand::Change { key, config } => cli::register(&config, &key, true),
        LicenseCommand::Keygen { out } => cli::keygen(&out),
        LicenseCommand::Issue(args) => cli::issue(&args),
    };
    print_outcome(outcome)
}

/// Prints a command's text, or its error, and gives the exit code.
fn print_outcome(outcome: anyhow::Result<String>) -> ExitCode {
    match outcome {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The admin token a relay on this host keeps in its state_dir: the one `config` names, or
/// else the default state directories, the first readable.
fn kept_token(config: Option<&std::path::Path>) -> anyhow::Result<Option<String>> {
    let dirs = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let config = Config::parse(&text)
                .with_context(|| format!("{} is not a configuration", path.display()))?;
            vec![config.state_dir]
        }
        None => vec![PathBuf::from("state"), PathBuf::from("/var/lib/cti-relay")],
    };
    Ok(dirs
        .iter()
        .find_map(|dir| relay::admin::token::read_kept(dir)))
}

fn check(path: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(source) => {
            let e = relay::config::LoadError::Read {
                path: path.to_owned(),
                source,
            };
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = match Config::parse(&text) {
        Ok(config) => config,
        Err(source) => {
            let e = relay::config::LoadError::Parse {
                path: path.to_owned(),
                source,
            };
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Every broken rule and every unusable file, together: the files are read as the relay
    // will read them.
    let mut errors = config.validate().err().unwrap_or_default();
    errors.extend(relay::tls::file_errors(&config));
    if !errors.is_empty() {
        let e = relay::config::LoadError::Invalid {
            path: path.to_owned(),
            errors,
        };
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "{}: valid ({} switch(es), {} user(s))",
        path.display(),
        config.switches.len(),
        config.users.len()
    );
    ExitCode::SUCCESS
}

/// Logs go to standard error (`RUST_LOG` overrides `level`): as text, coloured only on a
/// terminal, or as one JSON object a line (`log.format: json`); with `debug_log: true` also at
/// debug level to the rotating OSLn.LOG files.
fn init_tracing(level: &str, format: LogFormat, debug_log: Option<DebugLog>) {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::LevelFilter;
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let text = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
    });
    let json = (format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_writer(std::io::stderr)
    });
    let debug = debug_log.map(|log| {
        tracing_subscriber::fmt::layer()
            .with_writer(log)
            .with_ansi(false)
            .with_filter(LevelFilter::DEBUG)
    });
    tracing_subscriber::registry()
        .with(text.with_filter(filter()))
        .with(json.with_filter(filter()))
        .with(debug)
        .init();
}

async fn run(path: PathBuf, config: Config) -> anyhow::Result<()> {
    let net = Arc::new(TcpNetwork);
    let listeners = Listeners::bind(net.as_ref(), &config).await?;
    let daemon = relay::Daemon::start(RelayParts::new(config).from_file(path.clone()), listeners)
        .context("cannot start the relay")?;
    let relay = daemon.relay().clone();
    if let Some(console) = daemon.console_url() {
        tracing::info!(%console, "admin interface and web console listening");
    }
    if daemon.made_token() {
        tracing::info!(
            file = %relay::admin::token::path(&relay.config().state_dir).display(),
            "the admin token is kept here; relay ctl on this host reads it"
        );
    }
    tracing::info!(
        client = %relay.client_addr(),
        bypass = %relay.bypass_addr(),
        "listening"
    );
    wait_for_stop(&relay, &path, daemon.audit()).await?;
    tracing::info!("stop requested");
    daemon.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Reloads the configuration on each SIGHUP (each an entry of the audit log); returns on the
/// first SIGINT or SIGTERM.
async fn wait_for_stop(
    relay: &Relay,
    path: &std::path::Path,
    audit: &relay::admin::audit::AuditLog,
) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
        let stop = stop_signal();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                r = &mut stop => return r,
                _ = hup.recv() => {
                    tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
                    let outcome = relay.reload(path);
                    audit.append(&relay::admin::audit::entry(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as u64),
                        relay::admin::contract::AuditWho {
                            by: "signal".into(),
                            address: None,
                            certificate: None,
                        },
                        format!("reload {}", path.display()),
                        None,
                        if outcome.is_ok() { 200 } else { 422 },
                        outcome.err(),
                    ));
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (relay, path, audit);
        stop_signal().await
    }
}

/// Resolves on the first SIGINT or SIGTERM.
async fn stop_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot watch SIGINT")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot watch Ctrl-C")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
