//! JWT authentication shared by every service.
//!
//! Tokens are RS256 only (`alg: none`, HS256 and every other algorithm are
//! refused before any key is touched). The header's `kid` picks the key from
//! a JWK set that is cached, refreshed in the background, and refetched at
//! once (at most every few seconds) when an unknown `kid` shows up, so a
//! rotated key is accepted without a restart. `iss`, `aud` and `exp` are
//! checked, and each route says which roles may call it.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use josekit::jwk::Jwk;
use josekit::jws::RS256;
use josekit::jws::alg::rsassa::RsassaJwsVerifier;
use josekit::jwt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::ApiError;

/// Who a token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A registered customer, identified by CPF.
    Customer,
    /// An anonymous customer.
    Guest,
    /// Kitchen and counter staff.
    Employee,
    /// Staff who may also manage employees.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Guest => "guest",
            Role::Employee => "employee",
            Role::Admin => "admin",
        }
    }

    /// Roles that count as staff.
    pub const STAFF: &'static [Role] = &[Role::Employee, Role::Admin];
    /// Roles that may order.
    pub const CUSTOMERS: &'static [Role] = &[Role::Customer, Role::Guest];
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `sub`: the user's id.
    pub subject: String,
    pub role: Role,
    /// `jti`: the token's own id.
    pub token_id: String,
    /// `exp`, as seconds since the Unix epoch.
    pub expires_at: u64,
    /// `iat`, as seconds since the Unix epoch (0 when the token has none).
    pub issued_at: u64,
}

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<&Self, ApiError> {
        if roles.contains(&self.role) {
            Ok(self)
        } else {
            let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden(format!(
                "this route is for {}; the token is a {}'s",
                allowed.join(" or "),
                self.role
            )))
        }
    }

    pub fn is_staff(&self) -> bool {
        Role::STAFF.contains(&self.role)
    }
}

/// Where the public keys come from.
pub trait JwkSource: Send + Sync {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<Jwk>>> + Send + '_>>;

    /// Where the keys are looked for, for an error that says so.
    fn describe(&self) -> String {
        "the key set".to_string()
    }
}

/// Staff whose earlier tokens no longer count: subject → the first second
/// (since the epoch) from which their tokens are accepted again. An admin
/// disabling an employee puts them here; every service refuses the tokens
/// they hold from its next reread on.
pub type Revoked = HashMap<String, u64>;

/// Where the revocations come from: the user service's own database, or
/// its `GET /auth/revocations` for every other service.
pub trait RevocationSource: Send + Sync {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = anyhow::Result<Revoked>> + Send + '_>>;
}

/// The path of the user service's revocation list.
pub const REVOCATIONS_PATH: &str = "/auth/revocations";

/// The revocation list as JSON: `{"revocations": [{"subject", "not_before"}]}`.
pub fn revocations_json(revoked: &Revoked) -> serde_json::Value {
    let mut entries: Vec<(&String, &u64)> = revoked.iter().collect();
    entries.sort();
    serde_json::json!({
        "revocations": entries
            .into_iter()
            .map(|(subject, not_before)| serde_json::json!({"subject": subject, "not_before": not_before}))
            .collect::<Vec<_>>()
    })
}

/// The user service's list, read over HTTP (through the internal load
/// balancer on AWS, straight from the service under `techctl dev`).
pub struct HttpRevocations {
    client: crate::http_client::HttpClient,
    url: String,
}

impl HttpRevocations {
    /// The list of the user service at `base_url` (`USER_SERVICE_URL`).
    pub fn new(base_url: &str) -> HttpRevocations {
        HttpRevocations {
            client: crate::http_client::HttpClient::new(Duration::from_secs(5)),
            url: format!("{}{REVOCATIONS_PATH}", base_url.trim_end_matches('/')),
        }
    }
}

impl RevocationSource for HttpRevocations {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = anyhow::Result<Revoked>> + Send + '_>> {
        Box::pin(async move {
            let answer = self
                .client
                .send_json(axum::http::Method::GET, &self.url, &[], None)
                .await?;
            if !answer.status.is_success() {
                anyhow::bail!("{} answered {}", self.url, answer.status);
            }
            let doc: serde_json::Value = answer.json()?;
            doc.get("revocations")
                .and_then(|r| r.as_array())
                .ok_or_else(|| anyhow::anyhow!("{} holds no revocations", self.url))?
                .iter()
                .map(|entry| {
                    let subject = entry.get("subject").and_then(|s| s.as_str());
                    let not_before = entry.get("not_before").and_then(|n| n.as_u64());
                    match (subject, not_before) {
                        (Some(s), Some(n)) => Ok((s.to_string(), n)),
                        _ => {
                            anyhow::bail!("{} has an entry without subject or not_before", self.url)
                        }
                    }
                })
                .collect()
        })
    }
}

/// A fixed set of keys (tests, or a service given its keys at start).
pub struct StaticKeys(pub Vec<Jwk>);

impl JwkSource for StaticKeys {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<Jwk>>> + Send + '_>> {
        let keys = self.0.clone();
        Box::pin(async move { Ok(keys) })
    }
}

/// The public keys of a JWK set or of a stack secret's `jwt_jwks`.
pub fn parse_jwk_set(text: &str) -> anyhow::Result<Vec<Jwk>> {
    let doc: serde_json::Value = serde_json::from_str(text)?;
    let set = doc.get("jwt_jwks").unwrap_or(&doc);
    let keys = set
        .get("keys")
        .and_then(|k| k.as_array())
        .ok_or_else(|| anyhow::anyhow!("no \"keys\" array in the JWK set"))?;
    keys.iter()
        .map(|k| {
            let map = k
                .as_object()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("a key is not an object"))?;
            Ok(Jwk::from_map(map)?)
        })
        .collect()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token: send Authorization: Bearer <token>")]
    Missing,
    #[error("malformed token")]
    Malformed,
    #[error("only RS256 tokens are accepted, this one is {0}")]
    Algorithm(String),
    #[error("the token names no signing key (kid)")]
    NoKeyId,
    #[error("the token was signed with an unknown or retired key")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token was not issued by {0}")]
    Issuer(String),
    #[error("the token is not meant for {0}")]
    Audience(String),
    #[error("the token lacks the claim {0}")]
    Claim(&'static str),
    #[error("the token was revoked: its holder was disabled or erased since it was issued")]
    Revoked,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        ApiError::Unauthorized(e.to_string())
    }
}

/// Verifies tokens against a cached JWK set.
pub struct Verifier {
    issuer: String,
    audience: String,
    source: Box<dyn JwkSource>,
    keys: RwLock<KeyCache>,
    /// One fetch of the key set at a time: requests that need a fetch wait
    /// for the one under way, and sets are installed in the order they
    /// were fetched, so a slow, stale fetch never replaces a newer set.
    fetch_gate: tokio::sync::Mutex<()>,
    /// Fetches finished so far.
    fetches: std::sync::atomic::AtomicU64,
    /// Seconds of clock skew tolerated on `exp`.
    leeway: u64,
    revocations: std::sync::OnceLock<Box<dyn RevocationSource>>,
    revoked: RwLock<Revoked>,
    /// Tokens whose signature and claims passed, by their SHA-256, while
    /// the key set that passed them holds.
    verified: RwLock<HashMap<[u8; 32], Caller>>,
}

/// Verified tokens remembered at most; past it, all are forgotten at once.
const VERIFIED_KEPT: usize = 10_000;

struct KeyCache {
    by_kid: HashMap<String, Arc<RsassaJwsVerifier>>,
    /// The installed keys as published, sorted: what tells a new set from
    /// the same one.
    published: Vec<String>,
    /// When the last fetch started.
    fetched_at: Option<Instant>,
}

/// An unknown `kid` triggers a refetch, but not more often than this.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(5);

/// The first retry of a failed refresh; later ones double, up to the
/// refresh interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

fn retry_after(failures: u32, every: Duration) -> Duration {
    FIRST_RETRY
        .saturating_mul(2u32.saturating_pow(failures.min(16)))
        .min(every)
}

impl Verifier {
    /// Loads the keys once; fails if they cannot be read at start.
    pub async fn new(
        issuer: &str,
        audience: &str,
        source: Box<dyn JwkSource>,
    ) -> anyhow::Result<Arc<Self>> {
        let verifier = Arc::new(Verifier {
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            source,
            keys: RwLock::new(KeyCache {
                by_kid: HashMap::new(),
                published: Vec::new(),
                fetched_at: None,
            }),
            leeway: 30,
            fetch_gate: tokio::sync::Mutex::new(()),
            fetches: std::sync::atomic::AtomicU64::new(0),
            revocations: std::sync::OnceLock::new(),
            revoked: RwLock::new(Revoked::new()),
            verified: RwLock::new(HashMap::new()),
        });
        verifier.refresh().await?;
        Ok(verifier)
    }

    /// Refuses the tokens `source` revokes, reread with the keys. A list
    /// that cannot be read keeps the last one read (at start: none, and
    /// the reread retries sooner), so a user service that is down for a
    /// moment stops no request.
    pub async fn use_revocations(&self, source: Box<dyn RevocationSource>) {
        if self.revocations.set(source).is_err() {
            return;
        }
        if let Err(e) = self.refresh_revocations().await {
            tracing::warn!(error = %format!("{e:#}"), "cannot read the revocation list yet; will retry");
        }
    }

    /// Rereads the revocation list, if there is one to read.
    pub async fn refresh_revocations(&self) -> anyhow::Result<()> {
        let Some(source) = self.revocations.get() else {
            return Ok(());
        };
        let revoked = source.fetch().await?;
        *self.revoked.write().unwrap_or_else(|p| p.into_inner()) = revoked;
        Ok(())
    }

    /// A verifier over the keys of `keys` (failing with where they were
    /// looked for), refreshed every `refresh`.
    pub async fn start(
        issuer: &str,
        audience: &str,
        keys: impl JwkSource + 'static,
        refresh: Duration,
    ) -> anyhow::Result<Arc<Self>> {
        let described = keys.describe();
        let verifier = Verifier::new(issuer, audience, Box::new(keys))
            .await
            .map_err(|e| anyhow::anyhow!("{described}: {e:#}"))?;
        verifier.spawn_refresh(refresh);
        Ok(verifier)
    }

    /// Rereads the key set. On failure the last good set stays in use.
    pub async fn refresh(&self) -> anyhow::Result<usize> {
        let _one_at_a_time = self.fetch_gate.lock().await;
        self.fetch_and_install().await
    }

    /// A token named a key the set lacks: reread the set, unless another
    /// request's reread finished while this one waited for its turn (its
    /// set is the freshest there is) or one started in the last few
    /// seconds (a flood of made-up `kid`s costs one read, not one each).
    async fn refetch_for_unknown_key(&self) {
        use std::sync::atomic::Ordering;
        let seen = self.fetches.load(Ordering::SeqCst);
        let _one_at_a_time = self.fetch_gate.lock().await;
        if self.fetches.load(Ordering::SeqCst) != seen || !self.may_refetch() {
            return;
        }
        if let Err(e) = self.fetch_and_install().await {
            tracing::warn!(error = %e, "cannot refresh the JWK set for an unknown kid");
        }
    }

    /// Fetches the set and installs it; the caller holds the gate.
    async fn fetch_and_install(&self) -> anyhow::Result<usize> {
        let started = Instant::now();
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .fetched_at = Some(started);
        let fetched = self.source.fetch().await;
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let jwks = fetched?;
        let mut published: Vec<String> = jwks
            .iter()
            .map(|jwk| serde_json::Value::Object(jwk.as_ref().clone()).to_string())
            .collect();
        published.sort();
        let mut by_kid = HashMap::new();
        for jwk in jwks {
            let Some(kid) = jwk.key_id().map(str::to_string) else {
                continue;
            };
            match RS256.verifier_from_jwk(&jwk) {
                Ok(v) => {
                    by_kid.insert(kid, Arc::new(v));
                }
                Err(e) => {
                    tracing::warn!(%kid, error = %e, "skipping a key that is not an RSA public key")
                }
            }
        }
        let count = by_kid.len();
        let mut keys = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let same_keys = keys.published == published;
        keys.by_kid = by_kid;
        keys.published = published;
        drop(keys);
        // A key retired (or swapped under its kid) takes its tokens along.
        if !same_keys {
            self.verified
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
        }
        Ok(count)
    }

    /// Refreshes every `every` in the background until the process ends.
    /// A failed refresh keeps the last good set and is retried sooner (one
    /// second, doubling up to `every`), so a secret that cannot be read for
    /// a moment costs no more than that moment.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) {
        let verifier = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut wait = every;
            let mut failures = 0u32;
            loop {
                tokio::time::sleep(wait).await;
                let Some(v) = verifier.upgrade() else { break };
                let revocations = v.refresh_revocations().await;
                if let Err(e) = &revocations {
                    tracing::warn!(error = %format!("{e:#}"), "cannot reread the revocation list; keeping the last one");
                }
                match v.refresh().await.and_then(|n| revocations.map(|()| n)) {
                    Ok(_) => {
                        failures = 0;
                        wait = every;
                    }
                    Err(e) => {
                        wait = retry_after(failures, every);
                        failures = failures.saturating_add(1);
                        tracing::warn!(
                            error = %format!("{e:#}"),
                            retry_in_ms = wait.as_millis() as u64,
                            "cannot refresh the JWK set; keeping the last good one"
                        );
                    }
                }
            }
        });
    }

    fn key(&self, kid: &str) -> Option<Arc<RsassaJwsVerifier>> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_kid
            .get(kid)
            .cloned()
    }

    fn may_refetch(&self) -> bool {
        let cache = self.keys.read().unwrap_or_else(|p| p.into_inner());
        cache
            .fetched_at
            .is_none_or(|t| t.elapsed() >= REFETCH_AT_MOST_EVERY)
    }

    /// The caller `token` stands for: its signature and claims checked
    /// once (then remembered while the key set holds, so a kiosk polling
    /// with its token costs no RSA verification each time), its expiry and
    /// any revocation checked on every call.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let remembered = self
            .verified
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&digest)
            .cloned();
        let caller = match remembered {
            Some(caller) => caller,
            None => {
                let caller = self.check_signature_and_claims(token).await?;
                let mut verified = self.verified.write().unwrap_or_else(|p| p.into_inner());
                if verified.len() >= VERIFIED_KEPT {
                    verified.clear();
                }
                verified.insert(digest, caller.clone());
                caller
            }
        };
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if caller.expires_at + self.leeway < now {
            return Err(AuthError::Expired);
        }
        let not_before = self
            .revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&caller.subject)
            .copied();
        if not_before.is_some_and(|not_before| caller.issued_at < not_before) {
            return Err(AuthError::Revoked);
        }
        Ok(caller)
    }

    /// The token's signature against the key set, and the claims that do
    /// not change with time.
    async fn check_signature_and_claims(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jwt::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let alg = header
            .claim("alg")
            .and_then(|v| v.as_str())
            .unwrap_or("none")
            .to_string();
        if alg != "RS256" {
            return Err(AuthError::Algorithm(alg));
        }
        let kid = header
            .claim("kid")
            .and_then(|v| v.as_str())
            .ok_or(AuthError::NoKeyId)?
            .to_string();
        let key = match self.key(&kid) {
            Some(k) => k,
            None if self.may_refetch() => {
                self.refetch_for_unknown_key().await;
                self.key(&kid).ok_or(AuthError::UnknownKey)?
            }
            // A read is under way: its set may hold the key, so wait for it
            // (a token signed by a key made a moment ago is not refused)
            // rather than start another.
            None => match self.fetch_gate.try_lock() {
                Ok(_idle) => return Err(AuthError::UnknownKey),
                Err(_) => {
                    drop(self.fetch_gate.lock().await);
                    self.key(&kid).ok_or(AuthError::UnknownKey)?
                }
            },
        };
        let (payload, _) =
            jwt::decode_with_verifier(token, key.as_ref()).map_err(|_| AuthError::Signature)?;

        let exp = payload
            .expires_at()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .ok_or(AuthError::Claim("exp"))?;
        if payload.issuer() != Some(self.issuer.as_str()) {
            return Err(AuthError::Issuer(self.issuer.clone()));
        }
        if !payload
            .audience()
            .is_some_and(|a| a.iter().any(|x| *x == self.audience))
        {
            return Err(AuthError::Audience(self.audience.clone()));
        }
        let subject = payload
            .subject()
            .ok_or(AuthError::Claim("sub"))?
            .to_string();
        let role = payload
            .claim("role")
            .and_then(|r| serde_json::from_value::<Role>(r.clone()).ok())
            .ok_or(AuthError::Claim("role"))?;
        let token_id = payload.jwt_id().ok_or(AuthError::Claim("jti"))?.to_string();
        let issued = payload
            .issued_at()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        Ok(Caller {
            subject,
            role,
            token_id,
            expires_at: exp,
            issued_at: issued,
        })
    }
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<Verifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let verifier = Arc::<Verifier>::from_ref(state);
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::Missing)?;
        Ok(verifier.verify(token).await?)
    }
}

/// A caller whose role a route takes, checked from the token alone, before
/// any path, query or body of the request is read: whoever may not call
/// the route learns nothing about what it would have taken.
macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident => $roles:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name(pub Caller);

        impl<S> FromRequestParts<S> for $name
        where
            Arc<Verifier>: FromRef<S>,
            S: Send + Sync,
        {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
                let caller = Caller::from_request_parts(parts, state).await?;
                caller.require($roles)?;
                Ok($name(caller))
            }
        }
    };
}

role_extractor! {
    /// Kitchen and counter staff (employees and admins).
    StaffCaller => Role::STAFF
}
role_extractor! {
    /// A customer, registered or guest.
    CustomerCaller => Role::CUSTOMERS
}
role_extractor! {
    /// An admin.
    AdminCaller => &[Role::Admin]
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use testkit::jwt::TestSigner;

    use super::*;

    #[test]
    fn a_failed_refresh_is_retried_sooner_and_sooner_no_later_than_the_interval() {
        let every = Duration::from_secs(60);
        let waits: Vec<u64> = (0..8).map(|n| retry_after(n, every).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(retry_after(0, Duration::from_millis(300)).as_millis(), 300);
    }

    /// Answers with each set in turn; `None` is a failed read.
    struct Scripted {
        answers: Mutex<Vec<Option<Vec<Jwk>>>>,
        calls: Arc<AtomicUsize>,
    }

    impl JwkSource for Scripted {
        fn fetch(&self) -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<Jwk>>> + Send + '_>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let mut answers = self.answers.lock().unwrap();
            let answer = if answers.len() > 1 {
                answers.remove(0)
            } else {
                answers[0].clone()
            };
            Box::pin(
                async move { answer.ok_or_else(|| anyhow::anyhow!("the secret cannot be read")) },
            )
        }
    }

    /// A key source that takes a while to answer, counting its reads: each
    /// read answers the next set, the last one for good.
    struct Slow {
        sets: Mutex<Vec<Vec<Jwk>>>,
        reads: Arc<AtomicUsize>,
    }

    impl Slow {
        fn new(sets: Vec<Vec<Jwk>>, reads: &Arc<AtomicUsize>) -> Box<Slow> {
            Box::new(Slow {
                sets: Mutex::new(sets),
                reads: reads.clone(),
            })
        }
    }

    impl JwkSource for Slow {
        fn fetch(&self) -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<Jwk>>> + Send + '_>> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let mut sets = self.sets.lock().unwrap();
            let keys = if sets.len() > 1 {
                sets.remove(0)
            } else {
                sets[0].clone()
            };
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(keys)
            })
        }
    }

    /// A token whose header names `kid` (its signature is never reached).
    fn naming(kid: &str) -> String {
        use base64::Engine;
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        format!(
            "{}.{}.c2ln",
            b64(serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid})),
            b64(serde_json::json!({"sub": "x"}))
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_of_unknown_kids_costs_one_read_per_refetch_interval() {
        let signer = TestSigner::new("real");
        let reads = Arc::new(AtomicUsize::new(0));
        let verifier = Verifier::new(
            "techchallenge",
            "techchallenge",
            Slow::new(vec![vec![signer.public_jwk()]], &reads),
        )
        .await
        .unwrap();
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // Past the refetch interval, 200 requests with made-up kids at once.
        tokio::time::sleep(REFETCH_AT_MOST_EVERY).await;
        let flood = (0..200).map(|n| {
            let verifier = verifier.clone();
            tokio::spawn(async move { verifier.verify(&naming(&format!("junk-{n}"))).await })
        });
        for request in flood.collect::<Vec<_>>() {
            assert_eq!(request.await.unwrap(), Err(AuthError::UnknownKey));
        }
        assert_eq!(
            reads.load(Ordering::SeqCst),
            2,
            "one read for the whole flood"
        );
        // Within the interval, another flood reads nothing.
        let again = (0..200).map(|n| {
            let verifier = verifier.clone();
            tokio::spawn(async move { verifier.verify(&naming(&format!("more-{n}"))).await })
        });
        for request in again.collect::<Vec<_>>() {
            request.await.unwrap().unwrap_err();
        }
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        // And the real key still verifies.
        assert!(
            verifier
                .verify(&signer.token("7", "customer"))
                .await
                .is_ok()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_token_arriving_during_a_read_waits_for_it_and_starts_none() {
        let (old, new) = (TestSigner::new("old"), TestSigner::new("new"));
        let reads = Arc::new(AtomicUsize::new(0));
        let sets = vec![
            vec![old.public_jwk()],
            vec![old.public_jwk(), new.public_jwk()],
        ];
        let verifier = Verifier::new("techchallenge", "techchallenge", Slow::new(sets, &reads))
            .await
            .unwrap();
        tokio::time::sleep(REFETCH_AT_MOST_EVERY).await;
        // A made-up kid starts a read (200 ms); meanwhile tokens of the key
        // that read brings arrive, and more made-up kids.
        let junk = {
            let verifier = verifier.clone();
            tokio::spawn(async move { verifier.verify(&naming("junk")).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let during = (0..20).map(|n| {
            let verifier = verifier.clone();
            let token = if n % 2 == 0 {
                new.token("7", "customer")
            } else {
                naming(&format!("more-{n}"))
            };
            tokio::spawn(async move { (n, verifier.verify(&token).await) })
        });
        for request in during.collect::<Vec<_>>() {
            let (n, answer) = request.await.unwrap();
            if n % 2 == 0 {
                assert!(answer.is_ok(), "the new key's token: {answer:?}");
            } else {
                assert_eq!(answer, Err(AuthError::UnknownKey));
            }
        }
        assert_eq!(junk.await.unwrap(), Err(AuthError::UnknownKey));
        assert_eq!(reads.load(Ordering::SeqCst), 2, "one read for all of them");
    }

    #[tokio::test]
    async fn a_remembered_token_is_refused_once_its_key_is_retired_or_its_subject_revoked() {
        let (old, new) = (TestSigner::new("old"), TestSigner::new("new"));
        let source = Scripted {
            answers: Mutex::new(vec![
                Some(vec![old.public_jwk(), new.public_jwk()]),
                Some(vec![new.public_jwk()]),
            ]),
            calls: Arc::new(AtomicUsize::new(0)),
        };
        let verifier = Verifier::new("techchallenge", "techchallenge", Box::new(source))
            .await
            .unwrap();
        let (retiring, staying) = (old.token("7", "customer"), new.token("8", "customer"));
        for _ in 0..2 {
            assert!(verifier.verify(&retiring).await.is_ok());
            assert!(verifier.verify(&staying).await.is_ok());
        }
        assert_eq!(
            verifier.verified.read().unwrap().len(),
            2,
            "both remembered"
        );
        // The old key is retired: its remembered token goes with it.
        verifier.refresh().await.unwrap();
        assert_eq!(verifier.verify(&retiring).await, Err(AuthError::UnknownKey));
        assert!(verifier.verify(&staying).await.is_ok());
        // A revocation counts on every call, remembered or not.
        let later = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 60;
        verifier
            .revoked
            .write()
            .unwrap()
            .insert("8".to_string(), later);
        assert_eq!(verifier.verify(&staying).await, Err(AuthError::Revoked));
    }

    #[tokio::test]
    async fn an_unreadable_key_set_keeps_the_last_good_one_and_is_retried() {
        let (old, new) = (TestSigner::new("old"), TestSigner::new("new"));
        let calls = Arc::new(AtomicUsize::new(0));
        let source = Scripted {
            answers: Mutex::new(vec![
                Some(vec![old.public_jwk()]),
                None,
                Some(vec![new.public_jwk()]),
            ]),
            calls: calls.clone(),
        };
        let verifier = Verifier::new("techchallenge", "techchallenge", Box::new(source))
            .await
            .unwrap();
        let every = Duration::from_secs(4);
        verifier.spawn_refresh(every);
        let token = old.token("7", "customer");

        // The refresh at 4 s fails: the old set stays in use.
        tokio::time::sleep(Duration::from_millis(4500)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert!(verifier.verify(&token).await.is_ok());

        // Retried a second later, not at 8 s: the new set (the old key
        // retired from it) is in use.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(verifier.verify(&token).await, Err(AuthError::UnknownKey));
        assert!(verifier.verify(&new.token("7", "customer")).await.is_ok());
    }
}
