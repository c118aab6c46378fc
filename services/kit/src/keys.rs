//! Where the services' JWT keys live: a local file (`KEYS_FILE`, written by
//! `techctl dev`) or the stack secret in Secrets Manager
//! (`STACK_SECRET_ID`, written by `techctl up`). Both hold the stack-secret
//! layout: `jwt_kid`, `jwt_private_key`, `jwt_public_key` and `jwt_jwks`;
//! a file may also be a bare JWK set, for services that only verify.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use anyhow::Context;
use josekit::jwk::Jwk;
use serde_json::Value;

use crate::auth::{JwkSource, parse_jwk_set};
use crate::config::{ConfigError, Env};

pub enum KeySource {
    File(PathBuf),
    SecretsManager {
        client: aws_sdk_secretsmanager::Client,
        secret_id: String,
    },
}

impl KeySource {
    /// `KEYS_FILE`, else `STACK_SECRET_ID` (with the standard AWS
    /// configuration chain for region and credentials).
    pub async fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<KeySource, ConfigError> {
        if let Some(path) = env.optional("KEYS_FILE") {
            return Ok(KeySource::File(path.into()));
        }
        let secret_id = env.required(
            "STACK_SECRET_ID",
            "the stack secret's name or ARN (or set KEYS_FILE to a local key file)",
        )?;
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Ok(KeySource::SecretsManager {
            client: aws_sdk_secretsmanager::Client::new(&config),
            secret_id,
        })
    }

    pub fn describe(&self) -> String {
        match self {
            KeySource::File(path) => format!("KEYS_FILE {}", path.display()),
            KeySource::SecretsManager { secret_id, .. } => format!("STACK_SECRET_ID {secret_id}"),
        }
    }

    /// The whole document, freshly read.
    pub async fn read(&self) -> anyhow::Result<Value> {
        let text = match self {
            KeySource::File(path) => tokio::fs::read_to_string(path)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?,
            KeySource::SecretsManager { client, secret_id } => client
                .get_secret_value()
                .secret_id(secret_id)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string()
                    )
                })
                .with_context(|| format!("cannot read the secret {secret_id}"))?
                .secret_string()
                .unwrap_or_default()
                .to_string(),
        };
        serde_json::from_str(&text)
            .with_context(|| format!("{} does not hold JSON", self.describe()))
    }
}

impl JwkSource for KeySource {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<Jwk>>> + Send + '_>> {
        Box::pin(async move { parse_jwk_set(&self.read().await?.to_string()) })
    }
}
