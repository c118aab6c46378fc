//! A private PostgreSQL cluster per test run, started from the system's
//! binaries on a free port, with a fresh database for each test.
//!
//! The cluster lives as long as the test process: a small watchdog shell
//! stops it and removes its data when the process that started it is gone,
//! even if the test binary is killed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::free_port;

pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    /// Set when running as root: PostgreSQL refuses root, so it runs as this user.
    run_as: Option<String>,
    /// Outlives the test process on purpose: it cleans up after it.
    _watchdog: Option<Child>,
}

static CLUSTER: OnceLock<Postgres> = OnceLock::new();
static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);

/// The shared cluster of this test process, started on first use.
pub fn postgres() -> &'static Postgres {
    CLUSTER.get_or_init(Postgres::start)
}

impl Postgres {
    fn start() -> Postgres {
        let bin = locate_binaries().unwrap_or_else(|searched| {
            panic!(
                "PostgreSQL server binaries (initdb, postgres, pg_ctl) were not found (looked in: {searched}).\n\
                 Install them with:\n    apt-get install postgresql\n\
                 or point PG_BIN at the folder that holds them."
            )
        });
        let run_as = running_as_root().then(|| "postgres".to_string());
        let dir =
            std::env::temp_dir().join(format!("testkit-pg-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        if let Some(user) = &run_as {
            let (uid, gid) = user_ids(user).unwrap_or_else(|| {
                panic!("running as root, PostgreSQL needs the system user {user:?}; install the postgresql package")
            });
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .expect("give the cluster directory to postgres");
        }
        let data = dir.join("data");
        let port = free_port();
        let mut pg = Postgres {
            port,
            bin,
            run_as,
            _watchdog: None,
        };

        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        // The watchdog: start the server, wait while the test process lives,
        // then stop the server and remove its files.
        let postgres = pg.command_line("postgres");
        let pg_ctl = pg.command_line("pg_ctl");
        let script = format!(
            "{postgres} -D '{data}' -p {port} -k '{dir}' -c listen_addresses=127.0.0.1 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 >'{dir}/log' 2>&1 &\n\
             while kill -0 {parent} 2>/dev/null; do sleep 0.5; done\n\
             {pg_ctl} stop -D '{data}' -m immediate >/dev/null 2>&1\n\
             rm -rf '{dir}'\n",
            data = data.display(),
            dir = dir.display(),
            parent = std::process::id(),
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the PostgreSQL watchdog");
        pg._watchdog = Some(watchdog);

        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = pg
                .command("pg_isready")
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
                panic!("PostgreSQL did not start on port {port} within 60s:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    /// A new, empty database; returns its connection URL.
    pub fn fresh_database(&self, prefix: &str) -> String {
        let name = format!(
            "{}_{}_{}",
            prefix.replace(|c: char| !c.is_ascii_alphanumeric(), "_"),
            std::process::id(),
            NEXT_DATABASE.fetch_add(1, Ordering::SeqCst)
        );
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                &name,
            ])
            .output()
            .expect("run createdb");
        assert!(
            out.status.success(),
            "createdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(&name)
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    fn command(&self, program: &str) -> Command {
        match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(self.bin.join(program));
                c
            }
            None => Command::new(self.bin.join(program)),
        }
    }

    fn command_line(&self, program: &str) -> String {
        let path = self.bin.join(program);
        match &self.run_as {
            Some(user) => format!("runuser -u {user} -- '{}'", path.display()),
            None => format!("'{}'", path.display()),
        }
    }
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of a system user, from /etc/passwd.
fn user_ids(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&user) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// `PG_BIN`, else the newest /usr/lib/postgresql/*/bin, else PATH.
fn locate_binaries() -> Result<PathBuf, String> {
    let has_all = |dir: &Path| {
        ["initdb", "postgres", "pg_ctl", "createdb", "pg_isready"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
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
