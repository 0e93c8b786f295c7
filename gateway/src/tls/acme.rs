//! Certificates obtained and renewed automatically over ACME (RFC 8555, `instant-acme`), with
//! HTTP-01 challenges answered on the plain listener.
//!
//! A background service keeps one certificate per name of `acme.domains` and, with
//! `acme.funko_domains` (the default), per domain a funko is routed by (`domains:`), following
//! the routing snapshot every second: a new funko domain is ordered within a second, and a
//! domain no funko claims any more stops being served and renewed. It serves what
//! `state_dir/acme/` holds for a name; a name without a certificate, or whose certificate is due, is
//! ordered at once. A certificate is due once less than `min(acme.renew_before, a third of its
//! lifetime)` is left, so a 90-day certificate is renewed 30 days ahead and a 6-day one 2 days
//! ahead. A new certificate is written to disk (0600, whole or not at all) and served from the
//! next handshake on, without a restart. A failed order is retried with doubling delays from 1
//! minute to 1 hour, while the certificate in use (if any) goes on being served.
//!
//! The account key lives in `state_dir/acme/account.json` (0600), with the directory it belongs
//! to; a different directory gets a new account.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::certs::{CertStore, Loaded};
use crate::services::backoff::Backoff;

/// The path prefix of HTTP-01 challenges.
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Let's Encrypt's production directory, the default of `acme.directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The `acme.*` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeConfig {
    /// Whether any `acme.*` key was set: ACME runs (with `tls_listen`).
    pub enabled: bool,
    /// Host names to keep certificates for.
    pub domains: Vec<String>,
    /// Also keep certificates for every funko's routed `domains:` (`acme.funko_domains`,
    /// default true).
    pub funko_domains: bool,
    /// The ACME directory URL.
    pub directory: String,
    /// The account's contact address.
    pub email: Option<String>,
    /// A PEM CA that signs the ACME server's own certificate (a private ACME server); `None`
    /// trusts the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// Renew once less than this is left (or a third of the lifetime, if that is less).
    pub renew_before: Duration,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        AcmeConfig {
            enabled: false,
            domains: Vec::new(),
            funko_domains: true,
            directory: LETS_ENCRYPT.to_string(),
            email: None,
            ca_cert: None,
            renew_before: Duration::from_secs(30 * 86_400),
        }
    }
}

/// Challenge tokens being validated: token → key authorization, answered on the plain listener.
#[derive(Debug, Default)]
pub struct Challenges {
    tokens: Mutex<HashMap<String, String>>,
}

impl Challenges {
    /// The answer to `GET /.well-known/acme-challenge/<token>`, if it is one being validated.
    pub fn answer(&self, token: &str) -> Option<String> {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    fn insert(&self, token: &str, key_authorization: &str) {
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token.to_string(), key_authorization.to_string());
    }

    fn remove(&self, tokens: &[String]) {
        let mut held = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        for token in tokens {
            held.remove(token);
        }
    }
}

/// When `cert` is due for renewal.
pub fn renewal_time(cert: &Loaded, renew_before: Duration) -> SystemTime {
    let ahead = renew_before.min(cert.lifetime() / 3);
    cert.not_after
        .checked_sub(ahead)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// Longest sleep between checks, so that a changed clock or a suspended host is noticed.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// The background service that obtains and renews the certificates.
pub struct AcmeService {
    pub config: AcmeConfig,
    pub state_dir: PathBuf,
    pub store: Arc<CertStore>,
    pub challenges: Arc<Challenges>,
    /// The funkos' domains, when `acme.funko_domains` is on.
    pub funko_domains: Option<FunkoDomains>,
}

/// What the account file holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct SavedAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// How often the funkos' domains are looked at when ACME follows them.
const FOLLOW_FUNKOS: Duration = Duration::from_secs(1);

/// The funkos' routed domains, read from the routing snapshot.
pub type FunkoDomains = Arc<dyn Fn() -> Vec<String> + Send + Sync>;

#[async_trait]
impl BackgroundService for AcmeService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let dir = self.state_dir.join("acme");
        // The domains kept, each with when its certificate is next due.
        let mut due: HashMap<String, SystemTime> = HashMap::new();
        let mut failures: HashMap<String, Backoff> = HashMap::new();
        let mut account: Option<Account> = None;
        loop {
            let wanted = self.wanted();
            due.retain(|domain, _| {
                let keep = wanted.contains(domain);
                if !keep {
                    tracing::info!(
                        domain,
                        "ACME: no funko claims this domain now; its certificate is no longer served"
                    );
                    self.store.remove_acme(domain);
                    failures.remove(domain);
                }
                keep
            });
            for domain in &wanted {
                if !due.contains_key(domain) {
                    due.insert(domain.clone(), self.stored(&dir, domain));
                }
            }
            let now = SystemTime::now();
            let mut wake = now + MAX_SLEEP;
            for domain in &wanted {
                let when = due.get(domain).copied().unwrap_or(SystemTime::UNIX_EPOCH);
                if when <= now {
                    let next = match self.renew(&mut account, &dir, domain).await {
                        Ok(cert) => {
                            failures.remove(domain);
                            let next = renewal_time(&cert, self.config.renew_before);
                            tracing::info!(
                                domain,
                                serial = cert.serial,
                                renew_in = ?next.duration_since(SystemTime::now()).unwrap_or_default(),
                                "ACME certificate obtained and served"
                            );
                            self.store.set_acme(domain, cert);
                            // A certificate due at once (renew_before longer than it lives) is
                            // not ordered again in a loop.
                            next.max(SystemTime::now() + Duration::from_secs(1))
                        }
                        Err(err) => {
                            let delay = failures
                                .entry(domain.clone())
                                .or_insert_with(|| Backoff::new(Duration::from_secs(60), MAX_SLEEP))
                                .next_delay();
                            tracing::error!(domain, retry_in = ?delay, "ACME: {err:#}");
                            SystemTime::now() + delay
                        }
                    };
                    due.insert(domain.clone(), next);
                }
                let when = due.get(domain).copied().unwrap_or(now);
                wake = wake.min(when);
            }
            let mut sleep = wake
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .min(MAX_SLEEP);
            if self.funko_domains.is_some() {
                sleep = sleep.min(FOLLOW_FUNKOS);
            }
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

impl AcmeService {
    /// The domains to keep certificates for: `acme.domains`, then the funkos' (sorted).
    fn wanted(&self) -> Vec<String> {
        let mut wanted = self.config.domains.clone();
        if let Some(funko_domains) = &self.funko_domains {
            let mut funkos = funko_domains();
            funkos.sort();
            funkos.retain(|d| !wanted.contains(d));
            wanted.extend(funkos);
        }
        wanted
    }

    /// Serves the stored certificate of `domain`, if there is a usable one, and returns when
    /// it is due (at once without one).
    fn stored(&self, dir: &Path, domain: &str) -> SystemTime {
        match load_stored(dir, domain) {
            Ok(Some(cert)) => {
                tracing::info!(
                    domain,
                    serial = cert.serial,
                    "serving the stored ACME certificate"
                );
                let due = renewal_time(&cert, self.config.renew_before);
                self.store.set_acme(domain, cert);
                due
            }
            Ok(None) => SystemTime::UNIX_EPOCH,
            Err(err) => {
                tracing::warn!(domain, "stored ACME certificate not used: {err}");
                SystemTime::UNIX_EPOCH
            }
        }
    }
}

impl AcmeService {
    /// Orders a certificate for `domain`, stores it and returns it.
    async fn renew(
        &self,
        account: &mut Option<Account>,
        dir: &Path,
        domain: &str,
    ) -> anyhow::Result<Loaded> {
        use anyhow::Context as _;
        if account.is_none() {
            *account = Some(self.account(dir).await?);
        }
        let Some(account) = account.as_ref() else {
            anyhow::bail!("no ACME account");
        };
        let identifiers = [Identifier::Dns(domain.to_string())];
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .with_context(|| format!("new order for {domain}"))?;
        let mut tokens = Vec::new();
        let validated = async {
            let mut authorizations = order.authorizations();
            while let Some(authorization) = authorizations.next().await {
                let mut authorization = authorization.context("reading an authorization")?;
                match authorization.status {
                    AuthorizationStatus::Pending => {}
                    AuthorizationStatus::Valid => continue,
                    other => anyhow::bail!("the authorization for {domain} is {other:?}"),
                }
                let mut challenge = authorization
                    .challenge(ChallengeType::Http01)
                    .with_context(|| {
                        format!("the ACME server offers no http-01 challenge for {domain}")
                    })?;
                self.challenges
                    .insert(&challenge.token, challenge.key_authorization().as_str());
                tokens.push(challenge.token.clone());
                challenge
                    .set_ready()
                    .await
                    .context("answering the challenge")?;
            }
            let retries = RetryPolicy::new().timeout(Duration::from_secs(120));
            match order.poll_ready(&retries).await {
                Ok(OrderStatus::Ready) => Ok(()),
                Ok(status) => {
                    let why = challenge_errors(&mut order).await;
                    anyhow::bail!(
                        "the order for {domain} is {status:?}: the ACME server could not fetch \
                         http://{domain}{CHALLENGE_PREFIX}<token> from this gateway's plain \
                         listener ({why})"
                    )
                }
                Err(err) => Err(anyhow::Error::new(err).context(format!("validating {domain}"))),
            }
        }
        .await;
        self.challenges.remove(&tokens);
        validated?;
        let key_pem = order.finalize().await.context("finalizing the order")?;
        let chain_pem = order
            .poll_certificate(&RetryPolicy::new().timeout(Duration::from_secs(120)))
            .await
            .context("downloading the certificate")?;
        let cert = super::certs::parse_pem(
            chain_pem.as_bytes(),
            key_pem.as_bytes(),
            &format!("the certificate for {domain}"),
            &format!("the key for {domain}"),
        )?;
        store(dir, domain, chain_pem.as_bytes(), key_pem.as_bytes())
            .with_context(|| format!("storing the certificate in {}", dir.display()))?;
        Ok(cert)
    }

    /// The saved account for this directory, or a new one (saved).
    async fn account(&self, dir: &Path) -> anyhow::Result<Account> {
        use anyhow::Context as _;
        let path = dir.join("account.json");
        let builder = || match &self.config.ca_cert {
            Some(ca) => Account::builder_with_root(ca)
                .with_context(|| format!("acme.ca_cert {}", ca.display())),
            None => Account::builder().context("the system's root certificates"),
        };
        if let Ok(text) = std::fs::read(&path)
            && let Ok(saved) = serde_json::from_slice::<SavedAccount>(&text)
            && saved.directory == self.config.directory
        {
            return builder()?
                .from_credentials(saved.credentials)
                .await
                .with_context(|| format!("the account in {}", path.display()));
        }
        let contact = self
            .config
            .email
            .as_ref()
            .map(|email| format!("mailto:{email}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let (account, credentials) = builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.config.directory.clone(),
                None,
            )
            .await
            .with_context(|| format!("creating an account at {}", self.config.directory))?;
        let saved = serde_json::to_vec_pretty(&SavedAccount {
            directory: self.config.directory.clone(),
            credentials,
        })?;
        faaso::store::files::create_private_dir(dir)?;
        faaso::store::files::write_atomic(&path, &saved)
            .with_context(|| format!("saving {}", path.display()))?;
        tracing::info!(directory = self.config.directory, "ACME account created");
        Ok(account)
    }
}

/// What the ACME server said about the challenges of a failed order, fetched afresh.
async fn challenge_errors(order: &mut instant_acme::Order) -> String {
    let mut why = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        if let Ok(state) = authorization.refresh().await {
            why.extend(
                state
                    .challenges
                    .iter()
                    .filter_map(|c| c.error.as_ref().map(|e| e.to_string())),
            );
        }
    }
    if why.is_empty() {
        "no reason given".to_string()
    } else {
        why.join("; ")
    }
}

/// The stored certificate of `domain`, if there is one.
fn load_stored(dir: &Path, domain: &str) -> Result<Option<Loaded>, super::certs::CertError> {
    let files = super::certs::CertFiles {
        cert: dir.join(format!("{domain}.crt")),
        key: dir.join(format!("{domain}.key")),
    };
    if !files.cert.exists() {
        return Ok(None);
    }
    super::certs::load_files(&files).map(Some)
}

/// Writes a certificate and its key (0600 each, the key first, each whole or not at all).
fn store(dir: &Path, domain: &str, chain_pem: &[u8], key_pem: &[u8]) -> std::io::Result<()> {
    faaso::store::files::create_private_dir(dir)?;
    faaso::store::files::write_atomic(&dir.join(format!("{domain}.key")), key_pem)?;
    faaso::store::files::write_atomic(&dir.join(format!("{domain}.crt")), chain_pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(lifetime: Duration) -> Loaded {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).unwrap();
        let start = SystemTime::now();
        params.not_before = start.into();
        params.not_after = (start + lifetime).into();
        let cert = params.self_signed(&key).unwrap();
        super::super::certs::parse_pem(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            "c",
            "k",
        )
        .unwrap()
    }

    #[test]
    fn renewal_is_due_at_the_smaller_of_renew_before_and_a_third() {
        let day = Duration::from_secs(86_400);
        let long = cert(90 * day);
        let at = renewal_time(&long, 30 * day);
        let left = long.not_after.duration_since(at).unwrap();
        assert_eq!(left, 30 * day);
        let short = cert(6 * day);
        let left = short
            .not_after
            .duration_since(renewal_time(&short, 30 * day))
            .unwrap();
        assert_eq!(left, 2 * day);
        let left = short
            .not_after
            .duration_since(renewal_time(&short, day))
            .unwrap();
        assert_eq!(left, day);
    }

    #[test]
    fn stored_certificates_are_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["s.test".to_string()]).unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        let acme = dir.path().join("acme");
        assert!(load_stored(&acme, "s.test").unwrap().is_none());
        store(
            &acme,
            "s.test",
            pem.as_bytes(),
            key.serialize_pem().as_bytes(),
        )
        .unwrap();
        let loaded = load_stored(&acme, "s.test").unwrap().unwrap();
        assert_eq!(loaded.names, ["s.test"]);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: PathBuf| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(acme.clone()), 0o700);
        assert_eq!(mode(acme.join("s.test.key")), 0o600);
        assert_eq!(mode(acme.join("s.test.crt")), 0o600);
    }

    #[test]
    fn challenge_tokens_are_answered_until_removed() {
        let challenges = Challenges::default();
        assert_eq!(challenges.answer("t"), None);
        challenges.insert("t", "t.thumb");
        assert_eq!(challenges.answer("t").as_deref(), Some("t.thumb"));
        challenges.remove(&["t".to_string()]);
        assert_eq!(challenges.answer("t"), None);
    }
}
