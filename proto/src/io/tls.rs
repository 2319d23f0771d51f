//! TLS for SIP's stream transport (RFC 3261 §26.2, RFC 5630 §3): the rustls configurations the
//! socket shell accepts and opens `TLS` connections with, certificates and keys read from PEM
//! files, a self-signed certificate kept on disk for a server that was given none, and the
//! `SSLKEYLOGFILE` key log (the NSS format Wireshark reads to decrypt a capture).
//!
//! Everything uses rustls with the *ring* provider, chosen per configuration, so no process-wide
//! default provider needs installing.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, KeyLogFile, RootCertStore, ServerConfig};
use tracing::debug;

/// How long a TLS handshake may take before the connection is closed.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The file names of a generated certificate and its key in the data directory.
const SELF_SIGNED_CERT: &str = "tls-certificate.pem";
const SELF_SIGNED_KEY: &str = "tls-private-key.pem";

/// TLS settings of [`Transports`](super::Transports): where to accept TLS, the certificate to
/// present, and how to verify the servers we connect to.
#[derive(Debug, Clone)]
pub struct TlsOptions {
    /// Addresses to accept TLS on (each a TCP listener); needs `server`.
    pub listen: Vec<SocketAddr>,
    /// Our certificate and key, for accepted connections.
    pub server: Option<Arc<ServerConfig>>,
    /// The trusted roots, for connections we open; without it, sending over TLS to a peer we
    /// have no connection with fails.
    pub client: Option<Arc<ClientConfig>>,
    /// The name to verify the certificate of a server against (and send as SNI), by address;
    /// a server not listed must present a certificate for its IP address.
    pub server_names: HashMap<SocketAddr, String>,
    /// How long a handshake may take, either way.
    pub handshake_timeout: Duration,
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            listen: Vec::new(),
            server: None,
            client: None,
            server_names: HashMap::new(),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        }
    }
}

impl TlsOptions {
    /// The name a server at `addr` must prove: the configured one, else its IP address.
    pub(crate) fn server_name(&self, addr: SocketAddr) -> Option<ServerName<'static>> {
        match self.server_names.get(&addr) {
            Some(name) => ServerName::try_from(name.clone()).ok(),
            None => Some(ServerName::IpAddress(addr.ip().into())),
        }
    }
}

/// A certificate, key or trust file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("cannot use {}: {error}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// A certificate file held no PEM certificate.
    #[error("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", .path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A key file held no PEM private key.
    #[error("{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)", .path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// rustls refused the certificate or key (a key that does not match, an unsupported
    /// algorithm, a malformed CA certificate).
    #[error("{} cannot be used for TLS: {error}", .path.display())]
    Rejected {
        /// The certificate file.
        path: PathBuf,
        /// What rustls said.
        error: rustls::Error,
    },
    /// A self-signed certificate could not be made.
    #[error("cannot generate a TLS certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

fn file_error(path: &Path) -> impl FnOnce(io::Error) -> TlsError + '_ {
    move |error| TlsError::File { path: path.to_owned(), error }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM file.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = fs::read(path).map_err(file_error(path))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.to_owned() });
    }
    Ok(certs)
}

/// The server side: the certificate chain of `certificate` (leaf first) and the key of
/// `private_key`, both PEM. Secrets go to `SSLKEYLOGFILE` when it is set.
pub fn server_config(certificate: &Path, private_key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certificates(certificate)?;
    let pem = fs::read(private_key).map_err(file_error(private_key))?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::NoKey { path: private_key.to_owned() })?;
    let rejected = |error| TlsError::Rejected { path: certificate.to_owned(), error };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(rejected)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(rejected)?;
    config.key_log = Arc::new(KeyLogFile::new());
    Ok(Arc::new(config))
}

/// The client side: servers are verified against the system's trusted roots and, when given,
/// the certificates of the PEM file `ca` (a private CA, or a server's self-signed certificate
/// to pin). Secrets go to `SSLKEYLOGFILE` when it is set.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    if !system.errors.is_empty() {
        debug!(errors = ?system.errors, "some system root certificates could not be read");
    }
    let (added, ignored) = roots.add_parsable_certificates(system.certs);
    debug!(added, ignored, "system root certificates");
    if let Some(path) = ca {
        for cert in read_certificates(path)? {
            roots.add(cert).map_err(|error| TlsError::Rejected { path: path.to_owned(), error })?;
        }
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Rejected { path: ca.unwrap_or(Path::new("system roots")).to_owned(), error })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.key_log = Arc::new(KeyLogFile::new());
    Ok(Arc::new(config))
}

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles {
    /// The certificate (give this one to clients to trust).
    pub certificate: PathBuf,
    /// Its private key.
    pub private_key: PathBuf,
}

impl CertificateFiles {
    /// The server configuration presenting this certificate.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        server_config(&self.certificate, &self.private_key)
    }
}

/// The self-signed certificate kept in `dir`: the one made on an earlier run when both files are
/// there (so clients that pinned it keep trusting it), else a new one for `names` (host names
/// and IP addresses, as subject alternative names), written with its key readable by the owner
/// only. Delete the files to make a new one.
pub fn self_signed(dir: &Path, names: &[String]) -> Result<(CertificateFiles, bool), TlsError> {
    let files = CertificateFiles { certificate: dir.join(SELF_SIGNED_CERT), private_key: dir.join(SELF_SIGNED_KEY) };
    if files.certificate.is_file() && files.private_key.is_file() {
        return Ok((files, false));
    }
    let (cert, key) = generate_self_signed(names)?;
    fs::create_dir_all(dir).map_err(file_error(dir))?;
    write_private(&files.private_key, key.as_bytes())?;
    fs::write(&files.certificate, cert).map_err(file_error(&files.certificate))?;
    Ok((files, true))
}

/// A new self-signed certificate for `names` and its key, both PEM.
pub fn generate_self_signed(names: &[String]) -> Result<(String, String), TlsError> {
    let mut unique: Vec<String> = Vec::new();
    for name in names {
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if !name.is_empty() && !unique.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            unique.push(name.to_owned());
        }
    }
    let mut params = rcgen::CertificateParams::new(unique.clone())?;
    let common_name = unique.iter().find(|n| n.parse::<IpAddr>().is_err()).or(unique.first());
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = common_name {
        params.distinguished_name.push(rcgen::DnType::CommonName, cn.as_str());
    }
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), TlsError> {
    use std::io::Write;
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(file_error(path))?;
    file.write_all(data).map_err(file_error(path))
}

/// The rustls error inside an I/O error from a handshake, if that is what it is.
pub(crate) fn rustls_error(error: &io::Error) -> Option<&rustls::Error> {
    error.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["voip.example".to_owned(), "127.0.0.1".to_owned()];
        let (files, created) = self_signed(dir.path(), &names).unwrap();
        assert!(created);
        let first = fs::read(&files.certificate).unwrap();
        assert!(files.server_config().is_ok());
        let (again, created) = self_signed(dir.path(), &names).unwrap();
        assert!(!created);
        assert_eq!(again, files);
        assert_eq!(fs::read(&again.certificate).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&files.private_key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
        }
    }

    #[test]
    fn a_file_without_pem_gives_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        fs::write(&path, "not a certificate").unwrap();
        let error = client_config(Some(&path)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display())
        );
        let missing = dir.path().join("missing.pem");
        assert!(client_config(Some(&missing)).unwrap_err().to_string().starts_with("cannot use "));
    }

    #[test]
    fn a_key_that_does_not_match_the_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _) = generate_self_signed(&["a.example".into()]).unwrap();
        let (_, other_key) = generate_self_signed(&["b.example".into()]).unwrap();
        let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        fs::write(&cert_path, cert).unwrap();
        fs::write(&key_path, other_key).unwrap();
        assert!(matches!(server_config(&cert_path, &key_path), Err(TlsError::Rejected { .. })));
    }
}
