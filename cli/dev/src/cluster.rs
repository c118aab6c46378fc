//! The local database: a private PostgreSQL cluster made with the system's
//! `initdb` under `.techctl/postgres/`, started and stopped with `pg_ctl`,
//! with one database per service and one for the event bus.

use std::path::PathBuf;
use std::process::Output;

use localkit::postgres::Binaries;

use crate::DevError;

/// The database the PostgreSQL event transport keeps its queues in.
pub const EVENTS_DATABASE: &str = "events";

#[derive(Debug)]
pub struct Cluster {
    bin: Binaries,
    data: PathBuf,
    log: PathBuf,
    pub port: u16,
}

impl Cluster {
    /// Finds the binaries and makes the cluster on first use; a cluster
    /// left running by a run that crashed is stopped first.
    pub async fn prepare(folder: PathBuf, log: PathBuf, port: u16) -> Result<Cluster, DevError> {
        let bin = Binaries::locate().map_err(|missing| DevError::new(missing.to_string()))?;
        bin.own_dir(&folder).map_err(|e| {
            DevError::new(format!(
                "cannot prepare {} for PostgreSQL: {e}",
                folder.display()
            ))
        })?;
        let cluster = Cluster {
            data: folder.join("data"),
            log,
            port,
            bin,
        };
        cluster.own_log()?;
        if !cluster.data.join("PG_VERSION").is_file() {
            let out = cluster
                .run(
                    "initdb",
                    &[
                        "-D",
                        &cluster.data.display().to_string(),
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--locale=C",
                    ],
                )
                .await?;
            if !out.status.success() {
                return Err(DevError::new(format!(
                    "initdb could not make the cluster in {}:\n{}",
                    cluster.data.display(),
                    String::from_utf8_lossy(&out.stderr).trim_end()
                )));
            }
        }
        if cluster.running().await? {
            cluster.stop().await;
        }
        Ok(cluster)
    }

    /// The server writes its log itself, as the user it runs as.
    fn own_log(&self) -> Result<(), DevError> {
        let created = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map(drop);
        let owned = created.and_then(|()| match &self.bin.run_as {
            Some(user) => std::os::unix::fs::chown(&self.log, Some(user.uid), Some(user.gid)),
            None => Ok(()),
        });
        owned.map_err(|e| DevError::new(format!("cannot prepare {}: {e}", self.log.display())))
    }

    async fn run(&self, program: &str, args: &[&str]) -> Result<Output, DevError> {
        let mut command = tokio::process::Command::from(self.bin.command(program));
        command
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| DevError::new(format!("cannot run {program}: {e}")))
    }

    async fn running(&self) -> Result<bool, DevError> {
        let data = self.data.display().to_string();
        Ok(self
            .run("pg_ctl", &["status", "-D", &data])
            .await?
            .status
            .success())
    }

    /// Starts the server on `port` (loopback only) and waits until it
    /// takes connections.
    pub async fn start(&self) -> Result<(), DevError> {
        let data = self.data.display().to_string();
        let log = self.log.display().to_string();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k '' -c max_connections=200",
            self.port
        );
        let out = self
            .run(
                "pg_ctl",
                &[
                    "start", "-w", "-t", "60", "-D", &data, "-l", &log, "-o", &options,
                ],
            )
            .await?;
        if out.status.success() {
            return Ok(());
        }
        let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(8).collect();
        Err(DevError::new(format!(
            "PostgreSQL did not start on port {}:\n{}\n{}\n  (the whole log: {})",
            self.port,
            String::from_utf8_lossy(&out.stderr).trim_end(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
            self.log.display()
        )))
    }

    /// Makes `name` unless it exists.
    pub async fn ensure_database(&self, name: &str) -> Result<(), DevError> {
        let port = self.port.to_string();
        let out = self
            .run(
                "createdb",
                &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", name],
            )
            .await?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() || stderr.contains("already exists") {
            Ok(())
        } else {
            Err(DevError::new(format!(
                "cannot create the database {name}: {}",
                stderr.trim_end()
            )))
        }
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server, finishing what is in flight (`-m fast`).
    pub async fn stop(&self) {
        let data = self.data.display().to_string();
        let _ = self
            .run(
                "pg_ctl",
                &["stop", "-w", "-t", "60", "-m", "fast", "-D", &data],
            )
            .await;
    }

    /// The postmaster's pid while it runs (from `postmaster.pid`).
    pub fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}
