//! HTTPS on `tls_listen`: Pingora's rustls listener, HTTP/2 and HTTP/1.1 by ALPN, TLS 1.2 and
//! 1.3 only, with certificates chosen per handshake by SNI from one store.
//!
//! - [`certs`]: the store and the PEM loading (names and validity from the certificate).
//! - [`reload`]: `SIGHUP` and file changes reload `tls_certs`.
//! - [`plain`]: the plain listener beside HTTPS: challenges and `redirect_https` (pure).
//! - [`acme`]: certificates obtained and renewed over ACME, HTTP-01 on the plain listener.
//!
//! rustls (with ring, like the rest of the gateway's TLS) is the backend because it builds from
//! crates alone: no system OpenSSL, no BoringSSL source download or Go toolchain, and its
//! certificate resolver lets a handshake pick from a table that is swapped without a restart.

pub mod acme;
pub mod certs;
pub mod plain;
pub mod reload;

use std::sync::Arc;

use pingora::listeners::tls::TlsSettings;

use certs::CertStore;

/// The settings of one worker's HTTPS listener: every handshake asks `store`.
pub fn listener_settings(store: &Arc<CertStore>) -> pingora::Result<TlsSettings> {
    // The paths are unused: the resolver supplies every certificate.
    let mut settings = TlsSettings::intermediate("", "")?;
    settings.set_cert_resolver(Arc::clone(store) as Arc<dyn rustls::server::ResolvesServerCert>);
    settings.enable_h2();
    Ok(settings)
}

/// Whether `session` came in over TLS.
pub fn is_tls(session: &pingora::proxy::Session) -> bool {
    session
        .digest()
        .is_some_and(|digest| digest.ssl_digest.is_some())
}
