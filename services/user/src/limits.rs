//! What keeps the user service up under abuse: every `/auth/*` route and
//! registration limited per client (a token bucket; 429 with
//! `Retry-After`), wrong passwords and CPF look-ups limited per e-mail and
//! per CPF, and password hashes (19 MiB each) run on a fixed pool sized
//! for the task's memory, beyond which a login is refused at once (503)
//! rather than queued.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use service_kit::config::{ConfigError, Env};
use service_kit::error::ApiError;
use service_kit::limit::{BoundedPool, Rate, RateLimit, TrustedProxies, client_of};

use crate::AppState;

/// The limits, from the environment (defaults suit a 512 MiB task).
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// `AUTH_RATE_PER_MINUTE` / `AUTH_RATE_BURST`: requests per client.
    pub per_client: Rate,
    /// `LOGIN_FAILURES_PER_MINUTE` / `LOGIN_FAILURES_BURST`: wrong
    /// passwords per e-mail, and token requests per CPF.
    pub per_identity: Rate,
    /// `PASSWORD_HASH_THREADS`: hashes at once (19 MiB each).
    pub hash_threads: usize,
    /// `PASSWORD_HASH_WAITING`: logins that may wait for a hash thread.
    pub hash_waiting: usize,
    /// `TRUSTED_PROXIES`: whose `x-forwarded-for` names the client.
    pub trusted: TrustedProxies,
}

impl Default for LimitSettings {
    fn default() -> Self {
        LimitSettings {
            per_client: Rate {
                per_minute: 30,
                burst: 10,
            },
            per_identity: Rate {
                per_minute: 10,
                burst: 5,
            },
            hash_threads: 2,
            hash_waiting: 8,
            trusted: TrustedProxies::default(),
        }
    }
}

impl LimitSettings {
    /// No rate limit (a deployment limited in front, or tests of other
    /// things); hashing stays bounded.
    pub fn off() -> LimitSettings {
        let off = Rate {
            per_minute: 0,
            burst: 0,
        };
        LimitSettings {
            per_client: off,
            per_identity: off,
            ..LimitSettings::default()
        }
    }

    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let d = LimitSettings::default();
        let trusted = match env.optional("TRUSTED_PROXIES") {
            Some(text) => TrustedProxies::parse(&text).map_err(|problem| ConfigError {
                variable: "TRUSTED_PROXIES".into(),
                problem,
                expected: "addresses or CIDRs separated by commas (the load balancer's subnets)"
                    .into(),
            })?,
            None => d.trusted,
        };
        Ok(LimitSettings {
            per_client: Rate {
                per_minute: env.parsed_or(
                    "AUTH_RATE_PER_MINUTE",
                    d.per_client.per_minute,
                    "requests a minute per client (0: no limit)",
                )?,
                burst: env.parsed_or("AUTH_RATE_BURST", d.per_client.burst, "a number")?,
            },
            per_identity: Rate {
                per_minute: env.parsed_or(
                    "LOGIN_FAILURES_PER_MINUTE",
                    d.per_identity.per_minute,
                    "wrong passwords a minute per e-mail (0: no limit)",
                )?,
                burst: env.parsed_or("LOGIN_FAILURES_BURST", d.per_identity.burst, "a number")?,
            },
            hash_threads: env.parsed_or(
                "PASSWORD_HASH_THREADS",
                d.hash_threads,
                "password hashes at once, 19 MiB each",
            )?,
            hash_waiting: env.parsed_or(
                "PASSWORD_HASH_WAITING",
                d.hash_waiting,
                "logins that may wait for a hash",
            )?,
            trusted,
        })
    }
}

/// The limits in force.
pub struct Limits {
    pub per_client: RateLimit,
    pub per_identity: RateLimit,
    pub hashing: BoundedPool,
    pub trusted: TrustedProxies,
}

impl Limits {
    pub fn new(settings: &LimitSettings) -> Arc<Limits> {
        Arc::new(Limits {
            per_client: RateLimit::new(
                "sign-in and registration requests from this client",
                settings.per_client,
            ),
            per_identity: RateLimit::new("attempts for this account", settings.per_identity),
            hashing: BoundedPool::new(
                "password hash",
                settings.hash_threads,
                settings.hash_waiting,
            ),
            trusted: settings.trusted.clone(),
        })
    }
}

/// A request from a client still within its limit, checked before the
/// body is read: the client's address.
pub struct WithinLimit(pub String);

impl FromRequestParts<AppState> for WithinLimit {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let client = client_of(parts, &state.limits.trusted);
        state.limits.per_client.take(&client)?;
        Ok(WithinLimit(client))
    }
}
