//! What serde cannot check: the arithmetic and the cross-field rules.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::connections::{self, ConnectionBudget, MIN_POOL_SIZE};
use super::names::{self, NameRule};
use super::{Blueprint, NatMode, Problem};

/// Retention periods CloudWatch Logs accepts.
const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];
const HTTP_METHODS: &[&str] = &[
    "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "*",
];
/// The largest subnet prefix a load balancer may be placed in: "verify
/// that each subnet for your load balancer has a CIDR block with at least a
/// /27 bitmask (for example, 10.0.0.0/27) and has at least 8 free IP
/// addresses" (Elastic Load Balancing, Application Load Balancers guide,
/// "Subnets for your load balancer"). A /27 keeps 27 addresses after the 5
/// AWS reserves in every subnet.
const LOAD_BALANCER_SUBNET_PREFIX: u8 = 27;

pub(super) fn check(bp: &Blueprint, text: &str) -> Vec<Problem> {
    let mut c = Checker {
        text,
        problems: Vec::new(),
    };
    c.stack(bp);
    c.network(bp);
    c.database(bp);
    c.gateway(bp);
    c.scalars(bp);
    c.kiosks(bp);
    c.deploy_on_push(bp);
    c.services(bp);
    c.events(bp);
    c.problems.sort_by_key(|p| (p.line, p.column));
    c.problems
}

struct Checker<'a> {
    text: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, span: Range<usize>, field: &str, message: String, allowed: &str) {
        self.problems.push(Problem::at(
            self.text,
            span.start,
            field.to_string(),
            message,
            (!allowed.is_empty()).then(|| allowed.to_string()),
        ));
    }

    fn in_range<T: Copy + PartialOrd + std::fmt::Display>(
        &mut self,
        value: &Spanned<T>,
        field: &str,
        range: std::ops::RangeInclusive<T>,
    ) {
        let v = *value.get_ref();
        if !range.contains(&v) {
            self.report(
                value.span(),
                field,
                format!("{v} is out of range"),
                &format!("{} to {}", range.start(), range.end()),
            );
        }
    }

    /// Reports `name` when AWS's `rule` refuses it. `field` and `span` are
    /// where the name comes from, `made_from` what the user can change.
    fn aws_name(
        &mut self,
        rule: &NameRule,
        name: &str,
        span: Range<usize>,
        field: &str,
        made_from: &str,
    ) {
        let Some(broken) = rule.broken(name) else {
            return;
        };
        let fix = match &broken {
            names::Broken::TooLong { max, .. } => {
                format!(
                    "a shorter {made_from}, so that the {} fits in {max} characters",
                    rule.what
                )
            }
            names::Broken::Begins(what) => format!("a {made_from} that does not begin with {what}"),
            names::Broken::DoubleHyphen => format!("a {made_from} without two hyphens in a row"),
            _ => format!("a {made_from} that makes a {} AWS accepts", rule.what),
        };
        self.report(
            span,
            field,
            format!(
                "the {} {name:?} {broken}, so AWS would refuse it ({}: {})",
                rule.what, rule.api, rule.rule
            ),
            &fix,
        );
    }

    fn stack(&mut self, bp: &Blueprint) {
        let name = &bp.stack.name;
        if !is_stack_name(name.get_ref()) {
            self.report(
                name.span(),
                "stack.name",
                format!("{:?} is not a valid stack name", name.get_ref()),
                "1 to 32 characters: lowercase letters, digits and '-', starting with a letter",
            );
        } else {
            // The names the stack's own resources get from it.
            let stack = name.get_ref();
            for (rule, made) in [
                (&names::LOAD_BALANCER, names::load_balancer(stack)),
                (&names::DB_INSTANCE, names::db_instance(stack)),
                (&names::DB_SUBNET_GROUP, names::db_subnet_group(stack)),
                (&names::ROLE, names::execution_role(stack)),
                (&names::ROLE, names::db_init_role(stack)),
                (&names::ROLE, names::deploy_role(stack)),
            ] {
                self.aws_name(rule, &made, name.span(), "stack.name", "stack.name");
            }
        }
        let region = &bp.stack.region;
        if !is_region(region.get_ref()) {
            self.report(
                region.span(),
                "stack.region",
                format!("{:?} is not an AWS region name", region.get_ref()),
                "a region such as \"us-east-1\" or \"sa-east-1\"",
            );
        }
    }

    fn network(&mut self, bp: &Blueprint) {
        let net = &bp.network;
        let vpc = match net.vpc_cidr.get_ref().parse::<Ipv4Net>() {
            Ok(cidr) if cidr != cidr.trunc() => {
                self.report(
                    net.vpc_cidr.span(),
                    "network.vpc_cidr",
                    format!("{cidr} has host bits set; the network is {}", cidr.trunc()),
                    "an IPv4 network in CIDR notation, prefix /16 to /28",
                );
                None
            }
            Ok(cidr) if !(16..=28).contains(&cidr.prefix_len()) => {
                self.report(
                    net.vpc_cidr.span(),
                    "network.vpc_cidr",
                    format!("/{} is not a VPC size AWS accepts", cidr.prefix_len()),
                    "an IPv4 network in CIDR notation, prefix /16 to /28",
                );
                None
            }
            Ok(cidr) => Some(cidr),
            Err(_) => {
                self.report(
                    net.vpc_cidr.span(),
                    "network.vpc_cidr",
                    format!("{:?} is not a CIDR block", net.vpc_cidr.get_ref()),
                    "an IPv4 network in CIDR notation such as \"10.0.0.0/16\", prefix /16 to /28",
                );
                None
            }
        };

        let zones = net.availability_zones.get_ref();
        if zones.len() < 2 {
            self.report(
                net.availability_zones.span(),
                "network.availability_zones",
                format!(
                    "{} availability zone{} given; the ALB and RDS need subnets in at least 2",
                    zones.len(),
                    if zones.len() == 1 { " is" } else { "s are" }
                ),
                "2 or more distinct zones of the stack's region",
            );
        }
        let mut seen_zones = HashMap::new();
        for (i, zone) in zones.iter().enumerate() {
            let field = format!("network.availability_zones[{i}]");
            if let Some(first) = seen_zones.insert(zone.get_ref().clone(), i) {
                self.report(
                    zone.span(),
                    &field,
                    format!(
                        "{:?} is listed twice (also at index {first})",
                        zone.get_ref()
                    ),
                    "distinct availability zones",
                );
            } else if !zone.get_ref().starts_with(bp.region())
                || zone.get_ref().len() <= bp.region().len()
            {
                self.report(
                    zone.span(),
                    &field,
                    format!(
                        "{:?} is not a zone of region {}",
                        zone.get_ref(),
                        bp.region()
                    ),
                    &format!("a zone name such as \"{}a\"", bp.region()),
                );
            }
        }

        if *net.nat.get_ref() == NatMode::Disabled {
            self.report(
                net.nat.span(),
                "network.nat",
                "\"none\" leaves the private subnets no way out to the internet: the services' \
                 Fargate tasks could not pull their images from ECR, write to CloudWatch Logs or \
                 read the stack secret, so every task would stop with ResourceInitializationError, \
                 and the payment service could not reach Mercado Pago"
                    .into(),
                "\"single\" (one NAT gateway for the stack) or \"per-az\" (one per availability zone, which survives the loss of a zone)",
            );
        }

        let mut subnets: Vec<(String, Ipv4Net, Range<usize>)> = Vec::new();
        for (tier, list) in [
            ("public_subnets", &net.public_subnets),
            ("private_subnets", &net.private_subnets),
        ] {
            if list.get_ref().len() != zones.len() {
                self.report(
                    list.span(),
                    &format!("network.{tier}"),
                    format!(
                        "{} subnets for {} availability zones",
                        list.get_ref().len(),
                        zones.len()
                    ),
                    "exactly one subnet per availability zone, in the same order",
                );
            }
            for (i, cidr) in list.get_ref().iter().enumerate() {
                let field = format!("network.{tier}[{i}]");
                let Ok(parsed) = cidr.get_ref().parse::<Ipv4Net>() else {
                    self.report(
                        cidr.span(),
                        &field,
                        format!("{:?} is not a CIDR block", cidr.get_ref()),
                        "an IPv4 network in CIDR notation such as \"10.0.1.0/24\"",
                    );
                    continue;
                };
                if parsed != parsed.trunc() || !(16..=28).contains(&parsed.prefix_len()) {
                    self.report(
                        cidr.span(),
                        &field,
                        format!("{parsed} is not a network address with a subnet size AWS accepts"),
                        "a network address in CIDR notation, prefix /16 to /28",
                    );
                    continue;
                }
                if let Some(vpc) = vpc.filter(|vpc| !vpc.contains(&parsed)) {
                    self.report(
                        cidr.span(),
                        &field,
                        format!("{parsed} lies outside the VPC {vpc}"),
                        "a block inside network.vpc_cidr",
                    );
                    continue;
                }
                if let Some((other, other_net, _)) = subnets
                    .iter()
                    .find(|(_, n, _)| n.contains(&parsed) || parsed.contains(n))
                {
                    let message = format!("{parsed} overlaps {other} ({other_net})");
                    self.report(
                        cidr.span(),
                        &field,
                        message,
                        "subnets that share no address",
                    );
                    continue;
                }
                if tier == "private_subnets" && parsed.prefix_len() > LOAD_BALANCER_SUBNET_PREFIX {
                    self.report(
                        cidr.span(),
                        &field,
                        format!(
                            "{parsed} is too small for the internal load balancer, which sits in the \
                             private subnets: AWS wants each of its subnets to be at least a \
                             /{LOAD_BALANCER_SUBNET_PREFIX} with 8 free addresses"
                        ),
                        &format!(
                            "a larger block: prefix /16 to /{LOAD_BALANCER_SUBNET_PREFIX}, such as \"{}/{LOAD_BALANCER_SUBNET_PREFIX}\"",
                            parsed.network()
                        ),
                    );
                }
                subnets.push((field, parsed, cidr.span()));
            }
        }
    }

    fn database(&mut self, bp: &Blueprint) {
        let db = &bp.database;
        self.connections(bp);
        let version = db.engine_version.get_ref();
        if super::engine_version::Requirement::parse(version).is_none() {
            self.report(
                db.engine_version.span(),
                "database.engine_version",
                format!(
                    "{version:?} is not a PostgreSQL major version or least minor version (RDS upgrades minor versions by itself)"
                ),
                "a major version such as \"16\", or a least minor version such as \"16.6\"",
            );
        }
        self.in_range(
            &db.allocated_storage_gb,
            "database.allocated_storage_gb",
            20..=65536,
        );
        self.in_range(
            &db.backup_retention_days,
            "database.backup_retention_days",
            1..=35,
        );
        self.in_range(&db.port, "database.port", 1150..=65535);
    }

    /// The instance class must take every task's pool at the rollout peak
    /// (see [`connections`]).
    fn connections(&mut self, bp: &Blueprint) {
        let class = &bp.database.instance_class;
        let field = "database.instance_class";
        let Some(budget) = bp.connection_budget() else {
            self.report(
                class.span(),
                field,
                format!(
                    "{:?} is not an instance class techctl knows the memory of, so it cannot tell \
                     how many database connections each task may hold",
                    class.get_ref()
                ),
                &connections::known_classes().join(", "),
            );
            return;
        };
        if budget.fits() {
            return;
        }
        let ConnectionBudget {
            instance_class,
            max_connections,
            reserved,
            peak_tasks,
        } = &budget;
        let message = format!(
            "{instance_class} takes {max_connections} connections (RDS's default \
             max_connections); with {reserved} kept for RDS and operators, {} are left for \
             {peak_tasks} tasks (every service at its max, twice over while a rollout runs the \
             new tasks beside the old): {} each, and a task needs at least {MIN_POOL_SIZE}",
            budget.for_tasks(),
            budget.share(),
        );
        let sum_of_max = peak_tasks / connections::ROLLOUT_FACTOR;
        let mut fixes = Vec::new();
        if let Some(larger) = connections::smallest_fitting_class(instance_class, *peak_tasks) {
            fixes.push(format!(
                "a larger instance_class such as {} ({} connections, {} per task)",
                larger.instance_class,
                larger.max_connections,
                larger.pool_size()
            ));
        }
        let services = bp.services().count() as u32;
        if budget.most_tasks() >= services {
            fixes.push(format!(
                "services whose max add up to at most {} (now {sum_of_max})",
                budget.most_tasks()
            ));
        }
        self.report(class.span(), field, message, &fixes.join(", or "));
    }

    fn gateway(&mut self, bp: &Blueprint) {
        let gw = &bp.gateway;
        if gw.cors_allow_origins.get_ref().is_empty() {
            self.report(
                gw.cors_allow_origins.span(),
                "gateway.cors_allow_origins",
                "no origin is allowed, so no browser can call the API".into(),
                "\"*\" or origins such as \"https://shop.example.com\"",
            );
        }
        for (i, origin) in gw.cors_allow_origins.get_ref().iter().enumerate() {
            let o = origin.get_ref();
            if o != "*" && !(o.starts_with("https://") || o.starts_with("http://")) {
                self.report(
                    origin.span(),
                    &format!("gateway.cors_allow_origins[{i}]"),
                    format!("{o:?} is not an origin"),
                    "\"*\" or a scheme and host such as \"https://shop.example.com\"",
                );
            }
        }
        for (i, method) in gw.cors_allow_methods.get_ref().iter().enumerate() {
            if !HTTP_METHODS.contains(&method.get_ref().as_str()) {
                self.report(
                    method.span(),
                    &format!("gateway.cors_allow_methods[{i}]"),
                    format!("{:?} is not an HTTP method", method.get_ref()),
                    &HTTP_METHODS.join(", "),
                );
            }
        }
        self.in_range(
            &gw.cors_max_age_seconds,
            "gateway.cors_max_age_seconds",
            0..=86400,
        );
        // API Gateway's account-wide quotas per region: 10,000 requests a
        // second and bursts of 5,000; a stage asks for at most those.
        if let Some(rate) = &gw.throttle_rate_per_second {
            self.in_range(rate, "gateway.throttle_rate_per_second", 1..=10000);
        }
        if let Some(burst) = &gw.throttle_burst {
            self.in_range(burst, "gateway.throttle_burst", 1..=5000);
        }
    }

    fn scalars(&mut self, bp: &Blueprint) {
        let retention = &bp.logs.retention_days;
        if !LOG_RETENTION_DAYS.contains(retention.get_ref()) {
            let allowed: Vec<String> = LOG_RETENTION_DAYS.iter().map(u32::to_string).collect();
            self.report(
                retention.span(),
                "logs.retention_days",
                format!(
                    "{} days is not a retention CloudWatch Logs offers",
                    retention.get_ref()
                ),
                &allowed.join(", "),
            );
        }
        self.in_range(&bp.registry.keep_images, "registry.keep_images", 1..=1000);
        self.in_range(
            &bp.messaging.max_receive_count,
            "messaging.max_receive_count",
            1..=100,
        );
        // Within 12 hours every retry still fits in SQS's 1000 receives.
        if let Some(retry_for) = &bp.messaging.retry_for_seconds {
            self.in_range(retry_for, "messaging.retry_for_seconds", 60..=43200);
        }
        self.in_range(
            &bp.messaging.visibility_timeout_seconds,
            "messaging.visibility_timeout_seconds",
            0..=43200,
        );
        if let Some(lifetime) = &bp.tokens.lifetime_seconds {
            self.in_range(lifetime, "tokens.lifetime_seconds", 60..=86400);
        }
        if let Some(refresh) = &bp.tokens.keys_refresh_seconds {
            self.in_range(refresh, "tokens.keys_refresh_seconds", 1..=3600);
        }
        if let Some(admin) = &bp.admin {
            let email = admin.email.get_ref();
            let plausible = email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.ends_with('.')
            }) && !email.chars().any(char::is_whitespace);
            if !plausible {
                self.report(
                    admin.email.span(),
                    "admin.email",
                    format!("{email:?} is not an e-mail address"),
                    "an address such as gerente@example.com",
                );
            }
        }
    }

    /// Mercado Pago's rule for a point of sale's external id: letters and
    /// digits, under 40; and no kiosk twice.
    fn kiosks(&mut self, bp: &Blueprint) {
        let mut seen = std::collections::HashSet::new();
        for pos in &bp.kiosks.points_of_sale {
            let id = pos.get_ref();
            if id.is_empty() || id.len() >= 40 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                self.report(
                    pos.span(),
                    "kiosks.points_of_sale",
                    format!("{id:?} is not a Mercado Pago point of sale's external id"),
                    "letters and digits, fewer than 40, such as TOTEM01",
                );
            } else if !seen.insert(id.clone()) {
                self.report(
                    pos.span(),
                    "kiosks.points_of_sale",
                    format!("{id:?} is listed twice"),
                    "each kiosk once",
                );
            }
        }
    }

    /// GitHub's rules for an owner (letters, digits, single hyphens, up to
    /// 39) and a repository (letters, digits, `.`, `_`, `-`, up to 100),
    /// and git's for a branch. The trust policy compares the token's
    /// subject exactly: a wildcard would only ever match itself.
    fn deploy_on_push(&mut self, bp: &Blueprint) {
        let Some(deploy) = &bp.deploy_on_push else {
            return;
        };
        let repository = deploy.repository.get_ref();
        let owner_ok = |o: &str| {
            (1..=39).contains(&o.len())
                && o.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !o.starts_with('-')
                && !o.ends_with('-')
                && !o.contains("--")
        };
        let repo_ok = |r: &str| {
            (1..=100).contains(&r.len())
                && r.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                && r != "."
                && r != ".."
        };
        let valid = repository
            .split_once('/')
            .is_some_and(|(owner, repo)| owner_ok(owner) && repo_ok(repo));
        if !valid {
            self.report(
                deploy.repository.span(),
                "deploy_on_push.repository",
                format!("{repository:?} is not a GitHub repository"),
                "OWNER/REPO, such as lanchonete/techchallenge",
            );
        }
        if let Some(branch) = &deploy.branch {
            self.report(
                branch.span(),
                "deploy_on_push.branch",
                "a branch no longer says who may deploy: a job that runs in a GitHub \
                 environment gets a token naming the environment, not the branch"
                    .into(),
                "environment = \"staging\" (the GitHub environment of the deploy job), and in \
                 GitHub limit that environment's deployment branches to the branch",
            );
        }
        match &deploy.environment {
            None if deploy.branch.is_none() => self.report(
                deploy.repository.span(),
                "deploy_on_push.environment",
                "no GitHub environment names the deploy job".into(),
                "environment = \"staging\": the GitHub environment the deploy job runs in",
            ),
            None => {}
            Some(environment) => {
                // GitHub's environment names: up to 255 characters; a colon
                // or a wildcard would make the subject ambiguous.
                let name = environment.get_ref();
                let ok = !name.is_empty()
                    && name.len() <= 255
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !ok {
                    self.report(
                        environment.span(),
                        "deploy_on_push.environment",
                        format!("{name:?} is not a GitHub environment name techctl accepts"),
                        "letters, digits, '-', '_' and '.', such as staging",
                    );
                }
            }
        }
    }

    fn services(&mut self, bp: &Blueprint) {
        if bp.services.get_ref().is_empty() {
            self.report(
                bp.services.span(),
                "services",
                "the stack has no service".into(),
                "one [services.NAME] table per service",
            );
        }
        let mut ports: HashMap<u16, String> = HashMap::new();
        let mut paths: HashMap<String, String> = HashMap::new();
        // In file order, so a duplicate is reported where it is repeated.
        let mut in_file_order: Vec<_> = bp.services.get_ref().iter().collect();
        in_file_order.sort_by_key(|(name, _)| name.span().start);
        for (name, svc) in in_file_order {
            let name_str = name.get_ref();
            let at = |field: &str| format!("services.{name_str}.{field}");
            if !is_service_name(name_str) {
                self.report(
                    name.span(),
                    &format!("services.{name_str}"),
                    format!("{name_str:?} is not a valid service name"),
                    "1 to 20 characters: lowercase letters, digits and '-', starting with a letter",
                );
            } else if is_stack_name(bp.stack_name()) {
                self.service_names(bp.stack_name(), name, svc);
            }
            let port = *svc.port.get_ref();
            if port < 1024 {
                self.report(
                    svc.port.span(),
                    &at("port"),
                    format!("{port} is a privileged port; the services run as a non-root user"),
                    "1024 to 65535",
                );
            } else if port == *bp.database.port.get_ref() {
                self.report(
                    svc.port.span(),
                    &at("port"),
                    format!("{port} is the database port"),
                    "a port no other service or the database uses",
                );
            } else if let Some(other) = ports.insert(port, name_str.clone()) {
                self.report(
                    svc.port.span(),
                    &at("port"),
                    format!("port {port} is also used by service {other:?}"),
                    "a port no other service uses",
                );
            }
            if svc.paths.get_ref().is_empty() {
                self.report(
                    svc.paths.span(),
                    &at("paths"),
                    "the service has no path prefix, so the gateway cannot reach it".into(),
                    "one or more prefixes such as \"/orders\"",
                );
            }
            for (i, path) in svc.paths.get_ref().iter().enumerate() {
                let p = path.get_ref();
                let field = at(&format!("paths[{i}]"));
                if !is_path_prefix(p) {
                    self.report(
                        path.span(),
                        &field,
                        format!("{p:?} is not a path prefix"),
                        "a path starting with '/', without a trailing '/', '*' or '?', such as \"/orders\" (or \"/\" alone, for the root only)",
                    );
                } else if let Some(other) = paths.insert(p.clone(), name_str.clone()) {
                    self.report(
                        path.span(),
                        &field,
                        format!("path {p} is also routed to service {other:?}"),
                        "a prefix no other service uses",
                    );
                }
            }
            self.fargate_size(svc, &at("cpu"), &at("memory"));
            let (desired, min, max) = (
                *svc.desired.get_ref(),
                *svc.min.get_ref(),
                *svc.max.get_ref(),
            );
            self.in_range(&svc.max, &at("max"), 1..=100);
            if min > max {
                self.report(
                    svc.min.span(),
                    &at("min"),
                    format!("min {min} is above max {max}"),
                    "min <= desired <= max",
                );
            } else if !(min..=max).contains(&desired) {
                self.report(
                    svc.desired.span(),
                    &at("desired"),
                    format!("desired {desired} is outside min {min} .. max {max}"),
                    "min <= desired <= max",
                );
            }
        }
    }

    /// The names a service's resources get from the stack's and its own.
    fn service_names(&mut self, stack: &str, name: &Spanned<String>, svc: &super::Service) {
        let service = name.get_ref();
        let mut made = vec![
            (&names::TARGET_GROUP, names::target_group(stack, service)),
            (&names::ROLE, names::task_role(stack, service)),
        ];
        if !svc.consumes.is_empty() {
            made.push((&names::QUEUE, names::queue(stack, service)));
            made.push((&names::QUEUE, names::dead_letter_queue(stack, service)));
            made.push((&names::ALARM, names::dead_letter_alarm(stack, service)));
        }
        for (rule, made) in made {
            self.aws_name(
                rule,
                &made,
                name.span(),
                &format!("services.{service}"),
                "stack.name or service name",
            );
        }
    }

    fn fargate_size(&mut self, svc: &super::Service, cpu_field: &str, memory_field: &str) {
        let (cpu, memory) = (*svc.cpu.get_ref(), *svc.memory.get_ref());
        let Some(allowed) = fargate_memory(cpu) else {
            self.report(
                svc.cpu.span(),
                cpu_field,
                format!("{cpu} CPU units is not a Fargate size"),
                "256, 512, 1024, 2048, 4096, 8192 or 16384",
            );
            return;
        };
        if !allowed.contains(&memory) {
            let list: Vec<String> = allowed.iter().map(u32::to_string).collect();
            self.report(
                svc.memory.span(),
                memory_field,
                format!("{memory} MiB does not go with {cpu} CPU units on Fargate"),
                &list.join(", "),
            );
        }
    }

    /// Each event has exactly one producer, and everything consumed is produced.
    fn events(&mut self, bp: &Blueprint) {
        let mut producers: BTreeMap<&str, &str> = BTreeMap::new();
        for (name, svc) in bp.services() {
            for (i, event) in svc.publishes.iter().enumerate() {
                let field = format!("services.{name}.publishes[{i}]");
                if !is_event_name(event.get_ref()) {
                    self.report(
                        event.span(),
                        &field,
                        format!("{:?} is not an event name", event.get_ref()),
                        "lowercase words joined by '.', such as \"order.created\"",
                    );
                } else if let Some(other) = producers.insert(event.get_ref(), name) {
                    self.report(
                        event.span(),
                        &field,
                        format!("{} is also published by service {other:?}", event.get_ref()),
                        "one producing service per event",
                    );
                }
            }
        }
        for (name, svc) in bp.services() {
            for (i, event) in svc.consumes.iter().enumerate() {
                if !producers.contains_key(event.get_ref().as_str()) {
                    let known: Vec<&str> = producers.keys().copied().collect();
                    self.report(
                        event.span(),
                        &format!("services.{name}.consumes[{i}]"),
                        format!("no service publishes {:?}", event.get_ref()),
                        &known.join(", "),
                    );
                }
            }
        }
    }
}

/// Memory sizes (MiB) Fargate accepts for a CPU size.
fn fargate_memory(cpu: u32) -> Option<Vec<u32>> {
    let gib = |from: u32, to: u32, step: u32| (from..=to).step_by(step as usize).map(|g| g * 1024);
    Some(match cpu {
        256 => vec![512, 1024, 2048],
        512 => gib(1, 4, 1).collect(),
        1024 => gib(2, 8, 1).collect(),
        2048 => gib(4, 16, 1).collect(),
        4096 => gib(8, 30, 1).collect(),
        8192 => gib(16, 60, 4).collect(),
        16384 => gib(32, 120, 8).collect(),
        _ => return None,
    })
}

fn is_stack_name(s: &str) -> bool {
    is_dns_label(s, 32)
}

fn is_service_name(s: &str) -> bool {
    is_dns_label(s, 20)
}

fn is_dns_label(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// A prefix routes itself and everything below it; `/` routes the root
/// alone (the gateway's own address), never every path.
fn is_path_prefix(p: &str) -> bool {
    if p == "/" {
        return true;
    }
    p.starts_with('/')
        && p.len() > 1
        && !p.ends_with('/')
        && !p.contains(['*', '?', ' ', '#'])
        && p.len() <= 100
}

fn is_event_name(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() >= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}
