//! The relay's listening ports, bound before it starts so that a taken port stops nothing.

use std::net::SocketAddr;

use netseam::{Listener, Network};

use crate::config::Config;

/// Where the relay listens.
pub struct Listeners {
    pub client: Box<dyn Listener>,
    pub bypass: Box<dyn Listener>,
    /// Switch-message monitor port, when on.
    pub monitor_sw: Option<Box<dyn Listener>>,
    /// SMDR/UCD monitor port, when on.
    pub monitor_su: Option<Box<dyn Listener>>,
    /// SMDR/UCD export port, when on.
    pub export: Option<Box<dyn Listener>>,
    /// The admin interface (API, metrics, web console, WebSocket gateway), served by
    /// [`crate::daemon::Daemon`]; `None`: not served.
    pub admin: Option<Box<dyn Listener>>,
}

impl Listeners {
    /// Both ports on 127.0.0.1, at ports the system picks (tests, benches, simulations).
    pub async fn loopback(net: &dyn Network) -> std::io::Result<Listeners> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Ok(Listeners {
            client: net.bind(any).await?,
            bypass: net.bind(any).await?,
            monitor_sw: Some(net.bind(any).await?),
            monitor_su: Some(net.bind(any).await?),
            export: Some(net.bind(any).await?),
            admin: None,
        })
    }

    /// The same, with the admin interface on 127.0.0.1 at a port the system picks too.
    pub async fn loopback_with_admin(net: &dyn Network) -> std::io::Result<Listeners> {
        let mut listeners = Listeners::loopback(net).await?;
        listeners.admin = Some(net.bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?);
        Ok(listeners)
    }

    /// Binds every port of the configuration: client, bypass (client + 500), and the monitor
    /// and export ports that are on, and the admin port (`admin.address`, `admin.port`).
    pub async fn bind(net: &dyn Network, config: &Config) -> Result<Listeners, BindError> {
        let admin = SocketAddr::new(config.admin.address, config.admin.port);
        Listeners::bind_with_admin(net, config, admin).await
    }

    /// The same, with the admin interface at `admin` instead of the configured address (a
    /// port of 0: one the system picks).
    pub async fn bind_with_admin(
        net: &dyn Network,
        config: &Config,
        admin: SocketAddr,
    ) -> Result<Listeners, BindError> {
        let ip = config.listen.address;
        let client_port = config.listen.client_port;
        let bypass_port =
            u16::try_from(config.listen.bypass_port()).map_err(|_| BindError::BypassPortOver)?;
        let bind_addr = |addr: SocketAddr, what: &'static str| async move {
            net.bind(addr)
                .await
                .map_err(|source| BindError::Port { what, addr, source })
        };
        let bind = |port: u16, what: &'static str| bind_addr(SocketAddr::new(ip, port), what);
        let client = bind(client_port, "client").await?;
        let bypass = bind(bypass_port, "bypass").await?;
        let optional = |port: Option<u16>, what: &'static str| async move {
            match port {
                None => Ok(None),
                Some(p) => bind(p, what).await.map(Some),
            }
        };
        Ok(Listeners {
            client,
            bypass,
            monitor_sw: optional(config.monitor.sw_port, "switch-message monitor").await?,
            monitor_su: optional(config.monitor.su_port, "SMDR/UCD monitor").await?,
            export: optional(config.export.port, "SMDR/UCD export").await?,
            admin: Some(bind_addr(admin, "admin").await?),
        })
    }
}

/// Why the relay's ports could not be bound.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("the bypass port (client_port + 500) is over 65535")]
    BypassPortOver,
    #[error("cannot listen on the {what} port {addr}")]
    Port {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
