//! The local database: a private PostgreSQL cluster made with the system's
//! `initdb` under `.techctl/postgres/`, started and stopped with `pg_ctl`,
//! with one database per service and one for the event bus. As on RDS,
//! each service logs in as a role of its own that owns its database and
//! reaches no other; every login needs its password (SCRAM), and the
//! superuser's is used only to set the roles up. The server listens on
//! loopback alone.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use localkit::postgres::Binaries;

use crate::DevError;
use crate::home::SUPERUSER;

/// Who may log in, and how: a password, over loopback TCP only (the
/// server has no socket file).
const HBA: &str = "# Written by techctl dev: every login needs its password.
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
";

/// The database the PostgreSQL event transport keeps its queues in.
pub const EVENTS_DATABASE: &str = "events";

pub struct Cluster {
    bin: Binaries,
    data: PathBuf,
    log: PathBuf,
    pub port: u16,
    superuser_password: String,
}

/// Everything but the superuser's password.
impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("data", &self.data)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Finds the binaries and makes the cluster on first use; a cluster
    /// left running by a run that crashed is stopped first.
    pub async fn prepare(
        folder: PathBuf,
        log: PathBuf,
        port: u16,
        superuser_password: &str,
    ) -> Result<Cluster, DevError> {
        let bin = Binaries::locate().map_err(|missing| DevError::new(missing.to_string()))?;
        if bin.run_as.is_some()
            && let Some(home) = folder.parent()
        {
            // Run by root, the server runs as another user, who must pass
            // through `.techctl/` to its own folder: traverse only, no
            // listing; every file in it is root's alone (0600).
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o711));
        }
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
            superuser_password: superuser_password.to_string(),
        };
        cluster.own_log()?;
        if !cluster.data.join("PG_VERSION").is_file() {
            // initdb reads the superuser's password from a file only the
            // server's user can read, gone once the cluster is made.
            let pwfile = folder.join("initdb.pw");
            cluster.write_private(&pwfile, superuser_password)?;
            let out = cluster
                .run(
                    "initdb",
                    &[
                        "-D",
                        &cluster.data.display().to_string(),
                        "-U",
                        SUPERUSER,
                        "--auth=scram-sha-256",
                        &format!("--pwfile={}", pwfile.display()),
                        "-E",
                        "UTF8",
                        "--locale=C",
                    ],
                )
                .await;
            let _ = std::fs::remove_file(&pwfile);
            let out = out?;
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

    /// Writes `text` to a new file only the server's user can read.
    fn write_private(&self, path: &std::path::Path, text: &str) -> Result<(), DevError> {
        let written = std::fs::File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .and_then(|()| match &self.bin.run_as {
                Some(user) => std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)),
                None => Ok(()),
            });
        written.map_err(|e| DevError::new(format!("cannot write {}: {e}", path.display())))
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
            return self.require_passwords().await;
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

    /// A cluster made before logins needed passwords (`trust`): the
    /// superuser gets its password while trust still lets it in, then
    /// every login needs one.
    async fn require_passwords(&self) -> Result<(), DevError> {
        let hba = self.data.join("pg_hba.conf");
        let current = std::fs::read_to_string(&hba).unwrap_or_default();
        if current == HBA {
            return Ok(());
        }
        let password = self.superuser_password.replace('\'', "''");
        self.sql(
            "postgres",
            &format!("ALTER ROLE {SUPERUSER} PASSWORD '{password}';"),
        )
        .await?;
        self.write_private(&hba, HBA)?;
        let data = self.data.display().to_string();
        let out = self.run("pg_ctl", &["reload", "-D", &data]).await?;
        if !out.status.success() {
            return Err(DevError::new(format!(
                "cannot make PostgreSQL reread {}: {}",
                hba.display(),
                String::from_utf8_lossy(&out.stderr).trim_end()
            )));
        }
        Ok(())
    }

    /// Runs `sql` (read from standard input, never from an argument) as the
    /// superuser in `database`.
    async fn sql(&self, database: &str, sql: &str) -> Result<String, DevError> {
        let port = self.port.to_string();
        let mut command = tokio::process::Command::from(self.bin.command("psql"));
        command
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                SUPERUSER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-tA",
                "-f",
                "-",
            ])
            .env("PGPASSWORD", &self.superuser_password);
        let out = feed(command, sql).await?;
        if !out.status.success() {
            return Err(DevError::new(format!(
                "PostgreSQL refused the set-up: {}",
                String::from_utf8_lossy(&out.stderr).trim_end()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Gives each `(role, password)` its role and database, the way the
    /// set-up task does on AWS: `binary db-init` (any service's) logged in
    /// as the superuser. A database of a run from before the roles, named
    /// after its service (`legacy` → role), is renamed first so no data
    /// is left behind.
    pub async fn set_up(
        &self,
        binary: &std::path::Path,
        roles: &[(String, String)],
        legacy: &[(String, String)],
    ) -> Result<(), DevError> {
        for (old, new) in legacy {
            let exists = |name: &str| {
                format!(
                    "SELECT count(*) FROM pg_database WHERE datname = '{}';",
                    name.replace('\'', "''")
                )
            };
            if self.sql("postgres", &exists(old)).await? == "1"
                && self.sql("postgres", &exists(new)).await? == "0"
            {
                self.sql(
                    "postgres",
                    &format!(
                        "ALTER DATABASE \"{}\" RENAME TO \"{}\";",
                        old.replace('"', "\"\""),
                        new.replace('"', "\"\"")
                    ),
                )
                .await?;
            }
        }
        let mut command = tokio::process::Command::new(binary);
        command
            .arg("db-init")
            .env_clear()
            .env(
                "DATABASE_URL",
                self.url(SUPERUSER, &self.superuser_password, "postgres"),
            )
            .env(
                "DB_INIT_ROLES",
                roles
                    .iter()
                    .map(|(r, _)| r.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        for (role, password) in roles {
            command.env(
                format!(
                    "DB_INIT_PASSWORD_{}",
                    role.to_ascii_uppercase().replace('-', "_")
                ),
                password,
            );
        }
        let out = command
            .output()
            .await
            .map_err(|e| DevError::new(format!("cannot run {} db-init: {e}", binary.display())))?;
        if !out.status.success() {
            return Err(DevError::new(format!(
                "the database set-up failed:\n{}",
                String::from_utf8_lossy(&out.stderr).trim_end()
            )));
        }
        Ok(())
    }

    /// A connection URL for `role` to `database`.
    pub fn url(&self, role: &str, password: &str, database: &str) -> String {
        format!(
            "postgres://{role}:{password}@127.0.0.1:{}/{database}",
            self.port
        )
    }

    /// Where the cluster is, for people (no credentials).
    pub fn address(&self) -> String {
        format!("postgres://127.0.0.1:{}/", self.port)
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

/// Runs `psql` with `sql` on its standard input (never as an argument,
/// where `ps` would show it), and collects what it says.
pub(crate) async fn feed(
    mut psql: tokio::process::Command,
    sql: &str,
) -> Result<std::process::Output, DevError> {
    let mut child = psql
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| DevError::new(format!("cannot run psql: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(sql.as_bytes()).await;
    }
    child
        .wait_with_output()
        .await
        .map_err(|e| DevError::new(format!("cannot run psql: {e}")))
}
