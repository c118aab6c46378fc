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
