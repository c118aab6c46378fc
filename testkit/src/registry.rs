//! A real container registry on a loopback port: Debian's
//! `docker-registry` (the CNCF distribution server) with its storage in a
//! temporary folder, stopped and removed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::free_port;
use crate::http::wait_until_ok;

pub struct LocalRegistry {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl LocalRegistry {
    pub fn start() -> LocalRegistry {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("testkit-registry-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("storage")).expect("create the registry's folder");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("storage").display()
            ),
        )
        .expect("write the registry's config");
        let log = std::fs::File::create(dir.join("log")).expect("the registry's log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start docker-registry ({e}).\nInstall it with:\n    apt-get install docker-registry"
                )
            });
        wait_until_ok(port, "/v2/", Duration::from_secs(30));
        LocalRegistry {
            url: format!("http://127.0.0.1:{port}"),
            port,
            dir,
            child,
        }
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
