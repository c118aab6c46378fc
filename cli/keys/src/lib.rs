//! The RSA keys that sign the services' JWTs: generated with `rsa`,
//! published as JWK with `josekit`, each known by its RFC 7638 thumbprint;
//! kept as a key ring (`ring`) in the stack secret or `techctl dev`'s key
//! file (`store`).

pub mod ring;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::alg::rsa::RsaKeyPair;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

const KEY_BITS: usize = 2048;

/// A signing key pair with its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub private_key_pem: String,
    pub public_key_pem: String,
    /// The public key as a JWK, with `kid`, `alg` and `use` set.
    pub public_jwk: Value,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key, not even in a debug dump.
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot generate an RSA key: {0}")]
    Generate(#[from] rsa::Error),
    #[error("cannot encode the key: {0}")]
    Encode(String),
    #[error("cannot export the key as JWK: {0}")]
    Jwk(#[from] josekit::JoseError),
}

/// Makes a new 2048-bit RSA signing key.
pub fn generate() -> Result<SigningKey, KeyError> {
    let private = RsaPrivateKey::new(&mut rand::rngs::OsRng, KEY_BITS)?;
    let private_key_pem = private
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::Encode(e.to_string()))?
        .to_string();
    let public_key_pem = RsaPublicKey::from(&private)
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| KeyError::Encode(e.to_string()))?;
    from_private_pem(&private_key_pem, public_key_pem)
}

fn from_private_pem(private_key_pem: &str, public_key_pem: String) -> Result<SigningKey, KeyError> {
    let pair = RsaKeyPair::from_pem(private_key_pem.as_bytes())?;
    let mut jwk = pair.to_jwk_public_key();
    let n = jwk
        .parameter("n")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let e = jwk
        .parameter("e")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let kid = thumbprint(&n, &e);
    jwk.set_key_id(&kid);
    jwk.set_algorithm("RS256");
    jwk.set_key_use("sig");
    let public_jwk: Value =
        serde_json::to_value(jwk.as_ref()).map_err(|e| KeyError::Encode(e.to_string()))?;
    Ok(SigningKey {
        kid,
        private_key_pem: private_key_pem.to_string(),
        public_key_pem,
        public_jwk,
    })
}

/// RFC 7638 thumbprint of an RSA public key: SHA-256 over the required
/// members in lexicographic order, without white space, base64url-encoded.
pub fn thumbprint(n: &str, e: &str) -> String {
    let canonical = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The key fields of the stack secret (and of `techctl dev`'s key file)
/// for a first key, made now: see [`ring`] for the layout.
pub fn key_document(key: &SigningKey) -> serde_json::Map<String, Value> {
    let mut doc = serde_json::Map::new();
    ring::KeyRing::new(key, std::time::SystemTime::now()).write_into(&mut doc);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_the_rfc_7638_example() {
        // The example key of RFC 7638, section 3.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        assert_eq!(
            thumbprint(n, "AQAB"),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn generated_key_is_published_under_its_thumbprint() {
        let key = generate().unwrap();
        assert_eq!(key.public_jwk["kid"], key.kid.as_str());
        assert_eq!(key.public_jwk["alg"], "RS256");
        assert_eq!(key.public_jwk["use"], "sig");
        assert!(
            key.public_jwk.get("d").is_none(),
            "the private exponent must not be published"
        );
        let n = key.public_jwk["n"].as_str().unwrap();
        let e = key.public_jwk["e"].as_str().unwrap();
        assert_eq!(thumbprint(n, e), key.kid);
        assert!(
            key.private_key_pem
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        assert!(key.public_key_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        assert!(!format!("{key:?}").contains("PRIVATE"));
    }
}
