//! `techctl dev` end to end: the real binary started as a user starts it,
//! on free ports in a fresh folder, builds and runs the whole system; an
//! order goes through the gateway from token to FINISHED while one service
//! is killed mid-flow; Ctrl-C then stops everything and leaves no process
//! behind, and a second start finds the data where it was.
//!
//! Needs PostgreSQL's server binaries (`apt-get install postgresql`),
//! cargo, curl and jq (for `examples/order-flow.sh`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use testkit::http::{Answer, send};

/// The services' build may be cold on a fresh machine (it reuses the
/// dependencies of the tests' debug build: see `techctl`).
pub(crate) const START_WITHIN: Duration = Duration::from_secs(25 * 60);
const PORTS: u16 = 8;

pub(crate) fn repository() -> PathBuf {
    testkit::workspace_root()
}

/// The first port of a block of [`PORTS`] free ones, below the kernel's
/// ephemeral range: a port there, freed when the test kills a service, can
/// be handed to another process's outgoing connection (a database pool's,
/// held for long) before the service is restarted on it.
pub(crate) fn free_block() -> u16 {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    for _ in 0..200 {
        let base = fastrand::u16(20_000..ephemeral_start.max(20_000 + 2 * PORTS) - PORTS);
        let free =
            (base..base + PORTS).all(|port| std::net::TcpListener::bind(("0.0.0.0", port)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no block of {PORTS} free ports");
}

pub(crate) struct Dev {
    child: Child,
    dir: PathBuf,
    base: u16,
    output: Arc<Mutex<String>>,
}

impl Dev {
    pub(crate) fn start(dir: &Path, base: u16, extra: &[&str]) -> Dev {
        let mut child = techctl(dir)
            .args(["dev", "--base-port", &base.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start techctl dev");
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut all = output.lock().unwrap();
                    all.push_str(&line);
                    all.push('\n');
                }
            });
        }
        Dev {
            child,
            dir: dir.to_path_buf(),
            base,
            output,
        }
    }

    pub(crate) fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Polls `probe` until it answers, failing with techctl's output when
    /// `within` passes (or techctl exits, unless `exit_expected`).
    fn poll<T>(
        &mut self,
        what: &str,
        within: Duration,
        exit_expected: bool,
        mut probe: impl FnMut(&mut Dev) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(found) = probe(self) {
                return found;
            }
            if !exit_expected && let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "techctl dev exited ({status}) before {what}:\n{}",
                    self.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not within {within:?}:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn wait_output(&mut self, needle: &str, within: Duration) {
        self.poll(&format!("the line {needle:?}"), within, false, |dev| {
            dev.output().contains(needle).then_some(())
        });
    }

    fn state(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.join(".techctl/dev.json"))
            .expect("techctl dev's state file");
        serde_json::from_str(&text).expect("the state file is JSON")
    }

    fn pid_of(&self, service: &str) -> Option<u32> {
        self.state()["services"][service]["pid"]
            .as_u64()
            .map(|p| p as u32)
    }

    /// Ctrl-C, as on the terminal; answers once techctl has exited.
    fn interrupt(&mut self) -> std::process::ExitStatus {
        self.stop_with("INT")
    }

    /// Sends `signal` (`INT`, `HUP`, …); answers once techctl has exited.
    fn stop_with(&mut self, name: &str) -> std::process::ExitStatus {
        signal(name, self.child.id());
        self.poll(
            &format!("a stop after SIG{name}"),
            Duration::from_secs(90),
            true,
            |dev| dev.child.try_wait().unwrap(),
        )
    }

    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = bearer
            .iter()
            .map(|b| ("authorization", b.as_str()))
            .collect();
        let body = body.map(|b| b.to_string());
        send(self.base, method, path, &headers, body.as_deref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    pub(crate) fn ok(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let answer = self.call(method, path, token, body);
        assert!(
            (200..300).contains(&answer.status),
            "{method} {path}: {} {}",
            answer.status,
            answer.body
        );
        answer.json()
    }

    /// Polls the order until `done` holds.
    fn wait_order(
        &mut self,
        id: &str,
        token: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let path = format!("/orders/{id}");
        self.poll(
            &format!("order {id} {what}"),
            Duration::from_secs(60),
            false,
            |dev| Some(dev.ok("GET", &path, Some(token), None)).filter(|o| done(o)),
        )
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal("INT", self.child.id());
            std::thread::sleep(Duration::from_secs(15));
            let _ = self.child.kill();
        }
    }
}

/// `techctl dev pay ORDER_ID VERDICT` (`--approve`, `--reject`): what it
/// said, once it succeeded.
pub(crate) fn pay(dir: &Path, order_id: &str, verdict: &str) -> String {
    let paid = techctl(dir)
        .args(["dev", "pay", order_id, verdict])
        .output()
        .unwrap();
    assert!(
        paid.status.success(),
        "techctl dev pay {verdict}: {}",
        String::from_utf8_lossy(&paid.stderr)
    );
    String::from_utf8_lossy(&paid.stdout).into_owned()
}

pub(crate) fn techctl(dir: &Path) -> Command {
    let repo = repository();
    let mut command = Command::new(env!("CARGO_BIN_EXE_techctl"));
    // The debug profile shares the dependencies the tests were built with;
    // a release build would compile every one of them again.
    command
        .current_dir(dir)
        .env("TECHCTL_CARGO_PROFILE", "dev")
        .env_remove("TECHCTL_ENV")
        .arg("--blueprint")
        .arg(repo.join("blueprints/techchallenge.toml"));
    command
}

fn signal(name: &str, pid: u32) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

fn alive(pid: u32) -> bool {
    // A zombie has exited; only its parent's bookkeeping is left.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

/// The PostgreSQL processes of the cluster: the postmaster and its children.
fn postgres_processes(dir: &Path) -> Vec<u32> {
    let Some(postmaster) =
        std::fs::read_to_string(dir.join(".techctl/postgres/data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<u32>().ok())
    else {
        return Vec::new();
    };
    let mut pids = vec![postmaster];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let parent = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()?
                    .split_whitespace()
                    .nth(1)?
                    .parse::<u32>()
                    .ok()
            });
        if parent == Some(postmaster) {
            pids.push(pid);
        }
    }
    pids
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// `sql` run by psql in the local cluster, logged in as `(role, password)`.
fn psql_as(dev: &Dev, (role, password): (&str, &str), database: &str, sql: &str) -> Output {
    let psql = localkit::postgres::Binaries::locate()
        .unwrap()
        .dir
        .join("psql");
    Command::new(psql)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &dev.state()["postgres_port"].to_string(),
        ])
        .args([
            "-U",
            role,
            "-d",
            database,
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", password)
        .output()
        .unwrap()
}

/// The addresses listening on TCP `port` on this machine.
fn listening_on(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (fields.get(1), fields.get(3)) else {
                continue;
            };
            let Some((address, hex_port)) = local.rsplit_once(':') else {
                continue;
            };
            // 0A: LISTEN.
            if *state == "0A" && u16::from_str_radix(hex_port, 16) == Ok(port) {
                found.push(address.to_string());
            }
        }
    }
    found
}

#[test]
fn the_whole_system_runs_locally_survives_a_crash_and_stops_cleanly() {
    let folder = tempfile::tempdir().unwrap();
    let dir = folder.path();
    // As root, PostgreSQL runs as its own user, who must reach the folder.
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let base = free_block();
    let started = Instant::now();
    let mut dev = Dev::start(dir, base, &["--source", repository().to_str().unwrap()]);

    // The first answered request, then the whole system ready and seeded.
    dev.poll("a first answer", START_WITHIN, false, |_| {
        send(base, "GET", "/categories", &[], None)
            .is_ok_and(|a| a.status == 200)
            .then_some(())
    });
    let first_answer = started.elapsed();
    dev.wait_output("techctl dev is up", Duration::from_secs(120));
    let output = dev.output();
    for expected in [
        format!("gateway    http://127.0.0.1:{base}"),
        format!("http://127.0.0.1:{}/docs", base + 3),
        "employee   gerente@lanchonete.dev / ".into(),
        "products added to the empty menu".into(),
        "techctl dev pay ORDER_ID --approve".into(),
    ] {
        assert!(output.contains(&expected), "no {expected:?} in:\n{output}");
    }

    // As on RDS: every login needs its password, the services' own roles
    // own their databases, and what holds the passwords is the user's alone.
    let home = dir.join(".techctl");
    let hba = std::fs::read_to_string(home.join("postgres/data/pg_hba.conf")).unwrap();
    assert!(!hba.contains("trust"), "{hba}");
    assert!(hba.contains("scram-sha-256"), "{hba}");
    let roles: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("postgres-roles.json")).unwrap())
            .unwrap();
    for role in ["postgres", "user_service", "order_service", "events"] {
        assert!(
            roles[role].as_str().is_some_and(|p| p.len() >= 32),
            "{role}"
        );
    }
    let mode = |path: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    };
    for file in ["postgres-roles.json", "local.json", "keys.json"] {
        assert_eq!(mode(&home.join(file)), 0o600, "{file}");
    }
    // Others may at most pass through (as PostgreSQL's own user must when
    // root runs it), never list or read.
    assert_eq!(mode(&home) & 0o066, 0, "{:o}", mode(&home));
    // The services listen on loopback alone (127.0.0.1: 0100007F).
    for service in ["user", "product", "order", "payment", "production"] {
        let url = dev.state()["services"][service]["url"]
            .as_str()
            .unwrap()
            .to_string();
        let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
        let addresses = listening_on(port);
        assert!(
            !addresses.is_empty() && addresses.iter().all(|a| a == "0100007F"),
            "{service} listens on {addresses:?}"
        );
    }
    // Every service logs in as its own role; the master role serves none.
    let postgres = ("postgres", roles["postgres"].as_str().unwrap());
    let logins = psql_as(
        &dev,
        postgres,
        "postgres",
        "SELECT DISTINCT usename || ' ' || coalesce(datname, '-') FROM pg_stat_activity \
         WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() ORDER BY 1",
    );
    let logins = String::from_utf8_lossy(&logins.stdout).to_string();
    let logins: Vec<&str> = logins.lines().collect();
    assert!(
        logins.contains(&"order_service order_service"),
        "{logins:?}"
    );
    assert!(
        logins.iter().all(|l| !l.starts_with("postgres ")),
        "{logins:?}"
    );
    // Operators' values for techctl dev: set from standard input, listed
    // by name alone, kept by the user alone, unset.
    let secrets = |args: &[&str], input: &str| {
        let mut command = techctl(dir);
        command.args(["secrets"]).args(args).arg("--local");
        let out = crate::common::output_with_input(command, input);
        let text = crate::common::said(&out);
        assert!(out.status.success(), "secrets {args:?}: {text}");
        text
    };
    let token = format!("local-token-{}", std::process::id());
    secrets(
        &["set", "payment", "mercadopago_access_token"],
        &format!("{token}\n"),
    );
    let listed = secrets(&["list", "payment"], "");
    assert!(listed.contains("mercadopago_access_token"), "{listed}");
    assert!(!listed.contains(&token), "{listed}");
    for file in ["secrets.json", "secrets.json.lock"] {
        assert_eq!(mode(&home.join(file)), 0o600, "{file}");
    }
    secrets(&["unset", "payment", "mercadopago_access_token"], "");
    assert!(
        !std::fs::read_to_string(home.join("secrets.json"))
            .unwrap()
            .contains(&token)
    );

    // A second techctl dev in the same folder says so and changes nothing.
    let second = techctl(dir)
        .args([
            "dev",
            "--base-port",
            &free_block().to_string(),
            "--no-build",
        ])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(said.contains("techctl dev is already running in"), "{said}");
    assert!(
        said.contains(&format!("gateway http://127.0.0.1:{base}")),
        "{said}"
    );

    // The gateway: the blueprint's routes, CORS, request ids, clear 404s.
    let categories = dev.ok("GET", "/categories", None, None);
    let names: Vec<&str> = categories
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Lanche", "Acompanhamento", "Bebida", "Sobremesa"]);
    let preflight = send(
        base,
        "OPTIONS",
        "/orders",
        &[
            ("origin", "http://totem.local"),
            ("access-control-request-method", "POST"),
        ],
        None,
    )
    .unwrap();
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(
        preflight
            .header("access-control-allow-headers")
            .unwrap()
            .contains("idempotency-key")
    );
    let traced = send(
        base,
        "GET",
        "/products",
        &[("x-request-id", "trace-e2e-1")],
        None,
    )
    .unwrap();
    assert_eq!(traced.header("x-request-id"), Some("trace-e2e-1"));
    let untraced = send(base, "GET", "/products", &[], None).unwrap();
    assert_eq!(untraced.header("x-request-id").map(str::len), Some(36));
    let unknown = send(base, "GET", "/menu", &[], None).unwrap();
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.body.contains("no service serves /menu"),
        "{}",
        unknown.body
    );

    // A customer orders through the gateway.
    dev.ok(
        "POST",
        "/users",
        None,
        Some(json!({"name": "Joana Souza", "cpf": "52998224725", "email": "joana@example.com"})),
    );
    let customer = dev.ok(
        "POST",
        "/auth/token",
        None,
        Some(json!({"cpf": "52998224725"})),
    )["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let menu = dev.ok("GET", "/products?category=Lanche", None, None);
    let burger = menu["items"][0]["id"].as_str().unwrap().to_string();
    let placed = dev.ok(
        "POST",
        "/orders",
        Some(&customer),
        Some(json!({"items": [{"product_id": burger, "quantity": 2}]})),
    );
    let order_id = placed["id"].as_str().unwrap().to_string();
    dev.wait_order(&order_id, &customer, "showed its QR code", |o| {
        o["payment"]["qr_data"].is_string()
    });

    // The kitchen's service crashes while the order is being paid.
    let victim = dev.pid_of("production").expect("production runs");
    signal("KILL", victim);
    let said = pay(dir, &order_id, "--approve");
    assert!(said.contains("approved"), "{said}");
    assert!(
        said.contains("took Mercado Pago's signed webhook (200)"),
        "{said}"
    );
    dev.wait_order(&order_id, &customer, "was paid", |o| {
        o["status"] == "RECEIVED"
    });

    // The supervisor starts it again, and the paid order reaches the kitchen.
    dev.wait_output(
        "production was killed by signal 9; restarting in",
        Duration::from_secs(30),
    );
    let restarted = dev.poll("production back", Duration::from_secs(60), false, |dev| {
        let state = dev.state();
        let service = &state["services"]["production"];
        let pid = service["pid"].as_u64().map(|p| p as u32)?;
        (pid != victim && alive(pid)).then(|| {
            assert!(service["restarts"].as_u64().unwrap() >= 1, "{state:#}");
            pid
        })
    });
    assert!(!alive(victim));
    let credentials: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".techctl/local.json")).unwrap())
            .unwrap();
    let staff = dev.ok(
        "POST",
        "/auth/employee/token",
        None,
        Some(json!({
            "email": credentials["employee_email"],
            "password": credentials["employee_password"],
        })),
    )["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let ticket = dev.poll(
        "a ticket in the kitchen",
        Duration::from_secs(60),
        false,
        |dev| {
            let tickets = dev.call("GET", "/production", Some(&staff), None);
            let all = tickets.json();
            let ticket = all
                .as_array()?
                .iter()
                .find(|t| t["order_id"] == order_id.as_str())?;
            Some(ticket["id"].as_str()?.to_string())
        },
    );
    for (step, status) in [
        ("started", "IN_PREPARATION"),
        ("completed", "READY"),
        ("delivered", "FINISHED"),
    ] {
        dev.ok(
            "PUT",
            &format!("/production/{ticket}/{step}"),
            Some(&staff),
            None,
        );
        dev.wait_order(&order_id, &customer, status, |o| o["status"] == status);
    }
    let finished = dev.ok("GET", &format!("/orders/{order_id}"), Some(&customer), None);
    let history: Vec<&str> = finished["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        [
            "AWAITING_PAYMENT",
            "RECEIVED",
            "IN_PREPARATION",
            "READY",
            "FINISHED"
        ]
    );

    // The example script runs the same flow with curl, as written.
    let example = Command::new("bash")
        .arg(repository().join("examples/order-flow.sh"))
        .current_dir(dir)
        .output()
        .unwrap();
    let example_output = String::from_utf8_lossy(&example.stdout);
    assert!(
        example.status.success(),
        "order-flow.sh failed:\n{example_output}\n{}",
        String::from_utf8_lossy(&example.stderr)
    );
    assert!(example_output.contains("went from AWAITING_PAYMENT to FINISHED"));

    // Events set aside while something was down, one of them delivered
    // twice: `techctl events --local` lists them and sends them back, and
    // the kitchen makes one ticket of the two.
    let events = |args: &[&str]| {
        let out = techctl(dir)
            .args(["events"])
            .args(args)
            .arg("--local")
            .output()
            .unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "techctl events {args:?}: {said}");
        said
    };
    assert!(events(&["list"]).contains("No dead letters"));

    // Its logs, from .techctl/logs/, filtered: the default while techctl
    // dev runs here, no --local needed.
    let logs = techctl(dir)
        .args([
            "logs",
            "production",
            "--since",
            "1h",
            "--filter",
            "listening",
        ])
        .output()
        .unwrap();
    let said_logs = String::from_utf8_lossy(&logs.stdout);
    assert!(logs.status.success(), "{said_logs}");
    assert!(
        String::from_utf8_lossy(&logs.stderr).contains("techctl dev runs in this folder"),
        "{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    assert!(
        said_logs.contains("production service listening"),
        "{said_logs}"
    );
    assert!(
        said_logs.lines().all(|l| l.contains("listening")),
        "{said_logs}"
    );
    let paid = json!({
        "meta": {
            "event_id": "0193a0b0-0000-7000-8000-00000000beef",
            "event_name": "order.paid", "event_version": 1,
            "occurred_at": "2026-11-30T10:00:00Z", "source": "order",
            "correlation_id": "0193a0b0-0000-7000-8000-0000000000ff"
        },
        "payload": {
            "order_id": "0193a0b0-0000-7000-8000-0000000000ff", "number": 990001,
            "customer_name": "Order #990001",
            "items": [{"name": "X-Burger", "quantity": 1, "note": null}]
        }
    })
    .to_string();
    let inserted = psql_as(
        &dev,
        ("events", roles["events"].as_str().unwrap()),
        "events",
        &format!(
            "INSERT INTO bus_dead_letters (id, queue, body, reason, receive_count, sent_at) VALUES \
             (900000001, 'production', $e${paid}$e$, 'a database outage', 70, now()), \
             (900000002, 'production', $e${paid}$e$, 'a database outage', 70, now())"
        ),
    );
    assert!(
        inserted.status.success(),
        "{}",
        String::from_utf8_lossy(&inserted.stderr)
    );
    let listed = events(&["list", "production"]);
    assert!(
        listed.contains("2 dead letters") && listed.contains("a database outage"),
        "{listed}"
    );
    assert!(events(&["redrive", "production", "--all"]).contains("Sent 2 dead letters back"));
    let tickets_of = |dev: &Dev, number: i64| {
        dev.ok("GET", "/production", Some(&staff), None)
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["order_number"] == number)
            .count()
    };
    dev.poll(
        "the redriven order's ticket",
        Duration::from_secs(20),
        false,
        |dev| (tickets_of(dev, 990001) == 1).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        tickets_of(&dev, 990001),
        1,
        "one ticket for an event sent twice"
    );
    assert!(events(&["list"]).contains("No dead letters"));

    // What the whole running system holds in memory.
    let mut processes = vec![dev.child.id()];
    processes.extend(
        ["user", "product", "order", "payment", "production"]
            .iter()
            .filter_map(|s| dev.pid_of(s)),
    );
    let database = postgres_processes(dir);
    assert!(!database.is_empty(), "PostgreSQL runs");
    processes.extend(&database);
    let rss: u64 = processes.iter().map(|pid| rss_kib(*pid)).sum();
    eprintln!(
        "techctl dev: first answered request after {:.1}s; resident memory of the running system {:.1} MiB over {} processes",
        first_answer.as_secs_f64(),
        rss as f64 / 1024.0,
        processes.len()
    );

    // Ctrl-C: everything stops, nothing is left behind.
    let status = dev.interrupt();
    assert!(status.success(), "{status}\n{}", dev.output());
    let output = dev.output();
    assert!(output.contains("Stopping PostgreSQL"), "{output}");
    for pid in processes.iter().skip(1).chain([&restarted]) {
        assert!(
            !alive(*pid),
            "process {pid} ({}) outlived techctl dev",
            std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .replace('\0', " ")
        );
    }
    for port in base..base + PORTS {
        assert!(
            std::net::TcpListener::bind(("0.0.0.0", port)).is_ok(),
            "port {port} is still taken"
        );
    }
    assert!(!dir.join(".techctl/dev.json").exists());

    // Started again, the system finds its data: the order, the menu.
    let mut again = Dev::start(
        dir,
        base,
        &["--source", repository().to_str().unwrap(), "--no-build"],
    );
    again.wait_output("techctl dev is up", Duration::from_secs(120));
    assert!(
        !again.output().contains("products added"),
        "{}",
        again.output()
    );
    let kept = again.ok("GET", &format!("/orders/{order_id}"), Some(&customer), None);
    assert_eq!(kept["status"], "FINISHED");
    // Its terminal closed (SIGHUP), it stops as on Ctrl-C: the services
    // and PostgreSQL run in process groups of their own, which no hang-up
    // reaches, so techctl stops them itself.
    let mut running = postgres_processes(dir);
    assert!(!running.is_empty());
    running.extend(
        ["user", "product", "order", "payment", "production"]
            .iter()
            .filter_map(|s| again.pid_of(s)),
    );
    let status = again.stop_with("HUP");
    assert!(status.success(), "{status}\n{}", again.output());
    assert!(again.output().contains("Stopping PostgreSQL"));
    for pid in running {
        assert!(!alive(pid), "process {pid} outlived a closed terminal");
    }

    // At the head of a pipeline whose end goes away first: `head` leaves
    // after five lines, `tee` dies with Ctrl-C before techctl has said
    // its last; its output errors never skip the clean-up.
    piped_into(dir, base, "head -5", None);
    let log = dir.join("dev.log");
    piped_into(dir, base, &format!("tee {}", log.display()), Some(&log));
}

/// Runs `techctl dev | TAIL` from a shell in a process group of its own, as
/// a terminal runs a pipeline, waits until the system answers (and, with
/// `log`, until techctl has written there that it is up), sends Ctrl-C to
/// the whole group and checks that nothing is left behind.
fn piped_into(dir: &Path, base: u16, tail: &str, log: Option<&Path>) {
    use std::os::unix::process::CommandExt;
    let repo = repository();
    let mut shell = Command::new("bash")
        .arg("-c")
        .arg(format!("\"$@\" | {tail}"))
        .arg("pipeline")
        .arg(env!("CARGO_BIN_EXE_techctl"))
        .arg("--blueprint")
        .arg(repo.join("blueprints/techchallenge.toml"))
        .args(["dev", "--base-port", &base.to_string(), "--no-build"])
        .arg("--source")
        .arg(&repo)
        .current_dir(dir)
        .env("TECHCTL_CARGO_PROFILE", "dev")
        .env_remove("TECHCTL_ENV")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start the pipeline");
    let state = dir.join(".techctl/dev.json");
    let services = ["user", "product", "order", "payment", "production"];
    let deadline = Instant::now() + Duration::from_secs(120);
    let pids: Vec<u32> = loop {
        let pids: Vec<u32> = std::fs::read_to_string(&state)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .map(|doc| {
                services
                    .iter()
                    .filter_map(|s| doc["services"][s]["pid"].as_u64().map(|p| p as u32))
                    .collect()
            })
            .unwrap_or_default();
        let answering = send(base, "GET", "/categories", &[], None).is_ok_and(|a| a.status == 200);
        let logged = log.is_none_or(|log| {
            std::fs::read_to_string(log).is_ok_and(|text| text.contains("techctl dev is up"))
        });
        if pids.len() == services.len() && answering && logged {
            break pids;
        }
        assert!(
            shell.try_wait().unwrap().is_none(),
            "`techctl dev | {tail}` ended before the system was up"
        );
        assert!(
            Instant::now() < deadline,
            "`techctl dev | {tail}` never came up"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut running = postgres_processes(dir);
    assert!(!running.is_empty());
    running.extend(pids);
    // `head` is long gone by now: it left after the first five lines.
    std::thread::sleep(Duration::from_secs(1));
    let group = format!("-{}", shell.id());
    let sent = Command::new("kill")
        .args(["-INT", "--", &group])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -INT -- {group}");
    let deadline = Instant::now() + Duration::from_secs(90);
    while shell.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "`techctl dev | {tail}` did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // techctl itself may still be stopping after the shell has gone.
    let deadline = Instant::now() + Duration::from_secs(90);
    while running.iter().any(|pid| alive(*pid)) || state.exists() {
        assert!(
            Instant::now() < deadline,
            "after Ctrl-C, `techctl dev | {tail}` left {:?} running (state file kept: {})",
            running.iter().filter(|p| alive(**p)).collect::<Vec<_>>(),
            state.exists()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for port in base..base + PORTS {
        assert!(
            std::net::TcpListener::bind(("0.0.0.0", port)).is_ok(),
            "port {port} is still taken after `techctl dev | {tail}`"
        );
    }
}

#[test]
fn pay_without_a_running_system_says_how_to_start_one() {
    let folder = tempfile::tempdir().unwrap();
    let out = techctl(folder.path())
        .args(["dev", "pay", "0193-order", "--reject"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("techctl dev is not running in"), "{said}");
    assert!(said.contains("start it there with `techctl dev`"), "{said}");

    let out = techctl(folder.path())
        .args(["dev", "pay", "0193-order"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("--approve"), "{said}");
    assert!(said.contains("--reject"), "{said}");
}
