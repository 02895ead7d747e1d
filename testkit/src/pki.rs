//! Certificates for TLS tests, made on the spot (rcgen): an authority, a relay certificate
//! for 127.0.0.1 and `localhost` it issued, and client certificates, written as PEM files.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

/// An authority that issues certificates.
pub struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// Its certificate, as a PEM file.
    pub file: PathBuf,
}

/// A certificate and its key, as PEM files.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Authority {
    /// A new authority named `name`, its certificate written in `dir`.
    pub fn new(dir: &Path, name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let file = dir.join(format!("{name}.ca.pem"));
        std::fs::write(&file, cert.pem()).unwrap();
        Authority { cert, key, file }
    }

    /// A certificate for the relay on loopback (127.0.0.1 and `localhost`), as `name`.
    pub fn relay(&self, dir: &Path, name: &str) -> Issued {
        self.server(dir, name, IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// A server certificate for `ip` (and `localhost`), as `name`.
    pub fn server(&self, dir: &Path, name: &str, ip: IpAddr) -> Issued {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.subject_alt_names.push(SanType::IpAddress(ip));
        params.distinguished_name.push(DnType::CommonName, name);
        self.issue(dir, name, params)
    }

    /// A client certificate whose subject's common name is `name`.
    pub fn client(&self, dir: &Path, name: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        self.issue(dir, name, params)
    }

    fn issue(&self, dir: &Path, name: &str, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let issued = Issued {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }
}
