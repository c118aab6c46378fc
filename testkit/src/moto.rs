//! A private moto server per test, on a free loopback port.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, workspace_root};

/// A running moto server; killed when dropped.
pub struct Moto {
    pub url: String,
    pub port: u16,
    child: Child,
}

impl Moto {
    /// Starts `moto_server` and waits until it answers. Panics with the
    /// install command when it is not installed: a test never skips.
    pub fn start() -> Moto {
        let binary = locate().unwrap_or_else(|searched| {
            panic!(
                "moto_server was not found (looked in: {searched}).\n\
                 Install it into the workspace with:\n    \
                 python3 -m venv .venv && .venv/bin/pip install 'moto[server]'\n\
                 or point MOTO_SERVER at the binary."
            )
        });
        let port = free_port();
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            // moto runs no tasks: its ECS services report this many running,
            // so that a rollout can complete.
            .env("MOTO_ECS_SERVICE_RUNNING", "6")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut moto = Moto {
            url: format!("http://127.0.0.1:{port}"),
            port,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = moto.child.try_wait() {
                panic!(
                    "moto_server exited at start ({status}); run it by hand to see why: {}",
                    binary.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on port {port} within 60s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn locate() -> Result<PathBuf, String> {
    let mut searched = Vec::new();
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        searched.push(format!("$MOTO_SERVER={}", path.display()));
    }
    let venv = workspace_root().join(".venv/bin/moto_server");
    if venv.is_file() {
        return Ok(venv);
    }
    searched.push(venv.display().to_string());
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("moto_server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    searched.push("$PATH".into());
    Err(searched.join(", "))
}
