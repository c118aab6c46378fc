//! Configuration from the environment. A missing or malformed variable is
//! reported by name, with what it should hold.

use std::fmt::Display;
use std::str::FromStr;

#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}\n  set {variable} to {expected}")]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
    pub expected: String,
}

/// Reads configuration variables; `lookup` is the environment in
/// production and a map in tests.
pub struct Env<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

impl Env<fn(&str) -> Option<String>> {
    pub fn process() -> Self {
        Env {
            lookup: |name| std::env::var(name).ok(),
        }
    }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    pub fn from_fn(lookup: F) -> Self {
        Env { lookup }
    }

    /// A variable that must be set and non-empty.
    pub fn required(&self, name: &str, expected: &str) -> Result<String, ConfigError> {
        match (self.lookup)(name) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            Some(_) => Err(error(name, "is empty", expected)),
            None => Err(error(name, "is not set", expected)),
        }
    }

    pub fn optional(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// A variable parsed as `T`, or `default` when unset.
    pub fn parsed_or<T>(&self, name: &str, default: T, expected: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|e| error(name, &format!("{raw:?} is not valid ({e})"), expected)),
        }
    }
}

/// A value that must not reach logs: its Debug form is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What every service with a database and tokens reads.
#[derive(Debug, Clone)]
pub struct Common {
    pub port: u16,
    pub database_url: String,
    pub pool_size: u32,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub jwks_refresh: std::time::Duration,
    /// The user service, whose revocation list every other service reads.
    pub user_service_url: Option<String>,
}

impl Common {
    /// `owns` says what the database holds, for the error message.
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        default_port: u16,
        owns: &str,
    ) -> Result<Self, ConfigError> {
        Ok(Common {
            port: env.parsed_or(
                "PORT",
                default_port,
                &format!("a TCP port such as {default_port}"),
            )?,
            database_url: database_url(env, owns)?,
            pool_size: env.parsed_or("DB_POOL_SIZE", 10, "a number of connections such as 10")?,
            jwt_issuer: env.parsed_or(
                "JWT_ISSUER",
                "techchallenge".to_string(),
                "the issuer the user service signs with",
            )?,
            jwt_audience: env.parsed_or(
                "JWT_AUDIENCE",
                "techchallenge".to_string(),
                "the audience of the tokens",
            )?,
            jwks_refresh: std::time::Duration::from_secs(env.parsed_or(
                "JWKS_REFRESH_SECONDS",
                60,
                "how often the JWK set is reread, in seconds",
            )?),
            user_service_url: env.optional("USER_SERVICE_URL"),
        })
    }

    /// The verifier of this service's tokens: the keys of `keys`, and the
    /// user service's revocation list when `USER_SERVICE_URL` names it,
    /// both reread every `JWKS_REFRESH_SECONDS`.
    pub async fn verifier(
        &self,
        keys: impl crate::auth::JwkSource + 'static,
    ) -> anyhow::Result<std::sync::Arc<crate::auth::Verifier>> {
        let verifier = crate::auth::Verifier::start(
            &self.jwt_issuer,
            &self.jwt_audience,
            keys,
            self.jwks_refresh,
        )
        .await?;
        match &self.user_service_url {
            Some(url) => {
                verifier
                    .use_revocations(Box::new(crate::auth::HttpRevocations::new(url)))
                    .await
            }
            None => tracing::warn!(
                "USER_SERVICE_URL is not set: tokens of disabled employees are accepted until they expire"
            ),
        }
        Ok(verifier)
    }
}

/// `DATABASE_URL`, else one made of the parts an ECS task is given:
/// `DB_HOST`, `DB_PORT` (5432), `DB_USER`, `DB_PASSWORD` (from the stack
/// secret) and `DB_NAME`, over TLS (RDS refuses plain connections).
pub fn database_url<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    owns: &str,
) -> Result<String, ConfigError> {
    if let Some(url) = env.optional("DATABASE_URL") {
        return Ok(url);
    }
    let Some(host) = env.optional("DB_HOST") else {
        return Err(error(
            "DATABASE_URL",
            "is not set",
            &format!(
                "a postgres:// URL of the {owns} database (or set DB_HOST, DB_USER, DB_PASSWORD and DB_NAME)"
            ),
        ));
    };
    let port: u16 = env.parsed_or("DB_PORT", 5432, "the database's port, such as 5432")?;
    let user = env.required("DB_USER", "the database user")?;
    let password = env.required("DB_PASSWORD", "the database user's password")?;
    let name = env.required("DB_NAME", &format!("the name of the {owns} database"))?;
    Ok(format!(
        "postgres://{}:{}@{host}:{port}/{}?sslmode=require",
        url_encoded(&user),
        url_encoded(&password),
        url_encoded(&name)
    ))
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn url_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn error(variable: &str, problem: &str, expected: &str) -> ConfigError {
    ConfigError {
        variable: variable.to_string(),
        problem: problem.to_string(),
        expected: expected.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_variable_and_what_it_takes() {
        let env = Env::from_fn(|name| (name == "PORT").then(|| "eighty".to_string()));
        let err = env
            .parsed_or("PORT", 4002u16, "a TCP port such as 4002")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "PORT: \"eighty\" is not valid (invalid digit found in string)\n  set PORT to a TCP port such as 4002"
        );
        let err = env
            .required("DATABASE_URL", "a postgres:// URL")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "DATABASE_URL: is not set\n  set DATABASE_URL to a postgres:// URL"
        );
        assert_eq!(env.parsed_or("WORKERS", 4u8, "a number").unwrap(), 4);
    }

    #[test]
    fn the_database_url_is_given_or_made_of_its_parts() {
        let given =
            Env::from_fn(|name| (name == "DATABASE_URL").then(|| "postgres://u@h/db".to_string()));
        assert_eq!(database_url(&given, "order").unwrap(), "postgres://u@h/db");
        let parts = Env::from_fn(|name| {
            let value = match name {
                "DB_HOST" => "db.internal",
                "DB_USER" => "techctl",
                "DB_PASSWORD" => "p@ss:w/rd",
                "DB_NAME" => "order_service",
                _ => return None,
            };
            Some(value.to_string())
        });
        assert_eq!(
            database_url(&parts, "order").unwrap(),
            "postgres://techctl:p%40ss%3Aw%2Frd@db.internal:5432/order_service?sslmode=require"
        );
        let none = Env::from_fn(|_| None);
        let err = database_url(&none, "order").unwrap_err().to_string();
        assert!(err.contains("DATABASE_URL: is not set"), "{err}");
        assert!(
            err.contains("DB_HOST, DB_USER, DB_PASSWORD and DB_NAME"),
            "{err}"
        );
    }
}
