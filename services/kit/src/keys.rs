//! Where the services' JWT keys live: a local file (`KEYS_FILE`, written by
//! `techctl dev`) or a secret in Secrets Manager (`KEYS_SECRET_ID`, made by
//! `techctl up`): the signing key ring for the user service (`jwt_kid`,
//! `jwt_private_key`, `jwt_public_key` and `jwt_jwks`), the public set
//! alone (`jwt_jwks`) for every other service. A file may also be a bare
//! JWK set or an RSA private key in PEM, published under its RFC 7638
//! thumbprint.

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
    /// `KEYS_FILE`, else `KEYS_SECRET_ID` (with the standard AWS
    /// configuration chain for region and credentials).
    pub async fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
    ) -> Result<KeySource, ConfigError> {
        if let Some(path) = env.optional("KEYS_FILE") {
            return Ok(KeySource::File(path.into()));
        }
        let secret_id = env.required(
            "KEYS_SECRET_ID",
            "the name or ARN of the secret with the keys (or set KEYS_FILE to a local key file)",
        )?;
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Ok(KeySource::SecretsManager {
            client: aws_sdk_secretsmanager::Client::new(&config),
            secret_id,
        })
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
                // By name: what the last conditional write made current.
                .version_stage("AWSCURRENT")
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
        if text.trim_start().starts_with("-----BEGIN") {
            return from_pem(&text)
                .with_context(|| format!("{} is not an RSA private key", self.describe()));
        }
        serde_json::from_str(&text)
            .with_context(|| format!("{} does not hold JSON", self.describe()))
    }
}

/// The stack-secret layout for a single RSA private key in PEM.
fn from_pem(pem: &str) -> anyhow::Result<Value> {
    use base64::Engine;
    use sha2::Digest;

    let pair = josekit::jwk::alg::rsa::RsaKeyPair::from_pem(pem.as_bytes())?;
    let mut jwk = pair.to_jwk_public_key();
    let member = |name: &str| {
        jwk.parameter(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    // RFC 7638: the required members in lexicographic order, no spaces.
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        member("e"),
        member("n")
    );
    let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(canonical.as_bytes()));
    jwk.set_key_id(&kid);
    jwk.set_algorithm("RS256");
    jwk.set_key_use("sig");
    Ok(serde_json::json!({
        "jwt_kid": kid,
        "jwt_private_key": pem,
        "jwt_public_key": String::from_utf8_lossy(&pair.to_pem_public_key()),
        "jwt_jwks": { "keys": [Value::Object(jwk.as_ref().clone())] },
    }))
}

impl JwkSource for KeySource {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<Jwk>>> + Send + '_>> {
        Box::pin(async move { parse_jwk_set(&self.read().await?.to_string()) })
    }

    fn describe(&self) -> String {
        match self {
            KeySource::File(path) => format!("KEYS_FILE {}", path.display()),
            KeySource::SecretsManager { secret_id, .. } => format!("KEYS_SECRET_ID {secret_id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pem_key_file_is_published_under_its_thumbprint() {
        let pair = josekit::jwk::alg::rsa::RsaKeyPair::generate(2048).unwrap();
        let path = std::env::temp_dir().join(format!("kit-pem-{}.pem", std::process::id()));
        std::fs::write(&path, pair.to_pem_private_key()).unwrap();
        let doc = KeySource::File(path.clone()).read().await.unwrap();
        let kid = doc["jwt_kid"].as_str().unwrap();
        assert_eq!(kid.len(), 43, "a base64url SHA-256 thumbprint");
        assert_eq!(doc["jwt_jwks"]["keys"][0]["kid"], kid);
        assert!(doc["jwt_jwks"]["keys"][0].get("d").is_none());
        let keys = KeySource::File(path.clone()).fetch().await.unwrap();
        assert_eq!(keys[0].key_id(), Some(kid));
        std::fs::remove_file(path).ok();
    }
}
