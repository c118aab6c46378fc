//! Issuing tokens: RS256 with the newest key of the key source, `kid` in
//! the header. The key set is reread every refresh interval, so a rotation
//! (`techctl keys rotate`) takes effect without a restart.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use josekit::jwk::Jwk;
use josekit::jws::alg::rsassa::RsassaJwsSigner;
use josekit::jws::{JwsHeader, RS256};
use josekit::jwt::{self, JwtPayload};
use serde::Serialize;
use serde_json::{Value, json};
use service_kit::auth::{JwkSource, Role, parse_jwk_set};
use service_kit::keys::KeySource;
use uuid::Uuid;

pub struct Signer {
    source: KeySource,
    issuer: String,
    audience: String,
    lifetime: Duration,
    current: RwLock<Current>,
}

struct Current {
    kid: String,
    signer: Arc<RsassaJwsSigner>,
    /// The published set: every key not yet retired.
    jwks: Value,
}

/// A token as the client gets it.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Token {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    pub role: Role,
    /// The id the token speaks for (`sub`).
    pub subject: String,
}

impl Signer {
    /// Reads the keys once; fails if there is no usable signing key.
    pub async fn load(
        source: KeySource,
        issuer: &str,
        audience: &str,
        lifetime: Duration,
    ) -> anyhow::Result<Arc<Signer>> {
        let current = read_keys(&source).await?;
        Ok(Arc::new(Signer {
            source,
            issuer: issuer.to_string(),
            audience: audience.to_string(),
            lifetime,
            current: RwLock::new(current),
        }))
    }

    /// Rereads the keys; on failure the last good ones stay in use.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let fresh = read_keys(&self.source).await?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    pub fn kid(&self) -> String {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .kid
            .clone()
    }

    pub fn jwks(&self) -> Value {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .jwks
            .clone()
    }

    /// A token for `subject` with `role`. It carries no personal data (no
    /// name: the kitchen calls an order by its number), so an erasure
    /// leaves nothing behind in the tokens already out.
    pub fn issue(&self, subject: &str, role: Role) -> anyhow::Result<Token> {
        let (kid, signer) = {
            let current = self.current.read().unwrap_or_else(|p| p.into_inner());
            (current.kid.clone(), current.signer.clone())
        };
        // Whole seconds: fractional NumericDates trip up many JWT libraries.
        let seconds = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_secs();
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        header.set_key_id(&kid);
        let mut payload = JwtPayload::new();
        payload.set_issuer(&self.issuer);
        payload.set_audience(vec![self.audience.clone()]);
        payload.set_subject(subject);
        payload.set_claim("iat", Some(json!(seconds)))?;
        payload.set_claim("exp", Some(json!(seconds + self.lifetime.as_secs())))?;
        payload.set_jwt_id(Uuid::now_v7().to_string());
        payload.set_claim("role", Some(json!(role)))?;
        let access_token = jwt::encode_with_signer(&payload, &header, signer.as_ref())?;
        Ok(Token {
            access_token,
            token_type: "Bearer".into(),
            expires_in: self.lifetime.as_secs(),
            role,
            subject: subject.to_string(),
        })
    }
}

async fn read_keys(source: &KeySource) -> anyhow::Result<Current> {
    let doc = source.read().await?;
    let field = |name: &str| {
        doc.get(name)
            .and_then(Value::as_str)
            .with_context(|| format!("{} has no {name}", source.describe()))
    };
    let kid = field("jwt_kid")?.to_string();
    let pem = field("jwt_private_key")?;
    let signer = RS256.signer_from_pem(pem.as_bytes()).with_context(|| {
        format!(
            "{}: jwt_private_key is not an RSA private key",
            source.describe()
        )
    })?;
    let jwks = doc
        .get("jwt_jwks")
        .cloned()
        .with_context(|| format!("{} has no jwt_jwks", source.describe()))?;
    // The signing key must be published, or nobody could verify its tokens.
    let published = parse_jwk_set(&jwks.to_string())?;
    anyhow::ensure!(
        published.iter().any(|k| k.key_id() == Some(kid.as_str())),
        "{}: the signing key {kid} is not in jwt_jwks",
        source.describe()
    );
    Ok(Current {
        kid,
        signer: Arc::new(signer),
        jwks,
    })
}

/// The signer's published keys, as the source the user service's own
/// verifier reads.
pub struct PublishedKeys(pub Arc<Signer>);

impl JwkSource for PublishedKeys {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = anyhow::Result<Vec<Jwk>>> + Send + '_>> {
        Box::pin(async move {
            // One refresh serves both: the signer rereads the source, and
            // the verifier takes the published set from it. A failed reread
            // is the verifier's failure too, so it keeps its set and retries
            // soon (the signer keeps its key meanwhile).
            self.0.refresh().await?;
            parse_jwk_set(&self.0.jwks().to_string())
        })
    }
}
