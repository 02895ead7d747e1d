//! The relay daemon assembled in one place: the relay (its ports, switches, bus, shared-site
//! configuration, spool and call store, see [`Relay::start`]) and the admin interface (API,
//! metrics, web console, WebSocket gateway) on the admin listener, started together and
//! stopped with one call. `relay run`, `relay demo` and the test kit start the relay here.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::admin::audit::AuditLog;
use crate::admin::token::TokenError;
use crate::admin::{AdminServer, AdminState};
use crate::server::{Listeners, Relay, RelayParts, StartError};

/// Why the daemon could not start; nothing was left running.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Relay(#[from] StartError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("cannot read the address of the admin port")]
    AdminAddr(#[source] std::io::Error),
}

/// A running daemon; [`Daemon::shutdown`] stops it.
pub struct Daemon {
    relay: Arc<Relay>,
    admin: Option<AdminServer>,
    audit: AuditLog,
    token: Option<String>,
    /// Whether the token was made at this start (none configured): the console's address then
    /// carries it, so the operator has nothing to look up.
    made_token: bool,
    tls_admin: bool,
}

impl Daemon {
    /// Starts the relay on `listeners` and, when `listeners.admin` is bound, the admin
    /// interface on it, with the configured token or the one kept in `state_dir` (made at the
    /// first start when none is configured).
    pub fn start(parts: RelayParts, mut listeners: Listeners) -> Result<Daemon, DaemonError> {
        let admin_listener = listeners.admin.take();
        let config = &parts.config;
        let token = match admin_listener {
            Some(_) => crate::admin::token::resolve(config)?,
            None => None,
        };
        let made_token = config.admin.token.is_none() && token.is_some();
        let tls_admin = config.tls.on(crate::config::TlsPort::Admin);
        let config_file = parts.config_file.clone();
        let relay = Relay::start(parts, listeners)?;
        let state = AdminState::new(relay.clone(), token.clone(), config_file);
        let audit = state.audit.clone();
        let admin = match admin_listener {
            Some(listener) => match crate::admin::serve(state, listener) {
                Ok(server) => Some(server),
                Err(e) => {
                    let relay = relay.clone();
                    crate::task::spawn(async move { relay.shutdown().await });
                    return Err(DaemonError::AdminAddr(e));
                }
            },
            None => None,
        };
        Ok(Daemon {
            relay,
            admin,
            audit,
            token,
            made_token,
            tls_admin,
        })
    }

    pub fn relay(&self) -> &Arc<Relay> {
        &self.relay
    }

    /// Where the admin interface listens, when it is served.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr)
    }

    /// The token admin requests must carry (`None`: none asked).
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether the token was made at this start rather than configured.
    pub fn made_token(&self) -> bool {
        self.made_token
    }

    /// The web console's address (`https` when the admin port speaks TLS), carrying a token
    /// made at this start in its fragment, which the browser keeps to itself.
    pub fn console_url(&self) -> Option<String> {
        let addr = self.admin_addr()?;
        let scheme = if self.tls_admin { "https" } else { "http" };
        Some(match (&self.token, self.made_token) {
            (Some(token), true) => format!("{scheme}://{addr}/#token={token}"),
            _ => format!("{scheme}://{addr}/"),
        })
    }

    /// The audit log the admin interface writes, for changes made elsewhere (a reload).
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Stops the relay (every session told first) and then the admin interface.
    pub async fn shutdown(self) {
        self.relay.shutdown().await;
        if let Some(admin) = self.admin {
            admin.stop().await;
        }
    }
}
