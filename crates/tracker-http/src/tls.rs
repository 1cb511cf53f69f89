//! TLS for the `[https]` listeners: the certificate and key loaded from PEM files
//! ([`load_certified_key`]), and [`TlsCerts`], the one rustls server config every HTTPS
//! connection is accepted with, whose certificate can be swapped while the listeners run
//! ([`TlsCerts::reload`]).
//!
//! The swap: the config's certificate resolver reads an `ArcSwap<CertifiedKey>` at each
//! handshake, so a new connection gets whatever certificate is current when its ClientHello
//! arrives and an open connection keeps the one it was made with (TLS never looks at it again).
//! A reload that fails (missing file, bad PEM, key not matching the certificate) changes
//! nothing. rustls with the `ring` provider: TLS 1.3 and 1.2, ALPN `http/1.1`.
//!
//! What does not live here: the handshake's time bound and slot handling (`crate::server`),
//! when a reload happens (the daemon's SIGHUP).

use std::fmt;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// Largest certificate or key file read, in bytes: a chain of a few certificates is a few KiB.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// Why a certificate or key could not be used. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("{}: cannot read the {what}: {source}", path.display())]
    Read {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file is over [`MAX_PEM_BYTES`].
    #[error("{}: the {what} file is larger than {MAX_PEM_BYTES} bytes", path.display())]
    TooLarge {
        /// "certificate" or "private key".
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The file is not valid PEM, or holds none of what was looked for.
    #[error("{}: {reason}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The key is not one rustls can sign with, or does not match the certificate.
    #[error("{}: {reason}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the server configuration (not expected with the ring provider).
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// The provider every HTTPS connection uses: ring's (see docs/DESIGN.md for why ring).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads at most [`MAX_PEM_BYTES`] of `path`.
fn read_limited(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    let read_err = |source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(TlsError::TooLarge {
            what,
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

fn pem_reason(e: &pem::Error) -> String {
    format!("not valid PEM ({e})")
}

/// Loads a certificate chain (`cert_file`: the server's certificate first, then any
/// intermediates, as PEM `CERTIFICATE` blocks) and its private key (`key_file`: PKCS#8,
/// PKCS#1 RSA or SEC1 EC PEM), and checks that the key matches the certificate.
pub fn load_certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read_limited(cert_file, "certificate")?;
    let pem_err = |path: &Path, reason| TlsError::Pem {
        path: path.to_owned(),
        reason,
    };
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_err(cert_file, pem_reason(&e)))?;
    if chain.is_empty() {
        return Err(pem_err(
            cert_file,
            "no certificate found (expected a PEM block -----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let key_pem = read_limited(key_file, "private key")?;
    let key = match PrivateKeyDer::from_pem_slice(&key_pem) {
        Ok(k) => k,
        Err(pem::Error::NoItemsFound) => {
            return Err(pem_err(
                key_file,
                "no private key found (expected a PEM block -----BEGIN PRIVATE KEY-----, \
                 RSA PRIVATE KEY or EC PRIVATE KEY)"
                    .into(),
            ));
        }
        Err(e) => return Err(pem_err(key_file, pem_reason(&e))),
    };
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Key {
        path: key_file.to_owned(),
        reason: match e {
            rustls::Error::InconsistentKeys(_) => format!(
                "the private key does not match the certificate in {}",
                cert_file.display()
            ),
            rustls::Error::InvalidCertificate(e) => format!(
                "the certificate in {} cannot be parsed ({e:?})",
                cert_file.display()
            ),
            other => format!("unusable private key ({other})"),
        },
    })
}

/// The current certificate, read at each handshake.
struct Resolver(ArcSwap<CertifiedKey>);

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("chain_len", &self.0.load().cert.len())
            .finish()
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// The TLS server side of the `[https]` listeners: one rustls config whose certificate can be
/// replaced ([`TlsCerts::reload`]) while connections are open. Shared by every HTTPS listener.
#[derive(Debug)]
pub struct TlsCerts {
    resolver: Arc<Resolver>,
    config: Arc<ServerConfig>,
}

impl TlsCerts {
    /// Loads `cert_file` and `key_file` ([`load_certified_key`]).
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<TlsCerts>, TlsError> {
        let key = load_certified_key(cert_file, key_file)?;
        let resolver = Arc::new(Resolver(ArcSwap::from_pointee(key)));
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&resolver) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(TlsCerts {
            resolver,
            config: Arc::new(config),
        }))
    }

    /// Re-reads the files and, if they load, serves the new certificate to every connection
    /// from now on; open connections keep theirs. On an error nothing changes. Returns the
    /// number of certificates in the new chain.
    pub fn reload(&self, cert_file: &Path, key_file: &Path) -> Result<usize, TlsError> {
        let key = load_certified_key(cert_file, key_file)?;
        let n = key.cert.len();
        self.resolver.0.store(Arc::new(key));
        Ok(n)
    }

    /// The end-entity certificate served to new connections now (DER).
    pub fn current_cert(&self) -> CertificateDer<'static> {
        self.resolver.0.load().cert[0].clone()
    }

    /// An acceptor with the one shared config (an `Arc` clone).
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.config))
    }
}

#[cfg(test)]
mod tests;
