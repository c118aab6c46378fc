//! Where the values operators supply live (the Mercado Pago credentials,
//! the first admin's password): each service's own secret in Secrets
//! Manager, or with `--local` the file `.techctl/secrets.json` that
//! `techctl dev` hands its services. Values go in and are never read back
//! out; what can be listed is their names and when they were set.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::SystemTime;

use serde_json::{Map, Value, json};

use aws::{Aws, AwsError, secrets};
use files::{lock_file, write_atomically};

/// Where each value's time of setting is kept, beside the values (a flat
/// object, so that a task definition can take any value by `valueFrom`).
const SET_AT: &str = "techctl_set_at";

pub use crate::keystore::StoreError;

pub enum SecretStore {
    /// `techctl/<stack>/service/<service>`, one per service.
    Stack { aws: Aws, stack: String },
    /// `.techctl/secrets.json`: `{service: {name: value}, techctl_set_at: …}`.
    File(PathBuf),
}

/// A value's name and when it was set (`None`: set by hand, or by `up`).
pub type Listing = BTreeMap<String, Option<String>>;

impl SecretStore {
    pub fn describe(&self, service: &str) -> String {
        match self {
            SecretStore::Stack { stack, .. } => format!(
                "the secret {}",
                engine::plan::expand::service_secret_name(stack, service)
            ),
            SecretStore::File(path) => format!("{} ({service})", path.display()),
        }
    }

    /// Sets `name` of `service` to `value`.
    pub async fn set(&self, service: &str, name: &str, value: &str) -> Result<(), StoreError> {
        let at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        self.change(service, |doc| {
            doc.insert(name.to_string(), json!(value));
            let stamps = doc
                .entry(SET_AT)
                .or_insert_with(|| json!({}))
                .as_object_mut();
            if let Some(stamps) = stamps {
                stamps.insert(name.to_string(), json!(at));
            } else {
                doc.insert(SET_AT.into(), json!({ name: at }));
            }
        })
        .await
    }

    /// Removes `name` of `service`; whether it was there.
    pub async fn unset(&self, service: &str, name: &str) -> Result<bool, StoreError> {
        let mut found = false;
        self.change(service, |doc| {
            found = doc.remove(name).is_some();
            if let Some(stamps) = doc.get_mut(SET_AT).and_then(Value::as_object_mut) {
                stamps.remove(name);
            }
        })
        .await?;
        Ok(found)
    }

    /// The names `service`'s secret holds, with when each was set.
    pub async fn list(&self, service: &str) -> Result<Listing, StoreError> {
        let doc = match self {
            SecretStore::Stack { aws, stack } => {
                let name = engine::plan::expand::service_secret_name(stack, service);
                match secrets::current_version(aws, &name).await {
                    Ok(Some(version)) => secrets::parse(&name, &version.text)?,
                    Ok(None) => Map::new(),
                    Err(e) if e.is_not_found() => return Err(not_up(&name)),
                    Err(e) => return Err(e.into()),
                }
            }
            SecretStore::File(path) => read_file(path)?
                .remove(service)
                .and_then(|v| match v {
                    Value::Object(map) => Some(map),
                    _ => None,
                })
                .unwrap_or_default(),
        };
        let stamps = doc.get(SET_AT).and_then(Value::as_object).cloned();
        Ok(doc
            .keys()
            .filter(|k| *k != SET_AT)
            .map(|k| {
                let at = stamps
                    .as_ref()
                    .and_then(|s| s.get(k))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                (k.clone(), at)
            })
            .collect())
    }

    async fn change(
        &self,
        service: &str,
        mut edit: impl FnMut(&mut Map<String, Value>),
    ) -> Result<(), StoreError> {
        match self {
            SecretStore::Stack { aws, stack } => {
                let name = engine::plan::expand::service_secret_name(stack, service);
                if secrets::describe(aws, &name).await?.is_none() {
                    return Err(not_up(&name));
                }
                secrets::update(aws, &name, |doc: &mut Map<String, Value>| {
                    edit(doc);
                    Ok::<_, AwsError>(())
                })
                .await?;
                Ok(())
            }
            SecretStore::File(path) => {
                let lock_path = PathBuf::from(format!("{}.lock", path.display()));
                let lock = lock_file(&lock_path)
                    .and_then(|file| file.lock().map(|()| file))
                    .map_err(|e| {
                        StoreError::Yours(format!("cannot lock {}: {e}", lock_path.display()))
                    })?;
                let mut all = read_file(path)?;
                let mut doc = match all.remove(service) {
                    Some(Value::Object(doc)) => doc,
                    _ => Map::new(),
                };
                edit(&mut doc);
                all.insert(service.to_string(), Value::Object(doc));
                let text = serde_json::to_string_pretty(&Value::Object(all))
                    .map_err(|e| StoreError::Yours(e.to_string()))?;
                write_atomically(path, &text).map_err(|e| {
                    StoreError::Yours(format!("cannot write {}: {e}", path.display()))
                })?;
                drop(lock);
                Ok(())
            }
        }
    }
}

fn not_up(name: &str) -> StoreError {
    StoreError::Yours(format!(
        "the secret {name} does not exist: run `techctl up` first (it makes one secret per service)"
    ))
}

/// The local file, `{}` when there is none yet.
pub fn read_file(path: &std::path::Path) -> Result<Map<String, Value>, StoreError> {
    match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(doc)) => Ok(doc),
            _ => Err(StoreError::Yours(format!(
                "{} does not hold a JSON object; nothing was changed.\n  fix it, or delete it and set the values again",
                path.display()
            ))),
        },
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Map::new()),
        Err(e) => Err(StoreError::Yours(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn the_local_file_keeps_values_names_and_times_and_is_the_user_s_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.json");
        let store = SecretStore::File(path.clone());
        store
            .set("payment", "mercadopago_pos_id", "CAIXA-1")
            .await
            .unwrap();
        store
            .set("payment", "mercadopago_access_token", "APP_USR-x")
            .await
            .unwrap();
        let listed = store.list("payment").await.unwrap();
        assert_eq!(
            listed.keys().collect::<Vec<_>>(),
            ["mercadopago_access_token", "mercadopago_pos_id"]
        );
        assert!(listed.values().all(Option::is_some));
        assert!(store.unset("payment", "mercadopago_pos_id").await.unwrap());
        assert!(!store.unset("payment", "mercadopago_pos_id").await.unwrap());
        assert_eq!(store.list("payment").await.unwrap().len(), 1);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let doc = read_file(&path).unwrap();
        assert_eq!(doc["payment"]["mercadopago_access_token"], "APP_USR-x");
    }
}
