//! A private PostgreSQL cluster per test run, started from the system's
//! binaries on a free port, with a fresh database for each test.
//!
//! The cluster lives as long as the test process: a small watchdog shell
//! stops it and removes its data when the process that started it is gone,
//! even if the test binary is killed.

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use localkit::postgres::Binaries;

use crate::free_port;

pub struct Postgres {
    pub port: u16,
    bin: Binaries,
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
        let bin = Binaries::locate().unwrap_or_else(|missing| panic!("{missing}"));
        let dir =
            std::env::temp_dir().join(format!("testkit-pg-{}-{}", std::process::id(), free_port()));
        bin.own_dir(&dir)
            .expect("create the cluster directory for PostgreSQL");
        let data = dir.join("data");
        let port = free_port();
        let mut pg = Postgres {
            port,
            bin,
            _watchdog: None,
        };

        let out = pg
            .bin
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
        let postgres = pg.bin.command_line("postgres");
        let pg_ctl = pg.bin.command_line("pg_ctl");
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
                .bin
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
        let out = Command::new(self.bin.dir.join("createdb"))
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
}
