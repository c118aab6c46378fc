//! `techctl dev`: the whole system on this machine, from the same
//! blueprint as in AWS.
//!
//! | AWS                          | here                                        |
//! |------------------------------|---------------------------------------------|
//! | RDS PostgreSQL               | a private cluster under `.techctl/postgres` |
//! | ECS services                 | supervised release builds of the services   |
//! | API Gateway + internal ALB   | [`gateway`] on one port                     |
//! | SNS topics + SQS queues      | the PostgreSQL transport (`events` database)|
//! | the stack secret's JWT keys  | `.techctl/keys.json`                        |
//! | Mercado Pago                 | the sandbox of `localkit`                   |

pub mod cluster;
pub mod console;
pub mod dead_letters;
pub mod gateway;
pub mod home;
pub mod http;
pub mod pay;
pub mod seed;
pub mod supervisor;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use localkit::mercadopago::Sandbox;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cluster::{Cluster, EVENTS_DATABASE};
use crate::console::Console;
pub use crate::console::Terminal;
use crate::gateway::{Cors, Gateway, Routes};
use crate::home::{Credentials, Home, ServiceState, State};
use crate::supervisor::{Program, Statuses, Supervisor};
use blueprint::Blueprint;
use image::build;

/// How long the services have, once started, to answer `/health/ready`.
const READY_WITHIN: Duration = Duration::from_secs(120);
/// The sandbox's point of sale and collector, as a Mercado Pago account has.
const COLLECTOR_ID: &str = localkit::mercadopago::USER_ID;
/// Where orders that name no kiosk are paid (the kiosks are the blueprint's).
const POS_ID: &str = "CAIXA01";

#[derive(Debug, Clone)]
pub struct Options {
    /// Where `.techctl/` is.
    pub dir: PathBuf,
    pub gateway_port: u16,
    /// Every port in one block from here, when set.
    pub base_port: Option<u16>,
    /// The workspace holding the services' source.
    pub source: Option<PathBuf>,
    /// Build the services first (else use what is built).
    pub build: bool,
    /// The cargo profile they are built in.
    pub profile: build::Profile,
}

/// The local ports of everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    pub gateway: u16,
    pub sandbox: u16,
    pub postgres: u16,
    pub services: BTreeMap<String, u16>,
}

impl Ports {
    /// The blueprint's service ports and the defaults; or, from
    /// `base_port`, the gateway, the sandbox, PostgreSQL and then the
    /// services in blueprint order.
    pub fn assign(blueprint: &Blueprint, options: &Options) -> Result<Ports, DevError> {
        let services: Vec<(&str, u16)> = blueprint
            .services()
            .map(|(name, s)| (name, *s.port.get_ref()))
            .collect();
        let ports = match options.base_port {
            None => Ports {
                gateway: options.gateway_port,
                sandbox: 8090,
                postgres: 5439,
                services: services
                    .iter()
                    .map(|(name, port)| (name.to_string(), *port))
                    .collect(),
            },
            Some(base) => {
                let at = |offset: usize| -> Result<u16, DevError> {
                    u16::try_from(usize::from(base) + offset).map_err(|_| {
                        DevError::new(format!(
                            "--base-port {base} leaves no room for {} ports below 65536",
                            services.len() + 3
                        ))
                    })
                };
                Ports {
                    gateway: at(0)?,
                    sandbox: at(1)?,
                    postgres: at(2)?,
                    services: services
                        .iter()
                        .enumerate()
                        .map(|(i, (name, _))| Ok((name.to_string(), at(3 + i)?)))
                        .collect::<Result<_, DevError>>()?,
                }
            }
        };
        Ok(ports)
    }

    fn labelled(&self) -> Vec<(String, u16)> {
        let mut all = vec![
            ("the gateway".to_string(), self.gateway),
            ("the Mercado Pago sandbox".to_string(), self.sandbox),
            ("PostgreSQL".to_string(), self.postgres),
        ];
        all.extend(
            self.services
                .iter()
                .map(|(name, port)| (format!("the {name} service"), *port)),
        );
        all
    }

    /// Every port distinct and free, or an error naming the one that is not.
    pub fn check_free(&self) -> Result<(), DevError> {
        let mut seen: BTreeMap<u16, String> = BTreeMap::new();
        for (label, port) in self.labelled() {
            if let Some(other) = seen.insert(port, label.clone()) {
                return Err(DevError::new(format!(
                    "{label} and {other} would both use port {port}\n  choose another --gateway-port, or move every port with --base-port"
                )));
            }
            if let Err(e) = std::net::TcpListener::bind(("0.0.0.0", port)) {
                return Err(DevError::new(format!(
                    "port {port}, for {label}, is taken ({e})\n  stop what uses it, or move every port with --base-port (say --base-port 18000)"
                )));
            }
        }
        Ok(())
    }
}

/// Why the system could not run here: always the user's to fix (a port
/// taken, a binary missing, the folder in use), said with the fix.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DevError {
    message: String,
}

impl DevError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl From<build::BuildError> for DevError {
    fn from(e: build::BuildError) -> Self {
        DevError::new(e.0)
    }
}

/// Runs the system until Ctrl-C (or SIGTERM), then stops it all.
pub async fn run(
    blueprint: &Blueprint,
    options: Options,
    terminal: Arc<dyn Terminal>,
) -> Result<(), DevError> {
    let started = Instant::now();
    let stop = StopSignal::listen();
    let home = Home::open(&options.dir)?;
    let _lock = home.lock()?;
    stop_leftovers(&home).await;
    let ports = Ports::assign(blueprint, &options)?;
    ports.check_free()?;
    let credentials = home.credentials()?;
    home.ensure_keys()?;
    let services: Vec<String> = blueprint.services().map(|(n, _)| n.to_string()).collect();
    let width = services
        .iter()
        .map(String::len)
        .chain(["postgres".len(), "sandbox".len()])
        .max()
        .unwrap_or(8);
    let console = Console::new(home.logs(), width, terminal);

    let source = match &options.source {
        Some(dir) => dir.clone(),
        None => build::find_source(&options.dir).ok_or_else(|| {
            DevError::new(format!(
                "techctl dev builds the services from their source, and {} is not inside the repository\n  run it from the repository, or pass --source DIR",
                options.dir.display()
            ))
        })?,
    };
    if options.build {
        console.say(&format!(
            "Building the services ({}; only what changed)…",
            options.profile.name()
        ));
    }
    let build_log = console.sink("build");
    let built = build::binaries(
        &source,
        &services,
        options.build,
        &options.profile,
        &|line| build_log.line(line),
    )
    .await;
    if stop.requested() {
        console.say("Stopped before the system started.");
        return Ok(());
    }
    let binaries = built?;

    let roles: Vec<String> = binaries
        .keys()
        .map(|s| blueprint::names::service_database(s))
        .chain([EVENTS_DATABASE.to_string()])
        .collect();
    let passwords = home.database_passwords(&roles)?;
    let cluster = Cluster::prepare(
        home.postgres(),
        home.logs().join("postgres.log"),
        ports.postgres,
        &passwords[home::SUPERUSER],
    )
    .await?;
    cluster.start().await?;
    let system = System {
        blueprint,
        home: &home,
        console: &console,
        cluster: &cluster,
        ports: &ports,
        credentials: &credentials,
        binaries,
        passwords,
    };
    let outcome = system.run(started, stop).await;
    console.say("Stopping PostgreSQL…");
    cluster.stop().await;
    home.clear_state();
    outcome
}

/// Services a run that crashed left behind (recorded in its state file).
async fn stop_leftovers(home: &Home) {
    let Some(state) = home.state() else {
        return;
    };
    let leftovers: Vec<u32> = state
        .services
        .iter()
        .filter_map(|(name, s)| {
            s.pid
                .filter(|pid| runs_binary(*pid, &build::package_of(name)))
        })
        .collect();
    for pid in &leftovers {
        supervisor::signal(*pid, rustix::process::Signal::TERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while leftovers.iter().any(|pid| supervisor::alive(*pid)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for pid in leftovers {
        supervisor::signal(pid, rustix::process::Signal::KILL);
    }
    home.clear_state();
}

/// Whether process `pid` runs a binary called `name` (so a recycled pid
/// is never signalled).
fn runs_binary(pid: u32, name: &str) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|exe| exe.file_name().map(|f| f.to_string_lossy().into_owned()))
        .is_some_and(|file| file == name)
}

/// The parts of a run, once PostgreSQL is up.
struct System<'a> {
    blueprint: &'a Blueprint,
    home: &'a Home,
    console: &'a Console,
    cluster: &'a Cluster,
    ports: &'a Ports,
    credentials: &'a Credentials,
    binaries: BTreeMap<String, PathBuf>,
    /// Each database role's password (the superuser's among them).
    passwords: BTreeMap<String, String>,
}

impl System<'_> {
    fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.gateway)
    }

    fn service_url(&self, service: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports.services[service])
    }

    async fn run(&self, started: Instant, mut stop: StopSignal) -> Result<(), DevError> {
        self.set_up_databases().await?;
        let sandbox_listener = listen(self.ports.sandbox, "the Mercado Pago sandbox").await?;
        let gateway_listener = listen(self.ports.gateway, "the gateway").await?;
        let sandbox_sink = self.console.sink("sandbox");
        let sandbox = Sandbox::serve(
            sandbox_listener,
            &self.credentials.mercadopago_access_token,
            &self.credentials.mercadopago_webhook_secret,
            Some(Arc::new(move |line: &str| sandbox_sink.line(line))),
        );
        // As the application's webhook is set in Mercado Pago's panel.
        sandbox.notify_to(&format!("{}/webhooks/mercadopago", self.gateway_url()));
        for kiosk in self.blueprint.kiosks.points_of_sale() {
            sandbox.add_point_of_sale(&kiosk);
        }

        let state = Arc::new(Mutex::new(State {
            pid: std::process::id(),
            gateway_url: self.gateway_url(),
            sandbox_url: sandbox.url.clone(),
            postgres_port: self.ports.postgres,
            services: self
                .binaries
                .keys()
                .map(|name| {
                    let service = ServiceState {
                        url: self.service_url(name),
                        ..ServiceState::default()
                    };
                    (name.clone(), service)
                })
                .collect(),
        }));
        let publish = {
            let state = state.clone();
            let home = self.home.clone();
            Arc::new(move |statuses: &Statuses| {
                let mut state = state.lock().unwrap_or_else(|p| p.into_inner());
                let statuses = statuses.lock().unwrap_or_else(|p| p.into_inner());
                for (name, status) in statuses.iter() {
                    if let Some(service) = state.services.get_mut(name) {
                        service.pid = status.pid;
                        service.restarts = status.restarts;
                    }
                }
                let _ = home.write_state(&state);
            })
        };
        let programs = self
            .binaries
            .iter()
            .map(|(name, binary)| {
                let program = Program {
                    name: name.clone(),
                    binary: binary.clone(),
                    env: self.environment(name, &sandbox.url),
                };
                (program, self.console.sink(name))
            })
            .collect();
        let supervisor = Supervisor::start(programs, publish);

        let (stop_gateway, gateway_stopped) = watch::channel(false);
        let gateway = Arc::new(Gateway::new(
            Routes::new(self.blueprint, |name| self.ports.services[name]),
            Cors::new(self.blueprint),
            self.console.sink("gateway"),
        ));
        let gateway_task = tokio::spawn(gateway.serve(gateway_listener, gateway_stopped));

        let outcome = tokio::select! {
            ready = self.get_ready(started) => match ready {
                Ok(()) => {
                    stop.wait().await;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            _ = stop.wait() => Ok(()),
        };
        self.console.say("\nStopping the gateway and the services…");
        let _ = stop_gateway.send(true);
        let _ = gateway_task.await;
        supervisor.stop().await;
        drop(sandbox);
        outcome
    }

    /// Waits for every service, seeds the catalog and says what is where.
    async fn get_ready(&self, started: Instant) -> Result<(), DevError> {
        let http = http::Local::new();
        let deadline = Instant::now() + READY_WITHIN;
        for name in self.binaries.keys() {
            seed::wait_ready(&http, name, &self.service_url(name), deadline).await?;
        }
        let gateway = self.gateway_url();
        let token = seed::employee_token(&http, &gateway, self.credentials).await?;
        let added = seed::seed_menu(&http, &gateway, &token).await?;
        self.console.say(&self.banner(started.elapsed(), added));
        Ok(())
    }

    /// One role and database per service, and the event bus's, as on AWS.
    async fn set_up_databases(&self) -> Result<(), DevError> {
        let Some(binary) = self.binaries.values().next() else {
            return Ok(());
        };
        let roles: Vec<(String, String)> = self
            .binaries
            .keys()
            .map(|s| blueprint::names::service_database(s))
            .chain([EVENTS_DATABASE.to_string()])
            .map(|role| {
                let password = self.passwords.get(&role).cloned().unwrap_or_default();
                (role, password)
            })
            .collect();
        // Runs before the roles named their databases after the service.
        let legacy: Vec<(String, String)> = self
            .binaries
            .keys()
            .map(|s| (s.clone(), blueprint::names::service_database(s)))
            .collect();
        self.cluster.set_up(binary, &roles, &legacy).await
    }

    /// `role`'s connection URL to its own database.
    fn database_url(&self, role: &str) -> String {
        let password = self.passwords.get(role).map_or("", String::as_str);
        self.cluster.url(role, password, role)
    }

    /// What `service` is told through its environment.
    fn environment(&self, service: &str, sandbox_url: &str) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("PORT".into(), self.ports.services[service].to_string()),
            // Reached through the gateway only, never from the network.
            ("BIND_ADDRESS".into(), "127.0.0.1".into()),
            (
                "DATABASE_URL".into(),
                self.database_url(&blueprint::names::service_database(service)),
            ),
            (
                "KEYS_FILE".into(),
                self.home.keys_file().display().to_string(),
            ),
            // The terminal shows the logs behind a prefix; no colour codes.
            ("NO_COLOR".into(), "1".into()),
        ];
        env.extend(self.blueprint.token_environment(service));
        let talks = self
            .blueprint
            .services()
            .find(|(name, _)| *name == service)
            .is_some_and(|(_, s)| !s.publishes.is_empty() || !s.consumes.is_empty());
        if talks {
            let messaging = &self.blueprint.messaging;
            env.extend([
                ("EVENT_TRANSPORT".into(), "postgres".into()),
                (
                    "EVENTS_DATABASE_URL".into(),
                    self.database_url(EVENTS_DATABASE),
                ),
                // Every retry is a receive, as on SQS.
                (
                    "EVENTS_MAX_RECEIVE".into(),
                    messaging.redrive_max_receive_count().to_string(),
                ),
                (
                    "EVENTS_RETRY_FOR_SECONDS".into(),
                    messaging.retry_for_seconds().to_string(),
                ),
                (
                    "EVENTS_VISIBILITY_SECONDS".into(),
                    messaging.visibility_timeout_seconds.get_ref().to_string(),
                ),
            ]);
        }
        if service != "user" && self.ports.services.contains_key("user") {
            // The user service's revocation list, straight from it.
            env.push(("USER_SERVICE_URL".into(), self.service_url("user")));
        }
        let credentials = self.credentials;
        match service {
            "user" => env.extend([
                ("PUBLIC_URL".into(), self.gateway_url()),
                // The gateway names the client; one developer's machine is
                // every client here, so the per-client limit is loose.
                ("TRUSTED_PROXIES".into(), "127.0.0.1/32".into()),
                ("AUTH_RATE_PER_MINUTE".into(), "600".into()),
                ("AUTH_RATE_BURST".into(), "120".into()),
                ("ADMIN_EMAIL".into(), credentials.employee_email.clone()),
                (
                    "ADMIN_PASSWORD".into(),
                    credentials.employee_password.clone(),
                ),
            ]),
            "order" => {
                if self.ports.services.contains_key("product") {
                    env.push(("PRODUCT_SERVICE_URL".into(), self.service_url("product")));
                }
                env.push((
                    "POINTS_OF_SALE".into(),
                    self.blueprint.kiosks.points_of_sale().join(","),
                ));
            }
            "payment" => env.extend([
                ("MERCADOPAGO_BASE_URL".into(), sandbox_url.to_string()),
                (
                    "MERCADOPAGO_ACCESS_TOKEN".into(),
                    credentials.mercadopago_access_token.clone(),
                ),
                (
                    "MERCADOPAGO_WEBHOOK_SECRET".into(),
                    credentials.mercadopago_webhook_secret.clone(),
                ),
                ("MERCADOPAGO_COLLECTOR_ID".into(), COLLECTOR_ID.into()),
                ("MERCADOPAGO_POS_ID".into(), POS_ID.into()),
            ]),
            _ => {}
        }
        // What operators set with `techctl secrets set --local` replaces
        // the sandbox's stand-ins.
        for (variable, value) in self.home.operator_values(service) {
            env.retain(|(name, _)| *name != variable);
            env.push((variable, value));
        }
        env
    }

    fn banner(&self, took: Duration, added: usize) -> String {
        let gateway = self.gateway_url();
        let logs = self.home.logs();
        let mut text = format!(
            "\ntechctl dev is up in {:.1}s: the ordering system on this machine.\n\n  \
             gateway    {gateway}   (the APIs, and the screens below)\n  \
             sandbox    http://127.0.0.1:{}   Mercado Pago: GET /sandbox/orders\n  \
             postgres   {}<database>   (one per service, each its own role's, and {EVENTS_DATABASE}; passwords in .techctl/postgres-roles.json)\n  \
             logs       {}\n",
            took.as_secs_f64(),
            self.ports.sandbox,
            self.cluster.address(),
            logs.display(),
        );
        if added > 0 {
            text.push_str(&format!(
                "  catalog    {added} products added to the empty menu\n"
            ));
        }
        text.push_str(&screens(&gateway, &self.blueprint.kiosks.points_of_sale()));
        text.push_str("\n  API docs\n");
        for name in self.binaries.keys() {
            text.push_str(&format!("    {name:<12}{}/docs\n", self.service_url(name)));
        }
        text.push_str(&format!(
            "\n  employee   {} / {}\n             POST {gateway}/auth/employee/token with them for a staff token\n",
            self.credentials.employee_email, self.credentials.employee_password
        ));
        text.push_str("\nNext, in another terminal here:\n");
        for (command, what) in [
            (format!("curl {gateway}/products"), "the menu"),
            (
                "bash examples/order-flow.sh".to_string(),
                "an order from token to counter, step by step",
            ),
            (
                format!("{} pay ORDER_ID --approve", invoked_as()),
                "pay an order's QR code (or --reject)",
            ),
        ] {
            text.push_str(&format!("  {command:<44} {what}\n"));
        }
        text.push_str(&format!(
            "\nCtrl-C stops everything; the data stays in {}.\n",
            self.home.root.display()
        ));
        text
    }
}

/// The screens people use, as the gateway serves them: a kiosk for each
/// point of sale (the first at the gateway's own address too).
pub fn screens(gateway: &str, points_of_sale: &[String]) -> String {
    let mut text = String::from("\n  Screens\n");
    match points_of_sale {
        [] => text.push_str(&format!("    kiosk       {gateway}/screens/kiosk\n")),
        kiosks => {
            for pos in kiosks {
                text.push_str(&format!(
                    "    kiosk       {gateway}/screens/kiosk?pos={pos}\n"
                ));
            }
        }
    }
    for (name, page, what) in [
        ("kitchen", "kitchen", "employee login"),
        ("pickup", "pickup", "the board customers watch"),
        ("admin", "admin", "the menu; employee login"),
    ] {
        text.push_str(&format!(
            "    {name:<12}{gateway}/screens/{page}   ({what})\n"
        ));
    }
    text
}

/// How the person started `techctl dev`, to show commands they can type
/// (`scripts/dev.sh` says so through `TECHCTL_DEV_COMMAND`).
fn invoked_as() -> String {
    std::env::var("TECHCTL_DEV_COMMAND").unwrap_or_else(|_| "techctl dev".into())
}

async fn listen(port: u16, what: &str) -> Result<TcpListener, DevError> {
    TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
        DevError::new(format!(
            "cannot listen on port {port} for {what}: {e}\n  move every port with --base-port"
        ))
    })
}

/// Ctrl-C on the terminal, SIGTERM, a closed terminal (SIGHUP) or SIGQUIT,
/// listened for from the very start so that an early one still stops the
/// run in order. The services and PostgreSQL run in process groups of
/// their own, out of the terminal's reach: without this, a terminal closed
/// on `techctl dev` would leave them all running.
struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    fn listen() -> StopSignal {
        use tokio::signal::unix::{SignalKind, signal};
        let (tx, rx) = watch::channel(false);
        let streams = (|| {
            Ok::<_, std::io::Error>((
                signal(SignalKind::interrupt())?,
                signal(SignalKind::terminate())?,
                signal(SignalKind::hangup())?,
                signal(SignalKind::quit())?,
            ))
        })();
        tokio::spawn(async move {
            let Ok((mut interrupt, mut terminate, mut hangup, mut quit)) = streams else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
                _ = hangup.recv() => {}
                _ = quit.recv() => {}
            }
            let _ = tx.send(true);
        });
        StopSignal(rx)
    }

    fn requested(&self) -> bool {
        *self.0.borrow()
    }

    async fn wait(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// The working directory, for `.techctl/`.
pub fn working_dir() -> Result<PathBuf, DevError> {
    std::env::current_dir()
        .map_err(|e| DevError::new(format!("cannot read the working directory: {e}")))
}

/// Whether `dir` has a running `techctl dev`; its state when so.
pub fn running_in(dir: &Path) -> Result<State, DevError> {
    let home = Home::open(dir)?;
    match home.lock() {
        Ok(_free) => Err(DevError::new(format!(
            "techctl dev is not running in {}\n  start it there with `techctl dev` (or run this command in the folder where it runs)",
            dir.display()
        ))),
        Err(_) => home.state().ok_or_else(|| {
            DevError::new("techctl dev is still starting here; try again in a moment")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blueprint() -> Blueprint {
        blueprint::parse(
            Path::new("techchallenge.toml"),
            include_str!("../../../blueprints/techchallenge.toml"),
        )
        .unwrap()
    }

    fn options(gateway_port: u16, base_port: Option<u16>) -> Options {
        Options {
            dir: PathBuf::from("."),
            gateway_port,
            base_port,
            source: None,
            build: false,
            profile: build::Profile::release(),
        }
    }

    #[test]
    fn ports_come_from_the_blueprint_or_from_one_block() {
        let ports = Ports::assign(&blueprint(), &options(8080, None)).unwrap();
        assert_eq!(ports.gateway, 8080);
        assert_eq!(ports.services["user"], 4001);
        assert_eq!(ports.services["production"], 4005);

        let block = Ports::assign(&blueprint(), &options(8080, Some(18000))).unwrap();
        assert_eq!(
            (block.gateway, block.sandbox, block.postgres),
            (18000, 18001, 18002)
        );
        let mut services: Vec<u16> = block.services.values().copied().collect();
        services.sort_unstable();
        assert_eq!(services, [18003, 18004, 18005, 18006, 18007]);

        let message = Ports::assign(&blueprint(), &options(8080, Some(65533)))
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("--base-port 65533 leaves no room"),
            "{message}"
        );
    }

    #[test]
    fn a_port_used_twice_or_taken_is_named() {
        let clash = Ports::assign(&blueprint(), &options(4003, None)).unwrap();
        let message = clash.check_free().unwrap_err().to_string();
        assert!(
            message.contains("the order service and the gateway would both use port 4003"),
            "{message}"
        );

        let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let ports = Ports::assign(&blueprint(), &options(port, Some(40000))).unwrap();
        let ports = Ports {
            gateway: port,
            ..ports
        };
        let message = ports.check_free().unwrap_err().to_string();
        assert!(
            message.contains(&format!("port {port}, for the gateway, is taken")),
            "{message}"
        );
        assert!(message.contains("--base-port"), "{message}");
    }
}
