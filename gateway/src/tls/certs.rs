//! The certificates the HTTPS listener serves, chosen by SNI in every handshake.
//!
//! Two sources feed one store: the PEM files of `tls_certs` (loaded at start and again on
//! `SIGHUP`) and the certificates ACME obtained. Each change builds a new immutable lookup
//! table and swaps it in; a handshake reads the current table without a lock. Connections that
//! are open keep the certificate they were made with, so a reload drops nothing.
//!
//! A certificate is found by its own names (subject alternative names, or the common name when
//! it has none): an exact name first, then a wildcard `*.example.com` for one label, then the
//! default, which is the first file of `tls_certs` (or else the first ACME certificate). A
//! client that sends no SNI (a request by IP address) gets the default.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// A certificate file and its key file, as `tls_certs` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate that cannot be served, naming the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {message}")]
    Invalid { what: String, message: String },
}

/// One usable certificate: the chain with its signing key, and what the store needs to know.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The names it is valid for, lowercase (`*.example.com` for a wildcard).
    pub names: Vec<String>,
    /// The end of its validity.
    pub not_after: SystemTime,
    /// The start of its validity.
    pub not_before: SystemTime,
    /// The leaf's serial number, as hex (logs, tests).
    pub serial: String,
    pub key: Arc<CertifiedKey>,
}

impl Loaded {
    /// How long it is valid from issue to expiry.
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or_default()
    }
}

/// Reads a certificate chain and its private key from PEM files.
pub fn load_files(files: &CertFiles) -> Result<Loaded, CertError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| CertError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    parse_pem(
        &cert_pem,
        &key_pem,
        &files.cert.display().to_string(),
        &files.key.display().to_string(),
    )
}

/// Parses a PEM certificate chain (leaf first) and a PEM private key; `cert_name` and
/// `key_name` name them in errors.
pub fn parse_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_name: &str,
    key_name: &str,
) -> Result<Loaded, CertError> {
    let invalid = |what: &str, message: String| CertError::Invalid {
        what: what.to_string(),
        message,
    };
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| invalid(cert_name, format!("not a PEM certificate chain: {err}")))?;
    let Some(leaf) = chain.first() else {
        return Err(invalid(cert_name, "holds no certificate".to_string()));
    };
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|err| invalid(key_name, format!("not a PEM private key: {err}")))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|err| invalid(cert_name, format!("cannot parse the certificate: {err}")))?;
    let names = names_of(&parsed);
    if names.is_empty() {
        return Err(invalid(
            cert_name,
            "names no host (no DNS subject alternative name or common name)".to_string(),
        ));
    }
    let time = |t: x509_parser::time::ASN1Time| {
        let secs = t.timestamp();
        if secs >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            SystemTime::UNIX_EPOCH
        }
    };
    let not_before = time(parsed.validity().not_before);
    let not_after = time(parsed.validity().not_after);
    let serial = parsed.raw_serial_as_string().replace(':', "");
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain.clone(), key, &provider).map_err(|err| {
        invalid(
            key_name,
            format!("is not a usable key for {cert_name}: {err}"),
        )
    })?;
    Ok(Loaded {
        names,
        not_after,
        not_before,
        serial,
        key: Arc::new(certified),
    })
}

/// The DNS names a certificate is for: its subject alternative names, else its common names.
fn names_of(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push(dns.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        for cn in cert.subject().iter_common_name() {
            if let Ok(cn) = cn.as_str() {
                names.push(cn.to_ascii_lowercase());
            }
        }
    }
    names
}

/// The lookup table of one moment.
#[derive(Debug, Default)]
struct Table {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `example.com` for a `*.example.com` certificate.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl Table {
    fn add(&mut self, loaded: &Loaded) {
        for name in &loaded.names {
            let key = Arc::clone(&loaded.key);
            match name.strip_prefix("*.") {
                Some(parent) => self.wildcard.entry(parent.to_string()).or_insert(key),
                None => self.exact.entry(name.clone()).or_insert(key),
            };
        }
        if self.default.is_none() {
            self.default = Some(Arc::clone(&loaded.key));
        }
    }

    fn find(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = name else {
            return self.default.clone();
        };
        let lowered;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lowered = name.to_ascii_lowercase();
            lowered.as_str()
        } else {
            name
        };
        if let Some(key) = self.exact.get(name) {
            return Some(Arc::clone(key));
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(key) = self.wildcard.get(parent)
        {
            return Some(Arc::clone(key));
        }
        self.default.clone()
    }
}

/// Every certificate the HTTPS listener serves; the listener's certificate resolver.
#[derive(Debug, Default)]
pub struct CertStore {
    table: ArcSwap<Table>,
    /// The certificates from `tls_certs`, in the order listed.
    files: Mutex<Vec<Loaded>>,
    /// The certificates from ACME, by domain.
    acme: Mutex<Vec<(String, Loaded)>>,
}

impl CertStore {
    /// Replaces the certificates from files (a start or a reload).
    pub fn set_files(&self, loaded: Vec<Loaded>) {
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = loaded;
        self.rebuild();
    }

    /// Serves `loaded` for ACME's `domain` from the next handshake on.
    pub fn set_acme(&self, domain: &str, loaded: Loaded) {
        {
            let mut acme = self.acme.lock().unwrap_or_else(|e| e.into_inner());
            match acme.iter_mut().find(|(d, _)| d == domain) {
                Some(entry) => entry.1 = loaded,
                None => acme.push((domain.to_string(), loaded)),
            }
        }
        self.rebuild();
    }

    /// Stops serving ACME's certificate for `domain` (its funko is gone).
    pub fn remove_acme(&self, domain: &str) {
        self.acme
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(d, _)| d != domain);
        self.rebuild();
    }

    /// The certificate a handshake for `name` gets (`None`: no SNI).
    pub fn find(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.table.load().find(name)
    }

    /// Whether any certificate is there to serve.
    pub fn is_empty(&self) -> bool {
        self.table.load().default.is_none()
    }

    fn rebuild(&self) {
        let files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        let acme = self.acme.lock().unwrap_or_else(|e| e.into_inner());
        let mut table = Table::default();
        // An ACME certificate is the newer answer for its domain: it goes in first.
        for (_, loaded) in acme.iter() {
            for name in &loaded.names {
                table.exact.insert(name.clone(), Arc::clone(&loaded.key));
            }
        }
        for loaded in files.iter() {
            table.add(loaded);
        }
        if table.default.is_none() {
            table.default = acme.first().map(|(_, loaded)| Arc::clone(&loaded.key));
        }
        self.table.store(Arc::new(table));
        let expiry = |cert: &Loaded| {
            cert.not_after
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        };
        let served = files
            .iter()
            .flat_map(|cert| {
                cert.names
                    .iter()
                    .map(move |n| (n.as_str(), "file", expiry(cert)))
            })
            .chain(acme.iter().flat_map(|(_, cert)| {
                cert.names
                    .iter()
                    .map(move |n| (n.as_str(), "acme", expiry(cert)))
            }));
        crate::metrics::tls_certificates(served);
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.find(hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn loaded(names: &[&str]) -> Loaded {
        let (cert, key) = issue(names);
        parse_pem(cert.as_bytes(), key.as_bytes(), "cert.pem", "key.pem").unwrap()
    }

    #[test]
    fn picks_by_exact_name_then_wildcard_then_default() {
        let store = CertStore::default();
        assert!(store.is_empty());
        let first = loaded(&["one.test"]);
        let wild = loaded(&["*.two.test"]);
        store.set_files(vec![first.clone(), wild.clone()]);
        let same = |a: &Arc<CertifiedKey>, b: &Loaded| Arc::ptr_eq(a, &b.key);
        assert!(same(&store.find(Some("one.test")).unwrap(), &first));
        assert!(same(&store.find(Some("ONE.test")).unwrap(), &first));
        assert!(same(&store.find(Some("a.two.test")).unwrap(), &wild));
        // A wildcard covers one label only.
        assert!(same(&store.find(Some("a.b.two.test")).unwrap(), &first));
        assert!(same(&store.find(None).unwrap(), &first));
        assert!(same(&store.find(Some("other.test")).unwrap(), &first));
    }

    #[test]
    fn acme_certificates_join_and_replace_by_domain() {
        let store = CertStore::default();
        let old = loaded(&["acme.test"]);
        store.set_acme("acme.test", old);
        let new = loaded(&["acme.test"]);
        store.set_acme("acme.test", new.clone());
        assert!(Arc::ptr_eq(
            &store.find(Some("acme.test")).unwrap(),
            &new.key
        ));
        // The only certificate is also the default.
        assert!(Arc::ptr_eq(&store.find(None).unwrap(), &new.key));
        let file = loaded(&["file.test"]);
        store.set_files(vec![file.clone()]);
        assert!(Arc::ptr_eq(&store.find(None).unwrap(), &file.key));
        assert!(Arc::ptr_eq(
            &store.find(Some("acme.test")).unwrap(),
            &new.key
        ));
    }

    #[test]
    fn bad_input_names_the_file_at_fault() {
        let (cert, key) = issue(&["a.test"]);
        let (_, other_key) = issue(&["b.test"]);
        let err = parse_pem(b"junk", key.as_bytes(), "c.pem", "k.pem").unwrap_err();
        assert!(
            err.to_string().starts_with("c.pem: holds no certificate"),
            "{err}"
        );
        let err = parse_pem(cert.as_bytes(), b"junk", "c.pem", "k.pem").unwrap_err();
        assert!(
            err.to_string().starts_with("k.pem: not a PEM private key"),
            "{err}"
        );
        let err = parse_pem(cert.as_bytes(), other_key.as_bytes(), "c.pem", "k.pem").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("k.pem: is not a usable key for c.pem"),
            "{err}"
        );
        let err = load_files(&CertFiles {
            cert: "/nonexistent/c.pem".into(),
            key: "/nonexistent/k.pem".into(),
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read /nonexistent/c.pem"),
            "{err}"
        );
    }

    #[test]
    fn reads_names_and_validity() {
        let cert = loaded(&["x.test", "*.y.test"]);
        assert_eq!(cert.names, ["x.test", "*.y.test"]);
        assert!(cert.not_after > SystemTime::now());
        assert!(cert.lifetime() > Duration::from_secs(86_400));
        assert!(!cert.serial.is_empty());
    }
}
