//! The `.techctl/` folder of the working directory: what `techctl dev`
//! keeps between runs (the database cluster, the signing key, the local
//! credentials, the logs) and what says a run is under way (a lock, and a
//! state file naming its processes and addresses).
//!
//! ```text
//! .techctl/
//!   postgres/     the cluster's data (owned by the PostgreSQL user)
//!   logs/         one file per service, the gateway, the sandbox, PostgreSQL
//!   keys.json     the JWT signing key, in the stack secret's layout
//!   local.json    the sandbox's credentials and the employee account
//!   dev.lock      held while `techctl dev` runs
//!   dev.json      the running system: addresses, processes, restarts
//! ```

use std::collections::BTreeMap;
use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::DevError;
use files::{lock_file, write_atomically};

pub const FOLDER: &str = ".techctl";
/// `.techctl/`'s mode: the user's alone.
const PRIVATE_FOLDER: u32 = 0o700;
/// The local cluster's superuser, which only the set-up logs in as.
pub const SUPERUSER: &str = "postgres";

#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
}

/// The credentials of the local system, made once and kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub employee_email: String,
    pub employee_password: String,
    pub mercadopago_access_token: String,
    pub mercadopago_webhook_secret: String,
}

/// What a running `techctl dev` publishes about itself.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub pid: u32,
    pub gateway_url: String,
    pub sandbox_url: String,
    pub postgres_port: u16,
    pub services: BTreeMap<String, ServiceState>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServiceState {
    pub url: String,
    /// The process now serving, if one is up.
    pub pid: Option<u32>,
    pub restarts: u32,
}

/// Held while this process runs the system; released when dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Home {
    /// `.techctl/` under `dir`, with its logs folder.
    pub fn open(dir: &Path) -> Result<Home, DevError> {
        let root = dir.join(FOLDER);
        let existed = root.is_dir();
        let made = std::fs::create_dir_all(root.join("logs")).and_then(|()| {
            // Keys, passwords and the database live here: the user's alone,
            // whatever the umask made of it. A folder that is there keeps
            // its search bits (run by root, PostgreSQL's own user passes
            // through it to its data) but loses any read or write bit of
            // others.
            let mode = if existed {
                (std::fs::metadata(&root)?.permissions().mode() & 0o711) | PRIVATE_FOLDER
            } else {
                PRIVATE_FOLDER
            };
            std::fs::set_permissions(&root, std::fs::Permissions::from_mode(mode))
        });
        made.map_err(|e| {
            DevError::new(format!(
                "cannot create {}: {e}\n  run techctl dev in a folder you can write to",
                root.display()
            ))
        })?;
        Ok(Home { root })
    }

    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    pub fn postgres(&self) -> PathBuf {
        self.root.join("postgres")
    }

    pub fn keys_file(&self) -> PathBuf {
        self.root.join("keys.json")
    }

    /// What operators set with `techctl secrets set --local`, handed to
    /// the services as their variables.
    pub fn secrets_file(&self) -> PathBuf {
        self.root.join("secrets.json")
    }

    /// `service`'s values from the secrets file, as (variable, value). The
    /// first admin is `techctl dev`'s own (its credentials file), so a
    /// local admin password is not taken.
    pub fn operator_values(&self, service: &str) -> Vec<(String, String)> {
        let Ok(text) = std::fs::read_to_string(self.secrets_file()) else {
            return Vec::new();
        };
        let doc: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        blueprint::operator::operator_values(service)
            .iter()
            .filter(|(_, name, _)| *name != blueprint::operator::ADMIN_PASSWORD.1)
            .filter_map(|(variable, name, _)| {
                let value = doc.get(service)?.get(*name)?.as_str()?;
                Some((variable.to_string(), value.to_string()))
            })
            .collect()
    }

    fn state_file(&self) -> PathBuf {
        self.root.join("dev.json")
    }

    /// Takes the lock of this folder, or says which run holds it.
    pub fn lock(&self) -> Result<Lock, DevError> {
        let path = self.root.join("dev.lock");
        let file = lock_file(&path)
            .map_err(|e| DevError::new(format!("cannot open {}: {e}", path.display())))?;
        match file.try_lock() {
            Ok(()) => Ok(Lock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => {
                let running = self.state();
                let detail = match running {
                    Some(state) => format!(
                        " (pid {}, gateway {})\n  use it, or stop it with Ctrl-C in its terminal (or `kill {}`) before starting another",
                        state.pid, state.gateway_url, state.pid
                    ),
                    None => {
                        "\n  it is still starting; wait for it, or stop it before starting another"
                            .into()
                    }
                };
                Err(DevError::new(format!(
                    "techctl dev is already running in {}{detail}",
                    self.root.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(DevError::new(format!(
                "cannot lock {}: {e}",
                path.display()
            ))),
        }
    }

    /// The state a run published, if any (it may be a crashed run's).
    pub fn state(&self) -> Option<State> {
        let text = std::fs::read_to_string(self.state_file()).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn write_state(&self, state: &State) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(state).map_err(std::io::Error::other)?;
        write_atomically(&self.state_file(), &text)
    }

    pub fn clear_state(&self) {
        let _ = std::fs::remove_file(self.state_file());
    }

    /// The local credentials, made on the first run.
    pub fn credentials(&self) -> Result<Credentials, DevError> {
        let path = self.root.join("local.json");
        if let Some(text) = read_if_present(&path)? {
            return serde_json::from_str(&text).map_err(|e| {
                DevError::new(format!(
                    "{} is not valid ({e})\n  delete it and techctl dev makes new credentials",
                    path.display()
                ))
            });
        }
        let credentials = Credentials {
            employee_email: "gerente@lanchonete.dev".into(),
            employee_password: random_text(20),
            mercadopago_access_token: format!("TEST-{}", random_text(32)),
            mercadopago_webhook_secret: random_text(40),
        };
        let text = serde_json::to_string_pretty(&credentials)
            .map_err(|e| DevError::new(format!("cannot encode the local credentials: {e}")))?;
        write_atomically(&path, &text)
            .map_err(|e| DevError::new(format!("cannot write {}: {e}", path.display())))?;
        Ok(credentials)
    }

    /// The PostgreSQL password of each of `roles` (and of the cluster's
    /// superuser, `postgres`), made the first time a role is asked for and
    /// kept in `.techctl/postgres-roles.json`.
    pub fn database_passwords(
        &self,
        roles: &[String],
    ) -> Result<BTreeMap<String, String>, DevError> {
        let path = self.root.join("postgres-roles.json");
        let mut known: BTreeMap<String, String> = match read_if_present(&path)? {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                DevError::new(format!(
                    "{} is not valid ({e})\n  delete it and stop techctl dev; the next run makes new passwords",
                    path.display()
                ))
            })?,
            None => BTreeMap::new(),
        };
        let before = known.len();
        for role in roles.iter().map(String::as_str).chain([SUPERUSER]) {
            known
                .entry(role.to_string())
                .or_insert_with(|| random_text(32));
        }
        if known.len() != before {
            let text = serde_json::to_string_pretty(&known)
                .map_err(|e| DevError::new(format!("cannot encode the passwords: {e}")))?;
            write_atomically(&path, &text)
                .map_err(|e| DevError::new(format!("cannot write {}: {e}", path.display())))?;
        }
        Ok(known)
    }

    /// The signing key file the services read, made on the first run; a
    /// file edited into something unusable is refused, never replaced.
    pub fn ensure_keys(&self) -> Result<String, DevError> {
        let path = self.keys_file();
        if let Some(text) = read_if_present(&path)? {
            let doc: Value = serde_json::from_str(&text).map_err(|e| {
                DevError::new(format!(
                    "{} is not valid JSON ({e})\n  fix it, or delete it and techctl dev makes a new key (tokens signed with the old one stop working)",
                    path.display()
                ))
            })?;
            let ring = doc
                .as_object()
                .ok_or_else(|| format!("{} does not hold a JSON object", path.display()))
                .and_then(|doc| {
                    keys::ring::KeyRing::from_document(doc, &path.display().to_string())
                        .map_err(|e| e.0)
                })
                .map_err(|e| {
                    DevError::new(format!(
                        "{e}\n  or delete {} and techctl dev makes a new key",
                        path.display()
                    ))
                })?;
            return Ok(ring.signing_kid().to_string());
        }
        let key = keys::generate()
            .map_err(|e| DevError::new(format!("cannot make a signing key: {e}")))?;
        let text = serde_json::to_string_pretty(&Value::Object(keys::key_document(&key)))
            .map_err(|e| DevError::new(format!("cannot encode the key: {e}")))?;
        write_atomically(&path, &text)
            .map_err(|e| DevError::new(format!("cannot write {}: {e}", path.display())))?;
        Ok(key.kid)
    }
}

fn read_if_present(path: &Path) -> Result<Option<String>, DevError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DevError::new(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn random_text(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_running_system() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(dir.path()).unwrap();
        let _held = home.lock().unwrap();
        home.write_state(&State {
            pid: 4242,
            gateway_url: "http://127.0.0.1:8080".into(),
            ..State::default()
        })
        .unwrap();
        let again = Home::open(dir.path()).unwrap().lock().unwrap_err();
        let message = again.to_string();
        assert!(message.contains("already running"), "{message}");
        assert!(message.contains("pid 4242"), "{message}");
        assert!(message.contains("http://127.0.0.1:8080"), "{message}");
    }

    /// `stat` of what the folder keeps: the folder the user's alone (0700),
    /// every key and credential file 0600, through every rewrite.
    #[test]
    fn local_secrets_are_the_user_s_alone() {
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(dir.path()).unwrap();
        assert_eq!(mode(&home.root), 0o700);
        home.credentials().unwrap();
        home.ensure_keys().unwrap();
        home.database_passwords(&["order_service".into()]).unwrap();
        // A rewrite (a new role's password) keeps the mode.
        home.database_passwords(&["order_service".into(), "events".into()])
            .unwrap();
        let _lock = home.lock().unwrap();
        for file in ["local.json", "keys.json", "postgres-roles.json", "dev.lock"] {
            assert_eq!(mode(&home.root.join(file)), 0o600, "{file}");
        }
        // A folder others could read is closed on the next start; one that
        // only lets them pass through (root's, for PostgreSQL) stays so.
        std::fs::set_permissions(&home.root, std::fs::Permissions::from_mode(0o755)).unwrap();
        Home::open(dir.path()).unwrap();
        assert_eq!(mode(&home.root), 0o711);
        std::fs::set_permissions(&home.root, std::fs::Permissions::from_mode(0o777)).unwrap();
        Home::open(dir.path()).unwrap();
        assert_eq!(mode(&home.root), 0o711);
    }

    #[test]
    fn credentials_and_keys_are_kept_between_runs() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(dir.path()).unwrap();
        let first = home.credentials().unwrap();
        let again = home.credentials().unwrap();
        assert_eq!(first.employee_password, again.employee_password);
        assert!(first.employee_password.len() >= 12);
        let kid = home.ensure_keys().unwrap();
        assert_eq!(home.ensure_keys().unwrap(), kid);
    }

    #[test]
    fn a_broken_key_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::open(dir.path()).unwrap();
        std::fs::write(home.keys_file(), "{not json").unwrap();
        let message = home.ensure_keys().unwrap_err().to_string();
        assert!(message.contains("keys.json is not valid JSON"), "{message}");
        assert_eq!(
            std::fs::read_to_string(home.keys_file()).unwrap(),
            "{not json"
        );
    }
}
