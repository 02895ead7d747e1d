//! TLS on the relay's ports (`tls` in the configuration): the server configuration built from
//! the certificate, key and client-authority files, replaced whole on a reload (connections
//! already made keep theirs), and the handshake of each accepted connection.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use crate::config::{ConfigError, Tls, TlsPort};
use netseam::BoxStream;

/// Longest a client may take over its handshake before its connection is closed.
pub const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Why the TLS files could not be used; the field and the file are named.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        field: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} holds no certificate (a PEM \"BEGIN CERTIFICATE\" block)")]
    NoCertificate { field: &'static str, path: PathBuf },
    #[error("{path} holds no private key (a PEM PKCS#8, PKCS#1 or SEC1 key)")]
    NoKey { path: PathBuf },
    #[error("the key in {key} does not match the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("{path} cannot be used: {error}")]
    Invalid {
        field: &'static str,
        path: PathBuf,
        error: String,
    },
}

impl TlsError {
    /// The configuration field whose file is wrong.
    pub fn field(&self) -> &'static str {
        match self {
            TlsError::Read { field, .. }
            | TlsError::NoCertificate { field, .. }
            | TlsError::Invalid { field, .. } => field,
            TlsError::NoKey { .. } | TlsError::Mismatch { .. } => "tls.key",
        }
    }

    pub fn to_config_error(&self) -> ConfigError {
        ConfigError {
            field: self.field().into(),
            message: self.to_string(),
        }
    }
}

fn read(field: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        field,
        path: path.to_owned(),
        source,
    })
}

fn certificates(
    field: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            field,
            path: path.to_owned(),
            error: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            field,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every problem with the files `config` names (the relay's certificate, key and client
/// authorities, and each switch's `tls_ca`), each file checked on its own so that all are
/// reported at once; then whether the key matches the certificate.
pub fn file_errors(config: &crate::Config) -> Vec<ConfigError> {
    let tls = &config.tls;
    let mut errors = Vec::new();
    let cert = tls.cert.as_deref().map(|p| certificates("tls.cert", p));
    let key = tls.key.as_deref().map(|p| {
        read("tls.key", p).and_then(|pem| {
            PrivateKeyDer::from_pem_slice(&pem)
                .map(|_| ())
                .map_err(|_| TlsError::NoKey { path: p.to_owned() })
        })
    });
    let ca = tls
        .client_ca
        .as_deref()
        .map(|p| certificates("tls.client_ca", p));
    let mut whole = true;
    for outcome in [cert.map(|r| r.map(|_| ())), key, ca.map(|r| r.map(|_| ()))]
        .into_iter()
        .flatten()
    {
        if let Err(e) = outcome {
            whole = false;
            errors.push(e.to_config_error());
        }
    }
    if whole {
        if let Err(e) = server_config(tls) {
            errors.push(e.to_config_error());
        }
    }
    for (i, sw) in config.switches.iter().enumerate() {
        if let Some(ca) = &sw.tls_ca {
            if let Err(e) = netseam::tls::client_config(ca, None) {
                errors.push(ConfigError {
                    field: format!("switches[{i}].tls_ca"),
                    message: e.to_string(),
                });
            }
        }
    }
    errors
}

/// The server configuration of `tls`, reading its files; `None` when no port speaks TLS.
pub fn server_config(tls: &Tls) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (Some(cert_path), Some(key_path)) = (&tls.cert, &tls.key) else {
        return Ok(None);
    };
    if tls.ports.is_empty() {
        return Ok(None);
    }
    let chain = certificates("tls.cert", cert_path)?;
    let key = PrivateKeyDer::from_pem_slice(&read("tls.key", key_path)?).map_err(|_| {
        TlsError::NoKey {
            path: key_path.clone(),
        }
    })?;
    let invalid = |field, path: &Path| {
        let path = path.to_owned();
        move |e: rustls::Error| TlsError::Invalid {
            field,
            path,
            error: e.to_string(),
        }
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(invalid("tls.cert", cert_path))?;
    let builder = match &tls.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca_path) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in certificates("tls.client_ca", ca_path)? {
                roots.add(ca).map_err(invalid("tls.client_ca", ca_path))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Invalid {
                    field: "tls.client_ca",
                    path: ca_path.clone(),
                    error: e.to_string(),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: cert_path.clone(),
            key: key_path.clone(),
        },
        e => TlsError::Invalid {
            field: "tls.key",
            path: key_path.clone(),
            error: e.to_string(),
        },
    })?;
    Ok(Some(Arc::new(config)))
}

/// TLS as the relay runs it: the server configuration in force (which ports use it is the
/// configuration's `tls.ports`), and handshakes counted.
#[derive(Default)]
pub struct TlsState {
    config: ArcSwapOption<ServerConfig>,
    pub handshakes: AtomicU64,
    pub handshakes_failed: AtomicU64,
}

impl TlsState {
    /// Puts `config` (from [`server_config`]) in force for connections accepted from now on.
    pub fn set(&self, config: Option<Arc<ServerConfig>>) {
        self.config.store(config);
    }

    /// The server configuration of `port` when `tls` (the configuration in force) has it
    /// speak TLS.
    pub fn on(&self, tls: &Tls, port: TlsPort) -> Option<Arc<ServerConfig>> {
        tls.on(port).then(|| self.config.load_full()).flatten()
    }

    /// The handshake of a connection accepted on a TLS port, within [`HANDSHAKE_LIMIT`];
    /// failures are counted. Returns the stream with the names of the client's certificate
    /// (verified against `tls.client_ca`; none without it).
    pub async fn accept(
        &self,
        config: Arc<ServerConfig>,
        stream: BoxStream,
    ) -> io::Result<(BoxStream, Vec<String>)> {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let outcome = tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(stream)).await;
        match outcome {
            Ok(Ok(tls)) => {
                self.handshakes.fetch_add(1, Ordering::Relaxed);
                let names = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|cert| certificate_names(cert))
                    .unwrap_or_default();
                Ok((Box::new(tls), names))
            }
            Ok(Err(e)) => {
                self.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
            Err(_) => {
                self.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the TLS handshake did not finish within 10 s",
                ))
            }
        }
    }
}

/// The names a certificate gives its holder: its subject's common names, then the DNS names
/// among its alternative names.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    fn tls(cert: &Path, key: &Path, ca: Option<&Path>) -> Tls {
        Tls {
            ports: vec![TlsPort::Client],
            cert: Some(cert.to_owned()),
            key: Some(key.to_owned()),
            client_ca: ca.map(Path::to_owned),
        }
    }

    fn refusal(tls: &Tls) -> (String, String) {
        let e = server_config(tls).expect_err("refused");
        (e.field().to_owned(), e.to_string())
    }

    #[test]
    fn every_unusable_file_is_named_with_its_field() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = write_pair(dir.path(), "relay");
        let (_, other_key) = write_pair(dir.path(), "other");
        assert!(server_config(&tls(&cert, &key, Some(&cert)))
            .unwrap()
            .is_some());
        assert!(server_config(&Tls::default()).unwrap().is_none());

        let missing = dir.path().join("missing.pem");
        let (field, text) = refusal(&tls(&missing, &key, None));
        assert_eq!(field, "tls.cert");
        assert!(
            text.starts_with(&format!("cannot read {}: ", missing.display())),
            "{text}"
        );
        assert_eq!(
            refusal(&tls(&key, &key, None)),
            (
                "tls.cert".into(),
                format!(
                    "{} holds no certificate (a PEM \"BEGIN CERTIFICATE\" block)",
                    key.display()
                )
            )
        );
        assert_eq!(
            refusal(&tls(&cert, &cert, None)),
            (
                "tls.key".into(),
                format!(
                    "{} holds no private key (a PEM PKCS#8, PKCS#1 or SEC1 key)",
                    cert.display()
                )
            )
        );
        assert_eq!(
            refusal(&tls(&cert, &other_key, None)),
            (
                "tls.key".into(),
                format!(
                    "the key in {} does not match the certificate in {}",
                    other_key.display(),
                    cert.display()
                )
            )
        );
        assert_eq!(
            refusal(&tls(&cert, &key, Some(&key))).0,
            "tls.client_ca".to_owned()
        );
    }
}
