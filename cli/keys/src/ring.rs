//! The key ring: the signing key, the published JWK set and the history of
//! every key, as the stack secret (and `techctl dev`'s key file) hold them.
//!
//! A key's life: it is made by a rotation and signs from then on; the next
//! rotation stops it signing, but it stays published while tokens it signed
//! can still be alive; `retire` then takes it out of the JWK set and every
//! service refuses its tokens. Nothing here reads a clock: the caller says
//! what time it is, so every transition can be tested at any moment.
//!
//! Fields (beside whatever else the document holds):
//!
//! ```text
//! jwt_kid          the signing key's kid
//! jwt_private_key  the signing key, PKCS#8 PEM
//! jwt_public_key   its public half, SPKI PEM
//! jwt_jwks         {"keys": [...]}: every key not retired, signing key included
//! jwt_keys         [{kid, created_at, signing_until, retired_at}]: the history
//! ```

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::SigningKey;

pub use blueprint::{TokenPolicy, VERIFY_LEEWAY};

/// Retired keys remembered in the history; older ones are forgotten so the
/// secret stays far below its size limit.
const RETIRED_KEPT: usize = 20;

/// What a key is to the system now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// New tokens are signed with it.
    Signing,
    /// It no longer signs, but its tokens are still accepted.
    Published,
    /// Out of the JWK set: its tokens are refused.
    Retired,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Signing => "signing",
            Role::Published => "published",
            Role::Retired => "retired",
        }
    }
}

/// One key's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub kid: String,
    /// `None` for a key made before the history was kept.
    #[serde(default, with = "timestamp")]
    pub created_at: Option<SystemTime>,
    /// When a rotation replaced it; `None` while it signs (or, for an old
    /// published key, when that was not recorded).
    #[serde(default, with = "timestamp")]
    pub signing_until: Option<SystemTime>,
    #[serde(default, with = "timestamp")]
    pub retired_at: Option<SystemTime>,
}

/// Until when the tokens of a key can be alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokensLive {
    /// It still signs: a token lifetime past the rotation that replaces it.
    WhileSigning,
    /// Until this moment (past, when the key can be retired).
    Until(SystemTime),
    /// It stopped signing at a time nobody recorded.
    Unknown,
    /// Retired at this moment: its tokens are refused.
    Refused(SystemTime),
}

/// A key as `keys list` shows it.
#[derive(Debug, Clone)]
pub struct KeyView {
    pub record: KeyRecord,
    pub role: Role,
    pub tokens: TokensLive,
}

/// The document is not a key ring; says what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RingError(pub String);

#[derive(Debug, Clone, PartialEq)]
pub struct KeyRing {
    kid: String,
    private_key_pem: String,
    public_key_pem: String,
    /// The public JWKs of every key not retired, oldest first.
    published: Vec<Value>,
    /// Every key's history, oldest first.
    records: Vec<KeyRecord>,
}

/// What `retire --kid` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retirement {
    Retired,
    AlreadyRetired(Option<SystemTime>),
}

impl KeyRing {
    /// A ring holding one key, made `now`.
    pub fn new(key: &SigningKey, now: SystemTime) -> KeyRing {
        KeyRing {
            kid: key.kid.clone(),
            private_key_pem: key.private_key_pem.clone(),
            public_key_pem: key.public_key_pem.clone(),
            published: vec![key.public_jwk.clone()],
            records: vec![KeyRecord {
                kid: key.kid.clone(),
                created_at: Some(now),
                signing_until: None,
                retired_at: None,
            }],
        }
    }

    /// Reads the ring out of a document; `what` names the document in
    /// errors ("the stack secret techctl/prod", "keys.json").
    pub fn from_document(doc: &Map<String, Value>, what: &str) -> Result<KeyRing, RingError> {
        let text = |field: &str| -> Result<String, RingError> {
            doc.get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or_else(|| {
                    RingError(format!(
                        "{what} has no {field}: it holds no signing key.\n  run `techctl up` (or `techctl dev`) to make one, \
                         or restore the secret's previous version"
                    ))
                })
        };
        let kid = text("jwt_kid")?;
        let private_key_pem = text("jwt_private_key")?;
        let public_key_pem = text("jwt_public_key")?;
        let published = doc
            .get("jwt_jwks")
            .and_then(|set| set.get("keys"))
            .and_then(Value::as_array)
            .cloned()
            .ok_or_else(|| {
                RingError(format!(
                    "{what}'s jwt_jwks is not a JWK set ({{\"keys\": [...]}}).\n  restore the secret's previous version or fix the field, then re-run"
                ))
            })?;
        let published_kids: Vec<&str> = published
            .iter()
            .map(|k| k.get("kid").and_then(Value::as_str))
            .collect::<Option<_>>()
            .ok_or_else(|| {
                RingError(format!(
                    "{what}'s jwt_jwks has a key without a kid.\n  restore the secret's previous version or fix the field, then re-run"
                ))
            })?;
        if !published_kids.contains(&kid.as_str()) {
            return Err(RingError(format!(
                "{what}'s signing key {kid} is not in its jwt_jwks, so no service could verify its tokens.\n  \
                 restore the secret's previous version, or run `techctl keys rotate` to start from a new key"
            )));
        }
        let mut records: Vec<KeyRecord> = match doc.get("jwt_keys") {
            None | Some(Value::Null) => Vec::new(),
            Some(history) => serde_json::from_value(history.clone()).map_err(|e| {
                RingError(format!(
                    "{what}'s jwt_keys is not a key history ({e}).\n  restore the secret's previous version, or delete the field (the keys stay; only their dates are lost)"
                ))
            })?,
        };
        // Keys published before the history was kept get a record without dates.
        for published_kid in &published_kids {
            if !records.iter().any(|r| r.kid == *published_kid) {
                records.push(KeyRecord {
                    kid: published_kid.to_string(),
                    created_at: None,
                    signing_until: None,
                    retired_at: None,
                });
            }
        }
        Ok(KeyRing {
            kid,
            private_key_pem,
            public_key_pem,
            published,
            records,
        })
    }

    /// Writes the ring's fields into `doc`, leaving every other field alone.
    pub fn write_into(&self, doc: &mut Map<String, Value>) {
        doc.insert("jwt_kid".into(), json!(self.kid));
        doc.insert("jwt_private_key".into(), json!(self.private_key_pem));
        doc.insert("jwt_public_key".into(), json!(self.public_key_pem));
        doc.insert("jwt_jwks".into(), json!({ "keys": self.published }));
        doc.insert(
            "jwt_keys".into(),
            serde_json::to_value(&self.records).unwrap_or(Value::Null),
        );
    }

    pub fn signing_kid(&self) -> &str {
        &self.kid
    }

    /// The kids in the JWK set, oldest first.
    pub fn published_kids(&self) -> Vec<&str> {
        self.published
            .iter()
            .filter_map(|k| k.get("kid").and_then(Value::as_str))
            .collect()
    }

    /// The ring's JWK set: every key not retired, public halves only.
    pub fn jwks(&self) -> Value {
        json!({ "keys": self.published })
    }

    /// The public JWK set to publish for the services that only verify,
    /// given the set published now: every key of the ring's set, and every
    /// key of `current` the ring has not retired. A key another rotation
    /// published a moment before it writes the ring is kept, so that no
    /// signing key is ever missing from the public set; only retirement
    /// takes a key out.
    pub fn public_set(&self, current: Option<&Value>) -> Value {
        let mut keys = self.published.clone();
        let mut known: Vec<String> = self
            .published_kids()
            .into_iter()
            .map(str::to_string)
            .collect();
        let retired = |kid: &str| {
            self.records
                .iter()
                .any(|r| r.kid == kid && r.retired_at.is_some())
        };
        for key in current
            .and_then(|set| set.get("keys"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match key.get("kid").and_then(Value::as_str) {
                Some(kid) if !known.iter().any(|k| k == kid) && !retired(kid) => {
                    known.push(kid.to_string());
                    keys.push(key.clone());
                }
                _ => {}
            }
        }
        json!({ "keys": keys })
    }

    fn record_mut(&mut self, kid: &str) -> Option<&mut KeyRecord> {
        self.records.iter_mut().find(|r| r.kid == kid)
    }

    /// Makes `key` the signing key and publishes it beside the others; the
    /// key it replaces stops signing `now`. Rotating to a key the ring
    /// already holds changes nothing, so a rotation redone after a lost
    /// answer is harmless.
    pub fn rotate(&mut self, key: &SigningKey, now: SystemTime) {
        if self.records.iter().any(|r| r.kid == key.kid) {
            return;
        }
        let previous = self.kid.clone();
        if let Some(record) = self.record_mut(&previous) {
            record.signing_until = Some(now);
        }
        self.kid = key.kid.clone();
        self.private_key_pem = key.private_key_pem.clone();
        self.public_key_pem = key.public_key_pem.clone();
        self.published.push(key.public_jwk.clone());
        self.records.push(KeyRecord {
            kid: key.kid.clone(),
            created_at: Some(now),
            signing_until: None,
            retired_at: None,
        });
    }

    /// Until when tokens signed with `record`'s key can be alive.
    fn tokens_live(&self, record: &KeyRecord, policy: TokenPolicy) -> TokensLive {
        if let Some(at) = record.retired_at {
            return TokensLive::Refused(at);
        }
        if record.kid == self.kid {
            return TokensLive::WhileSigning;
        }
        match record.signing_until {
            Some(until) => TokensLive::Until(until + policy.overlap()),
            None => TokensLive::Unknown,
        }
    }

    /// Every key, oldest first, with its role and how long its tokens live.
    pub fn list(&self, policy: TokenPolicy) -> Vec<KeyView> {
        self.records
            .iter()
            .map(|record| {
                let role = if record.retired_at.is_some() {
                    Role::Retired
                } else if record.kid == self.kid {
                    Role::Signing
                } else {
                    Role::Published
                };
                KeyView {
                    record: record.clone(),
                    role,
                    tokens: self.tokens_live(record, policy),
                }
            })
            .collect()
    }

    /// Retires every published key whose tokens have all expired by `now`;
    /// returns their kids. Keys of unknown age are left for `--kid`.
    pub fn retire_expired(&mut self, now: SystemTime, policy: TokenPolicy) -> Vec<String> {
        let due: Vec<String> = self
            .records
            .iter()
            .filter(
                |r| matches!(self.tokens_live(r, policy), TokensLive::Until(until) if until <= now),
            )
            .map(|r| r.kid.clone())
            .collect();
        for kid in &due {
            self.take_out(kid, now);
        }
        due
    }

    /// Until when live tokens may carry `kid`, if some may still: what
    /// `retire --kid` warns about before it goes ahead.
    pub fn live_tokens(
        &self,
        kid: &str,
        now: SystemTime,
        policy: TokenPolicy,
    ) -> Option<TokensLive> {
        let record = self.records.iter().find(|r| r.kid == kid)?;
        match self.tokens_live(record, policy) {
            TokensLive::Until(until) if until <= now => None,
            TokensLive::Refused(_) => None,
            live => Some(live),
        }
    }

    /// Retires `kid` now, whatever the age of its tokens. The signing key
    /// cannot be retired: a rotation must replace it first.
    pub fn retire(&mut self, kid: &str, now: SystemTime) -> Result<Retirement, RingError> {
        if kid == self.kid {
            return Err(RingError(format!(
                "{kid} is the signing key: retiring it would leave nothing to sign with.\n  \
                 run `techctl keys rotate` first, then retire it once its tokens have expired"
            )));
        }
        let Some(record) = self.records.iter().find(|r| r.kid == kid) else {
            let known: Vec<&str> = self.records.iter().map(|r| r.kid.as_str()).collect();
            return Err(RingError(format!(
                "there is no key {kid}; the keys are {}.\n  `techctl keys list` shows them",
                known.join(", ")
            )));
        };
        if record.retired_at.is_some() {
            return Ok(Retirement::AlreadyRetired(record.retired_at));
        }
        self.take_out(kid, now);
        Ok(Retirement::Retired)
    }

    fn take_out(&mut self, kid: &str, now: SystemTime) {
        self.published
            .retain(|k| k.get("kid").and_then(Value::as_str) != Some(kid));
        if let Some(record) = self.record_mut(kid) {
            record.retired_at = Some(now);
            record.signing_until.get_or_insert(now);
        }
        // Forget the oldest retired keys beyond the few worth remembering.
        let retired = self
            .records
            .iter()
            .filter(|r| r.retired_at.is_some())
            .count();
        let mut forget = retired.saturating_sub(RETIRED_KEPT);
        self.records.retain(|r| {
            if forget > 0 && r.retired_at.is_some() {
                forget -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// `Option<SystemTime>` as an RFC 3339 string (UTC, whole seconds) or null.
mod timestamp {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(t) => s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate;
    use std::time::Duration;

    const HOUR: Duration = Duration::from_secs(3600);
    const POLICY: TokenPolicy = TokenPolicy {
        lifetime: HOUR,
        refresh: Duration::from_secs(60),
    };

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + seconds)
    }

    fn round_trip(ring: &KeyRing) -> KeyRing {
        let mut doc = Map::new();
        doc.insert("vpc_id".into(), json!("vpc-1"));
        ring.write_into(&mut doc);
        assert_eq!(doc["vpc_id"], "vpc-1", "other fields are kept");
        let text = serde_json::to_string(&doc).unwrap();
        let back: Map<String, Value> = serde_json::from_str(&text).unwrap();
        KeyRing::from_document(&back, "the secret").unwrap()
    }

    #[test]
    fn a_rotation_signs_with_the_new_key_and_keeps_the_old_one_published() {
        let (first, second) = (generate().unwrap(), generate().unwrap());
        let mut ring = KeyRing::new(&first, at(0));
        ring.rotate(&second, at(100));
        let ring = round_trip(&ring);
        assert_eq!(ring.signing_kid(), second.kid);
        assert_eq!(ring.published_kids(), [first.kid.as_str(), &second.kid]);
        let views = ring.list(POLICY);
        assert_eq!(views[0].role, Role::Published);
        assert_eq!(
            views[0].tokens,
            TokensLive::Until(at(100) + HOUR + Duration::from_secs(90))
        );
        assert_eq!(views[1].role, Role::Signing);
        assert_eq!(views[1].tokens, TokensLive::WhileSigning);
        assert_eq!(views[1].record.created_at, Some(at(100)));
    }

    #[test]
    fn rotating_to_a_key_already_held_changes_nothing() {
        let (first, second) = (generate().unwrap(), generate().unwrap());
        let mut ring = KeyRing::new(&first, at(0));
        ring.rotate(&second, at(100));
        let once = ring.clone();
        ring.rotate(&second, at(200));
        assert_eq!(ring, once);
    }

    #[test]
    fn only_keys_whose_tokens_have_all_expired_are_retired() {
        let keys: Vec<_> = (0..3).map(|_| generate().unwrap()).collect();
        let mut ring = KeyRing::new(&keys[0], at(0));
        ring.rotate(&keys[1], at(1000));
        ring.rotate(&keys[2], at(5000));
        // keys[0] stopped at 1000: its tokens live until 1000 + 3690.
        assert!(ring.retire_expired(at(4689), POLICY).is_empty());
        assert_eq!(ring.retire_expired(at(4690), POLICY), [keys[0].kid.clone()]);
        assert_eq!(ring.published_kids(), [keys[1].kid.as_str(), &keys[2].kid]);
        let views = ring.list(POLICY);
        assert_eq!(views[0].role, Role::Retired);
        assert_eq!(views[0].tokens, TokensLive::Refused(at(4690)));
        // The signing key is never retired by age.
        assert_eq!(
            ring.retire_expired(at(1_000_000), POLICY),
            [keys[1].kid.clone()]
        );
        assert_eq!(ring.published_kids(), [keys[2].kid.as_str()]);
    }

    #[test]
    fn retiring_by_kid_warns_of_live_tokens_and_refuses_the_signing_key() {
        let (first, second) = (generate().unwrap(), generate().unwrap());
        let mut ring = KeyRing::new(&first, at(0));
        ring.rotate(&second, at(100));
        assert_eq!(
            ring.live_tokens(&first.kid, at(200), POLICY),
            Some(TokensLive::Until(at(3790)))
        );
        assert_eq!(ring.live_tokens(&first.kid, at(3790), POLICY), None);
        let refused = ring.retire(&second.kid, at(200)).unwrap_err().to_string();
        assert!(refused.contains("is the signing key"), "{refused}");
        assert!(refused.contains("techctl keys rotate"), "{refused}");
        let unknown = ring.retire("nope", at(200)).unwrap_err().to_string();
        assert!(unknown.contains(&first.kid), "{unknown}");
        assert_eq!(
            ring.retire(&first.kid, at(200)).unwrap(),
            Retirement::Retired
        );
        assert_eq!(
            ring.retire(&first.kid, at(300)).unwrap(),
            Retirement::AlreadyRetired(Some(at(200)))
        );
        assert_eq!(ring.published_kids(), [second.kid.as_str()]);
    }

    #[test]
    fn a_document_from_before_the_history_is_read_with_undated_keys() {
        let key = generate().unwrap();
        let mut doc = Map::new();
        KeyRing::new(&key, at(0)).write_into(&mut doc);
        doc.remove("jwt_keys");
        let ring = KeyRing::from_document(&doc, "the secret").unwrap();
        let views = ring.list(POLICY);
        assert_eq!(views.len(), 1);
        assert_eq!(views[0].record.created_at, None);
        assert_eq!(views[0].role, Role::Signing);
    }

    #[test]
    fn broken_documents_are_named_not_repaired() {
        let key = generate().unwrap();
        let mut doc = Map::new();
        KeyRing::new(&key, at(0)).write_into(&mut doc);
        let broken = |edit: &dyn Fn(&mut Map<String, Value>)| {
            let mut copy = doc.clone();
            edit(&mut copy);
            KeyRing::from_document(&copy, "the secret")
                .unwrap_err()
                .to_string()
        };
        let message = broken(&|d| {
            d.remove("jwt_private_key");
        });
        assert!(message.contains("has no jwt_private_key"), "{message}");
        let message = broken(&|d| {
            d.insert("jwt_jwks".into(), json!("keys"));
        });
        assert!(message.contains("not a JWK set"), "{message}");
        let message = broken(&|d| {
            d.insert("jwt_jwks".into(), json!({"keys": []}));
        });
        assert!(message.contains("not in its jwt_jwks"), "{message}");
        let message = broken(&|d| {
            d.insert("jwt_keys".into(), json!([{"kid": 1}]));
        });
        assert!(message.contains("not a key history"), "{message}");
    }

    #[test]
    fn the_history_forgets_the_oldest_retired_keys() {
        let mut ring = KeyRing::new(&generate().unwrap(), at(0));
        // Records are cheap to fake: the ring never reads key material back.
        for n in 0..(RETIRED_KEPT as u64 + 5) {
            let mut key = ring_key(&ring);
            key.kid = format!("old-{n}");
            key.public_jwk["kid"] = json!(key.kid);
            ring.rotate(&key, at(n * 10));
        }
        let newest = ring.signing_kid().to_string();
        ring.retire_expired(at(1_000_000), POLICY);
        let retired = ring
            .list(POLICY)
            .iter()
            .filter(|v| v.role == Role::Retired)
            .count();
        assert_eq!(retired, RETIRED_KEPT);
        assert_eq!(ring.published_kids(), [newest.as_str()]);
    }

    fn ring_key(ring: &KeyRing) -> SigningKey {
        SigningKey {
            kid: ring.kid.clone(),
            private_key_pem: ring.private_key_pem.clone(),
            public_key_pem: ring.public_key_pem.clone(),
            public_jwk: ring.published[0].clone(),
        }
    }

    #[test]
    fn the_public_set_keeps_keys_published_ahead_and_drops_retired_ones() {
        let first = crate::generate().unwrap();
        let second = crate::generate().unwrap();
        let mut ring = KeyRing::new(&first, SystemTime::now());
        // Another rotation published `second` but has not written the ring.
        let ahead = json!({"keys": [first.public_jwk, second.public_jwk]});
        let set = ring.public_set(Some(&ahead));
        let kids: Vec<&str> = set["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|k| k["kid"].as_str())
            .collect();
        assert_eq!(kids, [first.kid.as_str(), second.kid.as_str()]);
        assert!(set["keys"][0].get("d").is_none(), "public halves only");
        // Once the ring retires a key, the public set drops it.
        ring.rotate(&second, SystemTime::now());
        ring.retire(&first.kid, SystemTime::now()).unwrap();
        let set = ring.public_set(Some(&ahead));
        assert_eq!(set["keys"].as_array().unwrap().len(), 1);
        assert_eq!(set["keys"][0]["kid"], second.kid.as_str());
    }
}
