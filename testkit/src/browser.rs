//! A real browser for the screens' tests: Debian's `chromium`, headless,
//! driven by `chromedriver` over the W3C WebDriver protocol (plain JSON
//! over HTTP, so no client library is needed).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::http::send;

/// The key W3C WebDriver names an element by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a look for an element waits for it to appear.
pub const PATIENCE: Duration = Duration::from_secs(15);

const INSTALL: &str =
    "the screens' tests drive a real browser: apt-get install chromium chromium-driver";

/// A headless Chromium session; the browser and its driver stop on drop.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

fn found(names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| {
        let path = Path::new(name);
        if path.is_absolute() {
            return path.exists().then(|| name.to_string());
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.exists())
                .map(|p| p.display().to_string())
        })
    })
}

impl Browser {
    /// Starts chromedriver and a browser with a `width`×`height` window.
    pub fn start(width: u32, height: u32) -> Browser {
        let driver_path = found(&["chromedriver", "/usr/bin/chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver not found: {INSTALL}"));
        let chromium = found(&["chromium", "/usr/bin/chromium", "chromium-browser"])
            .unwrap_or_else(|| panic!("chromium not found: {INSTALL}"));
        let port = crate::free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {driver_path}: {e}"));
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
        };
        crate::http::wait_until_ok(port, "/status", Duration::from_secs(20));
        let mut args = vec![
            "--headless=new".to_string(),
            "--disable-gpu".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--lang=pt-BR".to_string(),
            format!("--window-size={width},{height}"),
        ];
        // Chromium refuses to run as root with its sandbox; a test run as
        // root (a CI container) browses only its own loopback pages.
        if running_as_root() {
            args.push("--no-sandbox".to_string());
        }
        let created = browser.call(
            "POST",
            "/session",
            json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
                "timeouts": {"script": 60_000, "pageLoad": 30_000},
            }}}),
        );
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    /// A WebDriver command; its `value`, or a panic naming the error.
    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        self.try_call(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    fn try_call(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let body = body.to_string();
        let answer = send(
            self.port,
            method,
            path,
            &[],
            (method == "POST").then_some(body.as_str()),
        )
        .map_err(|e| e.to_string())?;
        let doc: Value = answer.json();
        if answer.status != 200 {
            return Err(format!(
                "{} {}",
                doc["value"]["error"].as_str().unwrap_or("error"),
                doc["value"]["message"].as_str().unwrap_or(&answer.body)
            ));
        }
        Ok(doc["value"].clone())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", &self.session_path("/url"), json!({ "url": url }));
    }

    /// The element `css` names, if it is on the page and shown now.
    pub fn visible(&self, css: &str) -> Option<String> {
        let element = self
            .try_call(
                "POST",
                &self.session_path("/element"),
                json!({"using": "css selector", "value": css}),
            )
            .ok()?;
        let id = element[ELEMENT].as_str()?.to_string();
        let shown = self
            .try_call(
                "GET",
                &self.session_path(&format!("/element/{id}/displayed")),
                Value::Null,
            )
            .ok()?;
        (shown == json!(true)).then_some(id)
    }

    /// Waits for `css` to be shown; panics with the page's text if not.
    pub fn find(&self, css: &str) -> String {
        self.wait(&format!("{css} to be shown"), PATIENCE, |b| b.visible(css))
    }

    /// Polls `probe` until it gives a value, or panics after `within`,
    /// naming `what` and showing what the page says.
    pub fn wait<T>(
        &self,
        what: &str,
        within: Duration,
        probe: impl Fn(&Browser) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(found) = probe(self) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "waited {within:?} for {what}; the page says:\n{}",
                self.page_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the text of `css` contains `text`, and returns it.
    pub fn wait_text(&self, css: &str, text: &str, within: Duration) -> String {
        self.wait(&format!("{css} to say {text:?}"), within, |b| {
            b.visible(css)
                .map(|_| b.text(css))
                .filter(|t| t.contains(text))
        })
    }

    /// Sends `action` (`click`, `clear`, `value`) to the element `css`
    /// names, once it is shown.
    fn on_element(&self, css: &str, action: &str, body: Value) {
        let id = self.find(css);
        self.call(
            "POST",
            &self.session_path(&format!("/element/{id}/{action}")),
            body,
        );
    }

    pub fn click(&self, css: &str) {
        self.on_element(css, "click", json!({}));
    }

    /// Presses `key` (a WebDriver key code, such as `\u{E004}` for Tab) on
    /// whatever has the focus.
    pub fn press(&self, key: &str) {
        self.call(
            "POST",
            &self.session_path("/actions"),
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key},
                {"type": "keyUp", "value": key},
            ]}]}),
        );
    }

    /// The id of the element that has the focus.
    pub fn focused(&self) -> String {
        self.script(
            "return document.activeElement ? document.activeElement.id : ''",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Types `text` into the field `css`, as keystrokes.
    pub fn type_into(&self, css: &str, text: &str) {
        self.on_element(css, "value", json!({ "text": text }));
    }

    pub fn clear(&self, css: &str) {
        self.on_element(css, "clear", json!({}));
    }

    /// The shown text of `css` (empty when it is absent).
    pub fn text(&self, css: &str) -> String {
        self.script(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';",
            json!([css]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// The page's whole shown text.
    pub fn page_text(&self) -> String {
        self.try_call(
            "POST",
            &self.session_path("/execute/sync"),
            json!({"script": "return document.body ? document.body.innerText : '';", "args": []}),
        )
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
    }

    /// Runs `script` in the page (`arguments` are `args`) and returns what
    /// it returns.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.session_path("/execute/sync"),
            json!({ "script": script, "args": args }),
        )
    }

    /// Runs `script`, whose last argument is the callback it answers with.
    pub fn script_async(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            &self.session_path("/execute/async"),
            json!({ "script": script, "args": args }),
        )
    }

    /// Cuts the page off the network (or puts it back), as a kiosk whose
    /// cable is pulled.
    pub fn offline(&self, offline: bool) {
        self.call(
            "POST",
            &self.session_path("/chromium/network_conditions"),
            json!({"network_conditions": {
                "offline": offline,
                "latency": 0,
                "download_throughput": -1,
                "upload_throughput": -1,
            }}),
        );
    }

    /// Writes a PNG of the window to `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let shot = self.call("GET", &self.session_path("/screenshot"), Value::Null);
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// Whether this process runs as root, where Chromium needs `--no-sandbox`.
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_call("DELETE", &self.session_path(""), Value::Null);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
