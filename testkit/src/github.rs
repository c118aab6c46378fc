//! GitHub Actions' OIDC tokens for tests: signed by a key of this process
//! that the strict proxy trusts as GitHub's, with the claims GitHub puts in
//! a job's token. `AssumeRoleWithWebIdentity` through the proxy succeeds
//! only when such a token satisfies the role's trust policy, as on AWS.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use josekit::jws::RS256;
use josekit::jwt;
use serde_json::{Map, Value, json};

use crate::jwt::TestSigner;

/// GitHub's issuer, as tokens name it.
pub const ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The audience `aws-actions/configure-aws-credentials` asks for.
pub const AUDIENCE: &str = "sts.amazonaws.com";

fn signer() -> &'static TestSigner {
    static SIGNER: OnceLock<TestSigner> = OnceLock::new();
    SIGNER.get_or_init(|| TestSigner::new("github-actions-test"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The claims of a job's token: `repository` (`OWNER/REPO`), and the
/// subject's tail (`environment:staging`, `ref:refs/heads/main`).
pub fn claims(repository: &str, subject_tail: &str) -> Map<String, Value> {
    let now = now();
    let mut claims = Map::new();
    for (k, v) in [
        ("iss", json!(ISSUER)),
        ("aud", json!(AUDIENCE)),
        ("sub", json!(format!("repo:{repository}:{subject_tail}"))),
        ("repository", json!(repository)),
        ("iat", json!(now)),
        ("nbf", json!(now)),
        ("exp", json!(now + 300)),
    ] {
        claims.insert(k.to_string(), v);
    }
    if let Some(environment) = subject_tail.strip_prefix("environment:") {
        claims.insert("environment".into(), json!(environment));
    }
    claims
}

/// A token GitHub would give a job of `repository` whose subject ends in
/// `subject_tail`.
pub fn token(repository: &str, subject_tail: &str) -> String {
    sign(claims(repository, subject_tail))
}

/// A token with exactly these claims, signed as GitHub's.
pub fn sign(claims: Map<String, Value>) -> String {
    signer().sign(claims)
}

/// Why a web identity token is refused, in STS's words.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// `InvalidIdentityToken`: not signed by the issuer, or not its issuer.
    Invalid(String),
    /// `ExpiredTokenException`.
    Expired,
}

/// The claims of a token signed by GitHub's (test) key for GitHub's
/// issuer, not expired.
pub fn verify(token: &str) -> Result<Map<String, Value>, Refused> {
    let verifier = RS256
        .verifier_from_jwk(&signer().public_jwk())
        .map_err(|e| Refused::Invalid(e.to_string()))?;
    let (payload, _) = jwt::decode_with_verifier(token, &verifier)
        .map_err(|_| Refused::Invalid("the token's signature is not the issuer's".into()))?;
    let claims = payload.claims_set().clone();
    if claims.get("iss").and_then(Value::as_str) != Some(ISSUER) {
        return Err(Refused::Invalid(
            "the token's issuer has no OIDC provider here".into(),
        ));
    }
    match claims.get("exp").and_then(Value::as_u64) {
        Some(exp) if exp > now() => Ok(claims),
        _ => Err(Refused::Expired),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_verified_and_a_forged_or_stale_one_refused() {
        let token = token("o/r", "environment:staging");
        let claims = verify(&token).unwrap();
        assert_eq!(claims["sub"], "repo:o/r:environment:staging");
        assert_eq!(claims["environment"], "staging");
        let other = TestSigner::new("github-actions-test");
        let forged = other.sign(super::claims("o/r", "environment:staging"));
        assert!(matches!(verify(&forged), Err(Refused::Invalid(_))));
        let mut stale = super::claims("o/r", "environment:staging");
        stale.insert("exp".into(), json!(1));
        assert_eq!(verify(&sign(stale)), Err(Refused::Expired));
    }
}
