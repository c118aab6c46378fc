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
            database_url: env.required(
                "DATABASE_URL",
                &format!("a postgres:// URL of the {owns} database"),
            )?,
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
        })
    }
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
}
