//! Tokens for tests, signed the way the user service signs them (RS256 with
//! a `kid`), and the forged kinds a service must refuse.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use josekit::jwk::Jwk;
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jws::{HS256, JwsHeader, RS256};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Map, Value, json};

static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);

/// A signing key with its `kid`, and the issuer and audience tokens carry.
pub struct TestSigner {
    pub kid: String,
    pub issuer: String,
    pub audience: String,
    private: Jwk,
    public: Jwk,
    private_pem: String,
}

impl TestSigner {
    pub fn new(kid: &str) -> TestSigner {
        let pair = RsaKeyPair::generate(2048).expect("generate a test RSA key");
        let mut private = pair.to_jwk_private_key();
        let mut public = pair.to_jwk_public_key();
        for jwk in [&mut private, &mut public] {
            jwk.set_key_id(kid);
            jwk.set_algorithm("RS256");
            jwk.set_key_use("sig");
        }
        TestSigner {
            kid: kid.to_string(),
            issuer: "techchallenge".into(),
            audience: "techchallenge".into(),
            private,
            public,
            private_pem: String::from_utf8_lossy(&pair.to_pem_private_key()).to_string(),
        }
    }

    pub fn public_jwk(&self) -> Jwk {
        self.public.clone()
    }

    /// A JWK set holding this key, as JSON text.
    pub fn jwk_set(&self) -> String {
        json!({ "keys": [Value::Object(self.public.as_ref().clone())] }).to_string()
    }

    /// A key file in the stack secret's layout, signing with this key and
    /// publishing it beside `also_published`.
    pub fn key_file(&self, also_published: &[&TestSigner]) -> String {
        let mut keys = vec![Value::Object(self.public.as_ref().clone())];
        keys.extend(
            also_published
                .iter()
                .map(|s| Value::Object(s.public.as_ref().clone())),
        );
        json!({
            "jwt_kid": self.kid,
            "jwt_private_key": self.private_pem,
            "jwt_public_key": "",
            "jwt_jwks": { "keys": keys },
        })
        .to_string()
    }

    /// Claims valid for the next hour.
    pub fn claims(&self, subject: &str, role: &str) -> Map<String, Value> {
        let now = now();
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.issuer));
        claims.insert("aud".into(), json!(self.audience));
        claims.insert("sub".into(), json!(subject));
        claims.insert("role".into(), json!(role));
        claims.insert("iat".into(), json!(now));
        claims.insert("exp".into(), json!(now + 3600));
        claims.insert(
            "jti".into(),
            json!(format!(
                "test-{}",
                NEXT_TOKEN.fetch_add(1, Ordering::SeqCst)
            )),
        );
        claims
    }

    /// A valid token for `subject` with `role`.
    pub fn token(&self, subject: &str, role: &str) -> String {
        self.sign(self.claims(subject, role))
    }

    /// A token with these exact claims, properly signed.
    pub fn sign(&self, claims: Map<String, Value>) -> String {
        self.sign_as(claims, &self.kid)
    }

    /// Signed with this key but naming another `kid` in its header.
    pub fn sign_as(&self, claims: Map<String, Value>, kid: &str) -> String {
        // A signer made from a JWK writes the JWK's own kid into the header;
        // without one there, the header keeps the kid given here.
        let mut key = self.private.as_ref().clone();
        key.remove("kid");
        let key = Jwk::from_map(key).expect("private JWK");
        let signer = RS256.signer_from_jwk(&key).expect("RS256 signer");
        let payload = JwtPayload::from_map(claims).expect("claims");
        jwt::encode_with_signer(&payload, &header(kid), &signer).expect("sign the token")
    }
}

/// A token with `alg: none` and no signature.
pub fn unsigned(claims: Map<String, Value>, kid: &str) -> String {
    let payload = JwtPayload::from_map(claims).expect("claims");
    jwt::encode_unsecured(&payload, &header(kid)).expect("encode")
}

/// A token signed with HS256 and a shared secret (for example the public
/// key's bytes, the classic algorithm-confusion attack).
pub fn hs256(claims: Map<String, Value>, kid: &str, secret: &[u8]) -> String {
    let signer = HS256.signer_from_bytes(secret).expect("HS256 signer");
    let payload = JwtPayload::from_map(claims).expect("claims");
    jwt::encode_with_signer(&payload, &header(kid), &signer).expect("sign the token")
}

fn header(kid: &str) -> JwsHeader {
    let mut header = JwsHeader::new();
    header.set_token_type("JWT");
    header.set_key_id(kid);
    header
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
