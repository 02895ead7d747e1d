//! TLS for the programs around the relay: [`TlsNetwork`] dials a relay's TLS ports, checking
//! its certificate against a given authority, with a client certificate when one is given;
//! [`TlsListenNetwork`] accepts TLS (the simulated switch behind a TLS terminator).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ServerConfig};

use crate::{BoxStream, Listener, Network, TcpNetwork};

fn invalid(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

fn private_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|_| invalid(path, "holds no private key"))
}

fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(path, e))?;
    if certs.is_empty() {
        return Err(invalid(path, "holds no certificate"));
    }
    Ok(certs)
}

/// A client configuration trusting the authorities in `ca` (PEM) and, with `identity`
/// (certificate chain and key, PEM), presenting that client certificate.
pub fn client_config(ca: &Path, identity: Option<(&Path, &Path)>) -> io::Result<Arc<ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(ca)? {
        roots.add(cert).map_err(|e| invalid(ca, e))?;
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| io::Error::other(e.to_string()))?
            .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certificates(cert)?;
            let pem = std::fs::read(key).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot read {}: {e}", key.display()))
            })?;
            let key_der = PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|_| invalid(key, "holds no private key"))?;
            builder
                .with_client_auth_cert(chain, key_der)
                .map_err(|e| invalid(key, e))?
        }
    };
    Ok(Arc::new(config))
}

/// TCP whose dialled connections speak TLS (listeners stay plain). The server's certificate
/// must name the host dialled (a DNS name, or an IP address among its alternative names).
#[derive(Clone)]
pub struct TlsNetwork {
    config: Arc<ClientConfig>,
    /// The name the server's certificate must carry, when not the host dialled.
    server_name: Option<String>,
}

impl TlsNetwork {
    pub fn new(config: Arc<ClientConfig>) -> TlsNetwork {
        TlsNetwork {
            config,
            server_name: None,
        }
    }

    /// Checks the server's certificate for `name` instead of the host dialled (a relay
    /// dialled by address whose certificate carries its DNS name).
    pub fn with_server_name(mut self, name: Option<String>) -> TlsNetwork {
        self.server_name = name;
        self
    }

    /// TLS over `stream`, to `host` (the name its certificate must carry, unless another was
    /// given).
    pub async fn handshake(&self, stream: BoxStream, host: &str) -> io::Result<BoxStream> {
        let host = self.server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        Ok(Box::new(connector.connect(name, stream).await?))
    }
}

#[async_trait]
impl Network for TlsNetwork {
    async fn bind(&self, addr: SocketAddr) -> io::Result<Box<dyn Listener>> {
        TcpNetwork.bind(addr).await
    }

    async fn connect_from(
        &self,
        source: Option<IpAddr>,
        host: &str,
        port: u16,
    ) -> io::Result<BoxStream> {
        let stream = TcpNetwork.connect_from(source, host, port).await?;
        self.handshake(stream, host).await
    }
}

/// A server configuration presenting the certificate chain in `cert` with its key in `key`
/// (PEM), asking no client certificate.
pub fn server_config(cert: &Path, key: &Path) -> io::Result<Arc<ServerConfig>> {
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| io::Error::other(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certificates(cert)?, private_key(key)?)
            .map_err(|e| invalid(key, e))?;
    Ok(Arc::new(config))
}

/// TCP whose listeners speak TLS (each accepted connection's handshake is made before it is
/// handed over; one that fails is dropped). Dialling stays plain.
#[derive(Clone)]
pub struct TlsListenNetwork {
    config: Arc<ServerConfig>,
}

impl TlsListenNetwork {
    pub fn new(config: Arc<ServerConfig>) -> TlsListenNetwork {
        TlsListenNetwork { config }
    }
}

struct TlsListen {
    inner: Box<dyn Listener>,
    acceptor: tokio_rustls::TlsAcceptor,
}

#[async_trait]
impl Listener for TlsListen {
    async fn accept(&mut self) -> io::Result<(BoxStream, SocketAddr)> {
        loop {
            let (stream, peer) = self.inner.accept().await?;
            match self.acceptor.accept(stream).await {
                Ok(tls) => return Ok((Box::new(tls), peer)),
                // A failed handshake ends that connection only.
                Err(_) => continue,
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

#[async_trait]
impl Network for TlsListenNetwork {
    async fn bind(&self, addr: SocketAddr) -> io::Result<Box<dyn Listener>> {
        Ok(Box::new(TlsListen {
            inner: TcpNetwork.bind(addr).await?,
            acceptor: tokio_rustls::TlsAcceptor::from(self.config.clone()),
        }))
    }

    async fn connect_from(
        &self,
        source: Option<IpAddr>,
        host: &str,
        port: u16,
    ) -> io::Result<BoxStream> {
        TcpNetwork.connect_from(source, host, port).await
    }
}
