//! Where a key ring lives: the stack's signing-keys secret in Secrets
//! Manager (with its public set in the public-keys secret), or the key file
//! of `techctl dev`. Both are changed read-modify-write with nobody else's
//! change lost: the secret by a conditional move of AWSCURRENT (see
//! `aws::secrets::update`), the file under an exclusive lock.

use std::fs::File;
use std::io::ErrorKind;
use std::path::PathBuf;

use serde_json::{Map, Value, json};

use aws::{Aws, AwsError, secrets};
use files::{lock_file, write_atomically};
use keys::ring::{KeyRing, RingError};

/// Why a store (the key ring's, or operators' values') could not be read
/// or changed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The user's to fix: no keys yet, a document edited into something
    /// unusable, a key file that cannot be read or written.
    #[error("{0}")]
    Yours(String),
    #[error(transparent)]
    Aws(#[from] AwsError),
}

pub enum KeyStore {
    /// The secrets `techctl/<stack>/signing-keys` (the ring, the user
    /// service's) and `techctl/<stack>/public-keys` (the public set, every
    /// other service's).
    Stack {
        aws: Box<Aws>,
        name: String,
        public: String,
    },
    /// `.techctl/keys.json`, which `techctl dev`'s services read.
    File(PathBuf),
}

impl KeyStore {
    /// What the ring is kept in, for messages.
    pub fn describe(&self) -> String {
        match self {
            KeyStore::Stack { name, .. } => format!("the secret {name}"),
            KeyStore::File(path) => format!("the key file {}", path.display()),
        }
    }

    /// The ring as it is now.
    pub async fn read(&self) -> Result<KeyRing, StoreError> {
        self.update(|_| Ok(())).await.map(|((), ring)| ring)
    }

    /// Lets `change` edit the ring and saves the result, if it changed, as
    /// one write; returns what `change` returned and the ring as saved.
    /// `change` may run more than once (when another writer got in first),
    /// each time on the freshest ring. An unusable document is reported and
    /// left as it is.
    pub async fn update<T>(
        &self,
        mut change: impl FnMut(&mut KeyRing) -> Result<T, RingError>,
    ) -> Result<(T, KeyRing), StoreError> {
        let what = self.describe();
        if let KeyStore::Stack { aws, name, public } = self {
            // A new key is published ahead of the ring's write (see below).
            let mut trial = self.read_ring(aws, name, &what).await?;
            change(&mut trial).map_err(user)?;
            self.publish(aws, name, public, Some(&trial), &what).await?;
        }
        let mut edit = |doc: &mut Map<String, Value>| -> Result<(T, KeyRing), StoreError> {
            if doc.is_empty() {
                return Err(StoreError::Yours(format!(
                    "{what} does not exist or holds nothing: {}",
                    match self {
                        KeyStore::Stack { .. } => "run `techctl up` first",
                        KeyStore::File(_) => "run `techctl dev` here once first",
                    }
                )));
            }
            let mut ring = KeyRing::from_document(doc, &what).map_err(user)?;
            let outcome = change(&mut ring).map_err(user)?;
            ring.write_into(doc);
            Ok((outcome, ring))
        };
        match self {
            KeyStore::Stack { aws, name, public } => {
                // The public set learns of a new key before the ring signs
                // with it, and forgets a key only after the ring retired it:
                // no service ever meets a token it has no key for.
                let saved = secrets::update(aws, name, edit).await?;
                self.publish(aws, name, public, None, &what).await?;
                Ok(saved)
            }
            KeyStore::File(path) => {
                let _lock = lock(path)?;
                let mut doc = read_file(path)?;
                let before = doc.clone();
                let outcome = edit(&mut doc)?;
                if doc != before {
                    let text = serde_json::to_string_pretty(&Value::Object(doc))
                        .map_err(|e| StoreError::Yours(format!("cannot encode the keys: {e}")))?;
                    write_atomically(path, &text).map_err(|e| {
                        StoreError::Yours(format!("cannot write {}: {e}", path.display()))
                    })?;
                }
                Ok(outcome)
            }
        }
    }
}

impl KeyStore {
    /// Writes into the public-keys secret the set the ring as it is *now*
    /// implies (reread here, so a retirement another command made in the
    /// meantime is never undone), plus the keys `ahead` publishes before
    /// its ring is written. Only a retirement in the ring takes a key out.
    async fn publish(
        &self,
        aws: &Aws,
        name: &str,
        public: &str,
        ahead: Option<&KeyRing>,
        what: &str,
    ) -> Result<(), StoreError> {
        let field = secrets::split::PUBLIC_SET;
        let latest = self.read_ring(aws, name, what).await?;
        secrets::update(aws, public, |doc: &mut Map<String, Value>| {
            let mut current = doc
                .get(field)
                .cloned()
                .unwrap_or_else(|| json!({"keys": []}));
            if let (Some(ahead), Some(keys)) =
                (ahead, current.get_mut("keys").and_then(Value::as_array_mut))
            {
                keys.extend(ahead.jwks()["keys"].as_array().cloned().unwrap_or_default());
            }
            doc.insert(field.into(), latest.public_set(Some(&current)));
            Ok::<_, AwsError>(())
        })
        .await?;
        Ok(())
    }

    async fn read_ring(&self, aws: &Aws, name: &str, what: &str) -> Result<KeyRing, StoreError> {
        let doc = match secrets::current_version(aws, name).await? {
            Some(version) => secrets::parse(name, &version.text)?,
            None => Map::new(),
        };
        if doc.is_empty() {
            return Err(StoreError::Yours(format!(
                "{what} does not exist or holds nothing: run `techctl up` first"
            )));
        }
        KeyRing::from_document(&doc, what).map_err(user)
    }
}

fn user(e: RingError) -> StoreError {
    StoreError::Yours(e.0)
}

/// Holds `<file>.lock` exclusively until dropped: two `techctl keys` at
/// once take turns.
fn lock(path: &std::path::Path) -> Result<File, StoreError> {
    let lock_path = PathBuf::from(format!("{}.lock", path.display()));
    let file = lock_file(&lock_path)
        .map_err(|e| StoreError::Yours(format!("cannot open {}: {e}", lock_path.display())))?;
    file.lock()
        .map_err(|e| StoreError::Yours(format!("cannot lock {}: {e}", lock_path.display())))?;
    Ok(file)
}

fn read_file(path: &std::path::Path) -> Result<Map<String, Value>, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => {
            return Err(StoreError::Yours(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(doc)) => Ok(doc),
        Ok(_) => Err(StoreError::Yours(format!(
            "{} does not hold a JSON object; nothing was changed.\n  fix it, or delete it and `techctl dev` makes a new key (tokens signed with the old one stop working)",
            path.display()
        ))),
        Err(e) => Err(StoreError::Yours(format!(
            "{} is not valid JSON ({e}); nothing was changed.\n  fix it, or delete it and `techctl dev` makes a new key (tokens signed with the old one stop working)",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use keys::generate;

    fn file_store() -> (tempfile::TempDir, KeyStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let doc = Value::Object(keys::key_document(&generate().unwrap()));
        std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        (dir, KeyStore::File(path))
    }

    #[tokio::test]
    async fn a_rotation_of_the_key_file_keeps_the_old_key_published() {
        let (_dir, store) = file_store();
        let first = store.read().await.unwrap().signing_kid().to_string();
        let key = generate().unwrap();
        let ((), ring) = store
            .update(|ring| {
                ring.rotate(&key, SystemTime::now());
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(ring.signing_kid(), key.kid);
        let again = store.read().await.unwrap();
        assert_eq!(again.published_kids(), [first.as_str(), &key.kid]);
    }

    #[tokio::test]
    async fn concurrent_rotations_of_the_key_file_keep_every_key() {
        let (_dir, store) = file_store();
        let store = std::sync::Arc::new(store);
        let keys: Vec<_> = (0..4).map(|_| generate().unwrap()).collect();
        let mut tasks = Vec::new();
        for key in keys.clone() {
            let store = store.clone();
            tasks.push(tokio::task::spawn_blocking(move || {
                tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap()
                    .block_on(store.update(|ring| {
                        ring.rotate(&key, SystemTime::now());
                        Ok(())
                    }))
                    .map(|_| ())
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let ring = store.read().await.unwrap();
        for key in &keys {
            assert!(ring.published_kids().contains(&key.kid.as_str()));
        }
        assert_eq!(ring.published_kids().len(), 5);
    }

    #[tokio::test]
    async fn a_broken_key_file_is_named_and_left_alone() {
        let (dir, store) = file_store();
        let path = dir.path().join("keys.json");
        std::fs::write(&path, "{\"jwt_kid\": ").unwrap();
        let key = generate().unwrap();
        let message = store
            .update(|ring| {
                ring.rotate(&key, SystemTime::now());
                Ok(())
            })
            .await
            .unwrap_err()
            .to_string();
        assert!(message.contains("is not valid JSON"), "{message}");
        assert!(message.contains("nothing was changed"), "{message}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"jwt_kid\": ");
        let missing = KeyStore::File(dir.path().join("none.json"))
            .read()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("run `techctl dev` here once first"),
            "{missing}"
        );
    }
}
