//! The dead letters of a running `techctl dev`: its event bus is the
//! PostgreSQL transport's tables in the local cluster, reached with `psql`
//! as the bus's own role.

use serde::Deserialize;

use crate::DevError;
use crate::cluster::EVENTS_DATABASE;
use crate::home::Home;
use localkit::postgres::Binaries;

/// The channel the transport's consumers wait on.
const CHANNEL: &str = "event_bus";

/// One dead letter of the local bus.
#[derive(Debug, Clone, Deserialize)]
pub struct LocalDeadLetter {
    pub id: i64,
    /// The consuming service.
    pub queue: String,
    pub body: String,
    pub reason: String,
    /// When it was set aside, in seconds since the Unix epoch.
    pub dead_at: f64,
}

/// The bus of the `techctl dev` running in a folder.
pub struct LocalBus {
    psql: std::path::PathBuf,
    port: u16,
    password: String,
}

impl LocalBus {
    pub fn open(home: &Home) -> Result<LocalBus, DevError> {
        let state = home.state().ok_or_else(|| {
            DevError::new(
                "techctl dev is not running in this folder: its events live in its database, \
                 which runs only with it\n  start it with `techctl dev` (in another terminal)",
            )
        })?;
        let passwords = home.database_passwords(&[EVENTS_DATABASE.to_string()])?;
        let bin = Binaries::locate().map_err(|missing| DevError::new(missing.to_string()))?;
        Ok(LocalBus {
            psql: bin.dir.join("psql"),
            port: state.postgres_port,
            password: passwords[EVENTS_DATABASE].clone(),
        })
    }

    /// The dead letters of `queue` (every queue's when `None`), oldest
    /// first.
    pub async fn list(&self, queue: Option<&str>) -> Result<Vec<LocalDeadLetter>, DevError> {
        let filter = queue.map_or("true".to_string(), |q| format!("queue = {}", literal(q)));
        let text = self
            .sql(&format!(
                "SELECT coalesce(json_agg(json_build_object('id', id, 'queue', queue, 'body', body, \
                 'reason', reason, 'dead_at', extract(epoch FROM dead_at)) ORDER BY dead_at, id), '[]') \
                 FROM bus_dead_letters WHERE {filter};"
            ))
            .await?;
        serde_json::from_str(&text)
            .map_err(|e| DevError::new(format!("the bus answered what is not a list ({e})")))
    }

    /// Sends `queue`'s dead letters (those of `ids`, or all) back to it, in
    /// one transaction, and wakes its consumer; answers the ids sent.
    pub async fn redrive(&self, queue: &str, ids: Option<&[i64]>) -> Result<Vec<i64>, DevError> {
        let chosen = match ids {
            Some(ids) => format!(
                "AND id = ANY(ARRAY[{}]::bigint[])",
                ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
            ),
            None => String::new(),
        };
        let queue = literal(queue);
        let text = self
            .sql(&format!(
                "BEGIN;\n\
                 CREATE TEMP TABLE moved ON COMMIT DROP AS WITH gone AS (\
                   DELETE FROM bus_dead_letters WHERE queue = {queue} {chosen} RETURNING id, queue, body) \
                 SELECT * FROM gone;\n\
                 INSERT INTO bus_messages (queue, body) SELECT queue, body FROM moved ORDER BY id;\n\
                 SELECT pg_notify('{CHANNEL}', {queue});\n\
                 SELECT coalesce(json_agg(id ORDER BY id), '[]') FROM moved;\n\
                 COMMIT;"
            ))
            .await?;
        let last = text
            .lines()
            .rev()
            .find(|l| l.starts_with('['))
            .unwrap_or("[]");
        serde_json::from_str(last)
            .map_err(|e| DevError::new(format!("the bus answered what is not a list ({e})")))
    }

    async fn sql(&self, sql: &str) -> Result<String, DevError> {
        let port = self.port.to_string();
        let mut psql = tokio::process::Command::new(&self.psql);
        psql.args(["-h", "127.0.0.1", "-p", &port, "-U", EVENTS_DATABASE])
            .args([
                "-d",
                EVENTS_DATABASE,
                "-v",
                "ON_ERROR_STOP=1",
                "-qtA",
                "-f",
                "-",
            ])
            .env("PGPASSWORD", &self.password);
        let out = crate::cluster::feed(psql, sql).await?;
        if !out.status.success() {
            return Err(DevError::new(format!(
                "the local event bus refused: {}\n  is techctl dev still running?",
                String::from_utf8_lossy(&out.stderr).trim_end()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}
