//! The system's PostgreSQL server binaries (`initdb`, `postgres`, `pg_ctl`,
//! `createdb`, `pg_isready`), found once and run as the right user:
//! PostgreSQL refuses to run as root, so as root it runs as `postgres`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const PROGRAMS: [&str; 5] = ["initdb", "postgres", "pg_ctl", "createdb", "pg_isready"];

/// Where the binaries are and whom they run as.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub dir: PathBuf,
    /// Set when running as root: the user PostgreSQL runs as instead.
    pub run_as: Option<SystemUser>,
}

#[derive(Debug, Clone)]
pub struct SystemUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Why the binaries cannot be used, with how to fix it.
#[derive(Debug)]
pub struct Missing(pub String);

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Missing {}

impl Binaries {
    /// `PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `PATH`.
    pub fn locate() -> Result<Binaries, Missing> {
        let dir = locate_dir().map_err(|searched| {
            Missing(format!(
                "PostgreSQL server binaries ({}) were not found (looked in: {searched}).\n  \
                 Install them with: apt-get install postgresql\n  \
                 or point PG_BIN at the folder that holds them.",
                PROGRAMS.join(", ")
            ))
        })?;
        let run_as = if running_as_root() {
            let user = system_user("postgres").ok_or_else(|| {
                Missing(
                    "running as root, PostgreSQL needs the system user \"postgres\" to run as.\n  \
                     Install the postgresql package (it creates the user): apt-get install postgresql"
                        .into(),
                )
            })?;
            Some(user)
        } else {
            None
        };
        Ok(Binaries { dir, run_as })
    }

    /// A command running `program` as the user PostgreSQL runs as.
    pub fn command(&self, program: &str) -> Command {
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", &user.name, "--"]).arg(self.dir.join(program));
                c
            }
            None => Command::new(self.dir.join(program)),
        }
    }

    /// The same, as a shell command line.
    pub fn command_line(&self, program: &str) -> String {
        let path = self.dir.join(program);
        match &self.run_as {
            Some(user) => format!("runuser -u {} -- '{}'", user.name, path.display()),
            None => format!("'{}'", path.display()),
        }
    }

    /// Creates `dir` (and its parents) and hands it to the user PostgreSQL
    /// runs as, who must be able to reach it.
    pub fn own_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        if let Some(user) = &self.run_as {
            std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid))?;
            if let Some(closed) = dir.ancestors().skip(1).find(|a| !user.can_enter(a)) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "PostgreSQL runs as the user {}, who cannot enter {}; open it with: chmod o+x {}",
                        user.name,
                        closed.display(),
                        closed.display()
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl SystemUser {
    /// Whether this user may pass through folder `dir`.
    fn can_enter(&self, dir: &Path) -> bool {
        let Ok(meta) = std::fs::metadata(dir) else {
            return false;
        };
        let mode = meta.mode();
        if meta.uid() == self.uid {
            mode & 0o100 != 0
        } else if meta.gid() == self.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        }
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A system user's ids, from /etc/passwd.
fn system_user(name: &str) -> Option<SystemUser> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() != Some(&name) || fields.len() < 4 {
            return None;
        }
        Some(SystemUser {
            name: name.to_string(),
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
        })
    })
}

fn locate_dir() -> Result<PathBuf, String> {
    let has_all = |dir: &Path| PROGRAMS.iter().all(|b| dir.join(b).is_file());
    let mut searched = Vec::new();
    if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from) {
        if has_all(&dir) {
            return Ok(dir);
        }
        searched.push(format!("$PG_BIN={}", dir.display()));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin"))))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.into_iter().rev().find(|(_, d)| has_all(d)) {
        return Ok(dir);
    }
    searched.push("/usr/lib/postgresql/*/bin".into());
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if has_all(&dir) {
            return Ok(dir);
        }
    }
    searched.push("$PATH".into());
    Err(searched.join(", "))
}
