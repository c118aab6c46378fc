//! The flows the system needs, and the ones it must not have, checked on
//! a snapshot.

use std::collections::BTreeSet;

use super::iam::{self, Decision};
use super::network::{self, HTTPS, Side, pair};
use super::snapshot::{Listener, ListenerRule, Peer, Service, Snapshot};
use super::{Flow, Report, Trace};

/// The route the API sends every request through.
const PROXY_ROUTE: &str = engine::plan::expand::API_ROUTE_KEY;
/// The order service calls `http://<ALB DNS name>` (`PRODUCT_SERVICE_URL`),
/// so on the listener's plain HTTP port.
const HTTP_PORT: u16 = 80;
/// What the order service asks the product service when it prices an
/// order: the ALB must send it to the product service.
pub const ORDER_TO_PRODUCT_PATH: &str = "/products/lookup";
/// What every service but the user service reads there (service-kit's
/// `REVOCATIONS_PATH`, spelled the same).
pub const REVOCATIONS_PATH: &str = "/auth/revocations";
/// Who runs the tasks, and so must be trusted by their roles.
const ECS_TASKS: &str = "ecs-tasks.amazonaws.com";
/// What the SQS transport of `service-kit` calls on its own queue and
/// dead-letter queue (`ack`, `retry_later`, `receive`, `dead_letter`).
const QUEUE_ACTIONS: [&str; 3] = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
];
/// Dead-lettering writes; an erasure's scrub reads, rewrites and deletes.
const DEAD_LETTER_ACTIONS: [&str; 4] = [
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
];
/// What a role must not be able to do on another service's topic or
/// queues: a sample that covers reading, writing and tampering.
const FOREIGN_TOPIC_ACTIONS: [&str; 4] = [
    "sns:Publish",
    "sns:Subscribe",
    "sns:SetTopicAttributes",
    "sns:DeleteTopic",
];
const FOREIGN_QUEUE_ACTIONS: [&str; 7] = [
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:PurgeQueue",
    "sqs:SetQueueAttributes",
    "sqs:DeleteQueue",
];

/// Every flow, needed ones first.
pub fn evaluate(snapshot: &Snapshot) -> Report {
    let s = snapshot;
    let mut flows = Vec::new();
    if s.services.is_empty() {
        let mut t = Trace::default();
        t.block("the stack outputs name no service: run `techctl up`");
        flows.push(t.needed("the stack's services"));
    }
    let front = front_door(s);
    for service in &s.services {
        flows.push(client(s, &front, service));
    }
    for service in &s.services {
        flows.push(database(s, service));
    }
    flows.push(order_to_product(s));
    // Every other service rereads the user service's revocation list.
    if s.service("user").is_some() {
        for service in s.services.iter().filter(|x| x.name != "user") {
            flows.push(through_alb(s, &service.name, "user", REVOCATIONS_PATH));
        }
    }
    for service in &s.services {
        flows.push(image_pull(s, service));
        flows.push(logs(s, service));
        flows.push(secret(s, service));
        flows.push(trust(s, service));
        if service.topic_arn.is_some() {
            flows.push(publish(s, service));
        }
        if service.queue_arn.is_some() || service.dead_letter_queue_arn.is_some() {
            flows.push(consume(s, service));
        }
    }
    flows.push(payment_to_internet(s));

    flows.push(no_internet_ingress(s));
    flows.push(database_only_from_services(s));
    flows.push(internet_egress_only_https(s));
    flows.push(no_wildcard_statements(s));
    flows.push(roles_only_for_tasks(s));
    flows.push(roles_bounded(s));
    flows.push(no_foreign_messaging(s));
    flows.push(secrets_only_where_needed(s));
    flows.extend(super::deploy_role::flows(s));

    Report {
        stack: s.stack.clone(),
        region: s.region.clone(),
        services: s
            .services
            .iter()
            .map(|svc| (svc.name.clone(), svc.source))
            .collect(),
        flows,
    }
}

/// The API, its route and integration, the VPC link and the listener it
/// reaches: the part every client request shares.
struct Front<'a> {
    trace: Trace,
    listener: Option<&'a Listener>,
}

fn front_door(s: &Snapshot) -> Front<'_> {
    let mut t = Trace::default();
    let done = |trace: Trace| Front {
        trace,
        listener: None,
    };
    let Some(api) = &s.api else {
        t.block("the stack has no HTTP API");
        return done(t);
    };
    let Some(route) = api.routes.iter().find(|r| r.key == PROXY_ROUTE) else {
        t.block(format!("API {} has no route {PROXY_ROUTE}", api.id));
        return done(t);
    };
    let target = route
        .target
        .as_deref()
        .and_then(|t| t.strip_prefix("integrations/"));
    let Some(integration) = api
        .integrations
        .iter()
        .find(|i| Some(i.id.as_str()) == target)
    else {
        t.block(format!(
            "API {} route {PROXY_ROUTE} has no integration (target {})",
            api.id,
            route.target.as_deref().unwrap_or("none")
        ));
        return done(t);
    };
    t.allow(format!(
        "API {} route {PROXY_ROUTE} → integration {}",
        api.id, integration.id
    ));
    if !integration
        .integration_type
        .eq_ignore_ascii_case("HTTP_PROXY")
        || !integration.connection_type.eq_ignore_ascii_case("VPC_LINK")
    {
        t.block(format!(
            "integration {} is {} over {}, not HTTP_PROXY over VPC_LINK",
            integration.id, integration.integration_type, integration.connection_type
        ));
        return done(t);
    }
    let link_id = integration.connection_id.as_deref().unwrap_or("none");
    let Some(link) = s.vpc_links.iter().find(|l| l.id == link_id) else {
        t.block(format!(
            "integration {} uses VPC link {link_id}, which does not exist",
            integration.id
        ));
        return done(t);
    };
    if !link.status.eq_ignore_ascii_case("AVAILABLE") {
        t.block(format!("VPC link {} is {}", link.id, link.status));
    }
    let Some(lb) = &s.load_balancer else {
        t.block("the stack has no load balancer");
        return done(t);
    };
    let uri = integration.uri.as_deref().unwrap_or("none");
    let Some(listener) = lb.listeners.iter().find(|l| l.arn == uri) else {
        t.block(format!(
            "integration {} sends to {uri}, which is no listener of the ALB {}",
            integration.id, lb.name
        ));
        return done(t);
    };
    t.allow(format!(
        "integration {} HTTP_PROXY over VPC link {} → ALB {} listener :{}",
        integration.id, link.id, lb.name, listener.port
    ));
    let link_side = Side::new(s, "vpc-link", &link.security_groups, &link.subnets);
    let alb_side = Side::new(s, "alb", &lb.security_groups, &lb.subnets);
    pair(s, &link_side, &alb_side, listener.port, &mut t);
    Front {
        trace: t,
        listener: Some(listener),
    }
}

/// ALB path patterns: `*` and `?` over the whole path, case-sensitive.
fn path_matches(pattern: &str, path: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = path.chars().collect();
    iam::glob(&p, &t, &|_| true)
}

/// The rule the listener applies to a request for `path`: the first by
/// priority whose conditions it meets, else the default.
fn rule_for<'a>(listener: &'a Listener, path: &str) -> Option<&'a ListenerRule> {
    let mut rules: Vec<&ListenerRule> = listener.rules.iter().collect();
    rules.sort_by_key(|r| r.priority.unwrap_or(u32::MAX));
    rules.into_iter().find(|r| match r.priority {
        None => true,
        Some(_) => r.other_conditions == 0 && r.path_patterns.iter().any(|p| path_matches(p, path)),
    })
}

/// A request path a rule is written for: a pattern without wildcards, or
/// the first one with its wildcards filled in.
fn sample_path(rule: &ListenerRule) -> Option<String> {
    rule.path_patterns
        .iter()
        .find(|p| !p.contains(['*', '?']))
        .cloned()
        .or_else(|| {
            rule.path_patterns
                .first()
                .map(|p| p.replace(['*', '?'], "x"))
        })
}

fn rule_label(rule: &ListenerRule) -> String {
    match rule.priority {
        Some(p) => format!("rule {p}"),
        None => "the default rule".to_string(),
    }
}

fn target_group_name(s: &Snapshot, arn: &str) -> String {
    s.target_groups
        .iter()
        .find(|g| g.arn == arn)
        .map(|g| g.name.clone())
        .unwrap_or_else(|| arn.to_string())
}

/// That `path` on the listener reaches the service's target group.
fn routes_to(s: &Snapshot, listener: &Listener, path: &str, service: &Service, t: &mut Trace) {
    let Some(tg_arn) = &service.target_group_arn else {
        t.block(format!("the {} service has no target group", service.name));
        return;
    };
    let tg_name = target_group_name(s, tg_arn);
    match rule_for(listener, path) {
        Some(rule) if rule.forward_to.contains(tg_arn) => t.allow(format!(
            "listener :{} {} [{}] → target group {tg_name}",
            listener.port,
            rule_label(rule),
            rule.path_patterns.join(", ")
        )),
        Some(rule) => t.block(format!(
            "listener :{} sends {path} by {} to {} instead of target group {tg_name}",
            listener.port,
            rule_label(rule),
            if rule.forward_to.is_empty() {
                "a fixed response".to_string()
            } else {
                rule.forward_to
                    .iter()
                    .map(|a| target_group_name(s, a))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )),
        None => t.block(format!(
            "listener :{} has no rule for {path}",
            listener.port
        )),
    }
}

/// The target group exists in the VPC; the ALB and the service's tasks
/// let the service's port through.
fn alb_to_service(s: &Snapshot, service: &Service, t: &mut Trace) {
    if let Some(arn) = &service.target_group_arn {
        match s.target_groups.iter().find(|g| &g.arn == arn) {
            Some(tg) => {
                if s.vpc_id.as_ref().is_some_and(|v| v != &tg.vpc_id) {
                    t.block(format!(
                        "target group {} is in {}, not in the stack's VPC",
                        tg.name, tg.vpc_id
                    ));
                }
            }
            None => t.block(format!("target group {arn} does not exist")),
        }
    }
    let Some(lb) = &s.load_balancer else {
        t.block("the stack has no load balancer");
        return;
    };
    let alb = Side::new(s, "alb", &lb.security_groups, &lb.subnets);
    let tasks = Side::new(s, &service.name, &service.security_groups, &service.subnets);
    pair(s, &alb, &tasks, service.port, t);
}

fn client(s: &Snapshot, front: &Front<'_>, service: &Service) -> Flow {
    let mut t = front.trace.clone();
    let port = front.listener.map_or(HTTP_PORT, |l| l.port);
    let name = format!(
        "client → API {PROXY_ROUTE} → VPC link → ALB :{port} → {} :{}",
        service.name, service.port
    );
    if let (Some(listener), Some(tg)) = (front.listener, &service.target_group_arn) {
        let rules: Vec<&ListenerRule> = listener
            .rules
            .iter()
            .filter(|r| r.priority.is_some() && r.forward_to.contains(tg))
            .collect();
        if rules.is_empty() {
            t.block(format!(
                "no rule of listener :{} forwards to target group {}",
                listener.port,
                target_group_name(s, tg)
            ));
        }
        for rule in rules {
            match sample_path(rule) {
                Some(path) => routes_to(s, listener, &path, service, &mut t),
                None => t.block(format!("{} has no path pattern", rule_label(rule))),
            }
        }
    } else if service.target_group_arn.is_none() {
        t.block(format!("the {} service has no target group", service.name));
    }
    alb_to_service(s, service, &mut t);
    t.needed(name)
}

fn database(s: &Snapshot, service: &Service) -> Flow {
    let mut t = Trace::default();
    let Some(db) = &s.database else {
        t.block("the stack has no database instance");
        return t.needed(format!("{} → database", service.name));
    };
    let from = Side::new(s, &service.name, &service.security_groups, &service.subnets);
    let to = Side::new(s, "database", &db.security_groups, &db.subnets);
    pair(s, &from, &to, db.port, &mut t);
    t.needed(format!("{} → database :{}", service.name, db.port))
}

fn order_to_product(s: &Snapshot) -> Flow {
    through_alb(s, "order", "product", ORDER_TO_PRODUCT_PATH)
}

/// One service calling another through the internal ALB on `path`: both
/// sides of the security-group pair, the listener rule that sends `path`
/// to the callee, and the ALB's way to the callee's tasks.
fn through_alb(s: &Snapshot, caller: &str, callee: &str, path: &str) -> Flow {
    let name = format!("{caller} → ALB :{HTTP_PORT} → {callee} ({path})");
    let mut t = Trace::default();
    let (Some(from_service), Some(to_service)) = (s.service(caller), s.service(callee)) else {
        t.block(format!(
            "the stack outputs name no {caller} or no {callee} service"
        ));
        return t.needed(name);
    };
    let Some(lb) = &s.load_balancer else {
        t.block("the stack has no load balancer");
        return t.needed(name);
    };
    let from = Side::new(
        s,
        caller,
        &from_service.security_groups,
        &from_service.subnets,
    );
    let alb = Side::new(s, "alb", &lb.security_groups, &lb.subnets);
    pair(s, &from, &alb, HTTP_PORT, &mut t);
    match lb.listeners.iter().find(|l| l.port == HTTP_PORT) {
        Some(listener) => routes_to(s, listener, path, to_service, &mut t),
        None => t.block(format!("the ALB has no listener on port {HTTP_PORT}")),
    }
    alb_to_service(s, to_service, &mut t);
    t.needed(name)
}

/// That a role of the service may do each action on a resource.
fn may(
    s: &Snapshot,
    t: &mut Trace,
    which: &str,
    role_arn: Option<&str>,
    actions: &[&str],
    resource: &str,
    label: &str,
) {
    let Some(arn) = role_arn else {
        t.block(format!("no {which}"));
        return;
    };
    let Some(role) = s.role_by_arn(arn) else {
        t.block(format!("{which} {arn} does not exist"));
        return;
    };
    for action in actions {
        match iam::decide(role, action, resource) {
            Decision::Allowed(by) => t.allow(format!("{} allows {action} on {label}", by[0])),
            Decision::Denied(by) => t.block(format!("{by} denies {action} on {label}")),
            Decision::NotAllowed => t.block(format!(
                "{which} {} has no statement allowing {action} on {label}",
                role.name
            )),
            Decision::OutsideBoundary(boundary) => t.block(format!(
                "{which} {}'s boundary ({boundary}) does not allow {action} on {label}",
                role.name
            )),
        }
    }
}

/// The short name of an ARN, for results: what follows the resource type.
fn short(arn: &str) -> &str {
    let tail = arn.splitn(6, ':').nth(5).unwrap_or(arn);
    tail.split_once('/').map_or(tail, |(_, rest)| rest)
}

fn image_pull(s: &Snapshot, service: &Service) -> Flow {
    let mut t = Trace::default();
    let role = service.execution_role_arn.as_deref();
    may(
        s,
        &mut t,
        "execution role",
        role,
        &["ecr:GetAuthorizationToken"],
        "*",
        "*",
    );
    match &service.repository_arn {
        Some(repo) => may(
            s,
            &mut t,
            "execution role",
            role,
            &["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
            repo,
            &format!("repository {}", short(repo)),
        ),
        None => t.block(format!(
            "the {} service has no image repository",
            service.name
        )),
    }
    for api in ["ecr.api", "ecr.dkr", "s3"] {
        network::aws_api(s, service, api, &mut t);
    }
    t.needed(format!(
        "{} task → ECR (ecr.api, ecr.dkr, S3 layers)",
        service.name
    ))
}

fn logs(s: &Snapshot, service: &Service) -> Flow {
    let mut t = Trace::default();
    match &service.log_group_arn {
        Some(arn) => {
            let group = arn.trim_end_matches(":*");
            // What the awslogs driver writes to: a stream of the group.
            let stream = format!("{group}:log-stream:{0}/{0}/task", service.name);
            may(
                s,
                &mut t,
                "execution role",
                service.execution_role_arn.as_deref(),
                &["logs:CreateLogStream", "logs:PutLogEvents"],
                &stream,
                &format!(
                    "log group {}",
                    group.rsplit(":log-group:").next().unwrap_or(group)
                ),
            );
        }
        None => t.block(format!("the {} service has no log group", service.name)),
    }
    network::aws_api(s, service, "logs", &mut t);
    t.needed(format!("{} task → CloudWatch Logs", service.name))
}

/// The secret a service's tasks read their token keys from at run time:
/// the signing ring for the user service, the public set for the others.
fn keys_secret<'a>(s: &'a Snapshot, service: &Service) -> (Option<&'a String>, &'static str) {
    if service.name == "user" {
        (s.signing_keys_arn.as_ref(), "the signing keys")
    } else {
        (s.public_keys_arn.as_ref(), "the public keys")
    }
}

fn secret(s: &Snapshot, service: &Service) -> Flow {
    let mut t = Trace::default();
    // ECS reads the service's own secret to hand the task DB_PASSWORD
    // (and the payment service its Mercado Pago values).
    match &service.secret_arn {
        Some(arn) => may(
            s,
            &mut t,
            "execution role",
            service.execution_role_arn.as_deref(),
            &["secretsmanager:GetSecretValue"],
            arn,
            &format!("the {} secret", service.name),
        ),
        None => t.block(format!("the {} service has no secret", service.name)),
    }
    // The service rereads its keys while it runs (KEYS_SECRET_ID).
    match keys_secret(s, service) {
        (Some(arn), label) => may(
            s,
            &mut t,
            "task role",
            service.task_role_arn.as_deref(),
            &["secretsmanager:GetSecretValue"],
            arn,
            label,
        ),
        (None, label) => t.block(format!("{label} secret does not exist")),
    }
    network::aws_api(s, service, "secretsmanager", &mut t);
    t.needed(format!(
        "{} task → Secrets Manager (its secret, {})",
        service.name,
        keys_secret(s, service).1
    ))
}

/// What changes a secret's value.
const SECRET_WRITES: [&str; 4] = [
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecret",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:RestoreSecret",
];

/// Who may read each secret: the master password the database set-up
/// task's role alone; the signing keys the user service's task role
/// alone; a service's secret only the roles ECS starts that service's
/// tasks (or the set-up task) with. The public keys are everyone's.
fn secrets_only_where_needed(s: &Snapshot) -> Flow {
    let mut t = Trace::default();
    let mut guarded: Vec<(&String, String, Vec<&str>)> = Vec::new();
    let db_init = s.db_init_role_arn.as_deref();
    if let Some(arn) = &s.secret_arn {
        guarded.push((
            arn,
            "the stack secret (master password)".into(),
            db_init.into_iter().collect(),
        ));
    }
    if let Some(arn) = &s.signing_keys_arn {
        let user = s
            .services
            .iter()
            .filter(|x| x.name == "user")
            .filter_map(|x| x.task_role_arn.as_deref())
            .collect();
        guarded.push((arn, "the signing keys".into(), user));
    }
    for service in &s.services {
        if let Some(arn) = &service.secret_arn {
            let mut readers: Vec<&str> = s
                .services
                .iter()
                .filter(|x| x.name == service.name)
                .filter_map(|x| x.execution_role_arn.as_deref())
                .collect();
            readers.extend(db_init);
            guarded.push((arn, format!("the {} secret", service.name), readers));
        }
    }
    // A service's execution role may be shared by every service: ECS
    // uses it to start tasks and never hands it to a container.
    // No role of the stack writes a secret: a role that could put its own
    // key into the public or signing set could mint every token.
    let all: Vec<(&String, &str)> = [
        (s.secret_arn.as_ref(), "the stack secret"),
        (s.signing_keys_arn.as_ref(), "the signing keys"),
        (s.public_keys_arn.as_ref(), "the public keys"),
    ]
    .into_iter()
    .filter_map(|(arn, label)| arn.map(|a| (a, label)))
    .collect();
    for role in &s.roles {
        for (arn, label) in &all {
            for action in SECRET_WRITES {
                if let Decision::Allowed(by) = iam::decide(role, action, arn) {
                    t.allow(by[0].to_string());
                    t.block(format!(
                        "role {} may {action} on {label} ({})",
                        role.name, by[0]
                    ));
                }
            }
        }
    }
    for role in &s.roles {
        for (arn, label, readers) in &guarded {
            if readers.contains(&role.arn.as_str()) {
                continue;
            }
            if let Decision::Allowed(by) = iam::decide(role, "secretsmanager:GetSecretValue", arn) {
                t.allow(by[0].to_string());
                t.block(format!("role {} may read {label} ({})", role.name, by[0]));
            }
        }
    }
    t.forbidden("a role → a secret it does not need")
}

fn trust(s: &Snapshot, service: &Service) -> Flow {
    let mut t = Trace::default();
    for (which, arn) in [
        ("execution role", &service.execution_role_arn),
        ("task role", &service.task_role_arn),
    ] {
        let Some(arn) = arn else {
            t.block(format!("no {which}"));
            continue;
        };
        match s.role_by_arn(arn) {
            Some(role) if iam::trust(&role.trust_policy, ECS_TASKS).trusts_service => {
                t.allow(format!("{which} {} trusts {ECS_TASKS}", role.name))
            }
            Some(role) => t.block(format!(
                "{which} {} does not let {ECS_TASKS} assume it",
                role.name
            )),
            None => t.block(format!("{which} {arn} does not exist")),
        }
    }
    t.needed(format!(
        "{} tasks → their roles ({ECS_TASKS})",
        service.name
    ))
}

fn publish(s: &Snapshot, service: &Service) -> Flow {
    let mut t = Trace::default();
    if let Some(topic) = &service.topic_arn {
        may(
            s,
            &mut t,
            "task role",
            service.task_role_arn.as_deref(),
            &["sns:Publish"],
            topic,
            &format!("topic {}", short(topic)),
        );
    }
    network::aws_api(s, service, "sns", &mut t);
    t.needed(format!("{} → its SNS topic (sns:Publish)", service.name))
}

fn consume(s: &Snapshot, service: &Service) -> Flow {
    let mut t = Trace::default();
    let role = service.task_role_arn.as_deref();
    match &service.queue_arn {
        Some(queue) => may(
            s,
            &mut t,
            "task role",
            role,
            &QUEUE_ACTIONS,
            queue,
            &format!("queue {}", short(queue)),
        ),
        None => t.block(format!("the {} service has no queue", service.name)),
    }
    match &service.dead_letter_queue_arn {
        Some(dlq) => may(
            s,
            &mut t,
            "task role",
            role,
            &DEAD_LETTER_ACTIONS,
            dlq,
            &format!("queue {}", short(dlq)),
        ),
        None => t.block(format!(
            "the {} service has no dead-letter queue",
            service.name
        )),
    }
    network::aws_api(s, service, "sqs", &mut t);
    t.needed(format!(
        "{} → its SQS queue and dead-letter queue",
        service.name
    ))
}

fn payment_to_internet(s: &Snapshot) -> Flow {
    let name = format!("payment → the internet :{HTTPS} (Mercado Pago)");
    let mut t = Trace::default();
    match s.service("payment") {
        Some(payment) => network::internet(s, payment, HTTPS, &mut t),
        None => t.block("the stack outputs name no payment service"),
    }
    t.needed(name)
}

/// The groups whose rules matter: the stack's, and any other a stack
/// resource sits in.
fn groups_in_use(s: &Snapshot) -> BTreeSet<String> {
    let mut groups: BTreeSet<String> = s
        .security_groups
        .iter()
        .filter(|g| g.in_stack)
        .map(|g| g.id.clone())
        .collect();
    if let Some(lb) = &s.load_balancer {
        groups.extend(lb.security_groups.iter().cloned());
    }
    for link in &s.vpc_links {
        groups.extend(link.security_groups.iter().cloned());
    }
    for service in &s.services {
        groups.extend(service.security_groups.iter().cloned());
    }
    if let Some(db) = &s.database {
        groups.extend(db.security_groups.iter().cloned());
    }
    groups
}

fn service_groups(s: &Snapshot) -> BTreeSet<String> {
    s.services
        .iter()
        .flat_map(|svc| svc.security_groups.iter().cloned())
        .collect()
}

fn no_internet_ingress(s: &Snapshot) -> Flow {
    let mut t = Trace::default();
    for id in groups_in_use(s) {
        let Some(group) = s.group(&id) else { continue };
        for rule in &group.ingress {
            if matches!(&rule.peer, Peer::Cidr(c) if network::is_anywhere(c)) {
                let rule = network::describe_ingress(s, &id, rule);
                t.allow(rule.clone());
                t.block(format!("{rule} lets the internet in"));
            }
        }
    }
    if let Some(lb) = &s.load_balancer
        && !lb.internal
    {
        t.allow(format!("ALB {} scheme internet-facing", lb.name));
        t.block(format!("the ALB {} is internet-facing", lb.name));
    }
    if let Some(db) = &s.database
        && db.publicly_accessible
    {
        t.allow(format!("database {} publicly accessible", db.id));
        t.block(format!("the database {} is publicly accessible", db.id));
    }
    t.forbidden("internet → anything in the stack (ingress from 0.0.0.0/0 or ::/0)")
}

fn database_only_from_services(s: &Snapshot) -> Flow {
    let mut t = Trace::default();
    let Some(db) = &s.database else {
        return t.forbidden("anything but the services → database");
    };
    let services = service_groups(s);
    for id in &db.security_groups {
        let Some(group) = s.group(id) else { continue };
        for rule in &group.ingress {
            let from_services = matches!(&rule.peer, Peer::Group(g) if services.contains(g));
            let only_the_port = rule.protocol.eq_ignore_ascii_case("tcp")
                && rule.from_port == i32::from(db.port)
                && rule.to_port == i32::from(db.port);
            if !(from_services && only_the_port) {
                let described = network::describe_ingress(s, id, rule);
                t.allow(described.clone());
                t.block(if from_services {
                    format!("{described} opens more than tcp {}", db.port)
                } else {
                    format!("{described} lets in something other than the services")
                });
            }
        }
    }
    t.forbidden(format!("anything but the services → database :{}", db.port))
}

fn internet_egress_only_https(s: &Snapshot) -> Flow {
    let mut t = Trace::default();
    let services = service_groups(s);
    for id in groups_in_use(s) {
        let Some(group) = s.group(&id) else { continue };
        for rule in &group.egress {
            if !matches!(&rule.peer, Peer::Cidr(c) if network::is_anywhere(c)) {
                continue;
            }
            let https_only = rule.protocol.eq_ignore_ascii_case("tcp")
                && rule.from_port == i32::from(HTTPS)
                && rule.to_port == i32::from(HTTPS);
            if !(services.contains(&id) && https_only) {
                let described = network::describe_egress(s, &id, rule);
                t.allow(described.clone());
                t.block(format!(
                    "{described}: only the services go out, and only on tcp {HTTPS}"
                ));
            }
        }
    }
    t.forbidden("anything but HTTPS from the services → the internet")
}

/// Every role of the stack holds the stack's permissions boundary, so
/// that no change to one (by hand, or by the deploy role) can give it more
/// than the stack's tasks need together.
fn roles_bounded(s: &Snapshot) -> Flow {
    let mut t = Trace::default();
    let name = blueprint::names::boundary_policy(&s.stack);
    for role in &s.roles {
        match &role.boundary_arn {
            Some(arn) if arn.ends_with(&format!("/{name}")) => {
                t.allow(format!("role {} is bounded by {name}", role.name))
            }
            Some(arn) => t.block(format!(
                "role {} is bounded by {arn}, not the stack's {name}",
                role.name
            )),
            None => t.block(format!(
                "role {} has no permissions boundary: `techctl up` sets {name}",
                role.name
            )),
        }
    }
    t.needed(format!("the stack's roles → bounded by {name}"))
}

fn no_wildcard_statements(s: &Snapshot) -> Flow {
    let mut t = Trace::default();
    for role in &s.roles {
        for problem in iam::unreadable(role) {
            t.allow(problem.clone());
            t.block(format!("{problem} (read as granting nothing)"));
        }
        for (at, statement) in iam::role_statements(role) {
            let problems = iam::breadth(&statement);
            if !problems.is_empty() {
                t.allow(at.to_string());
                t.block(format!("{at}: {}", problems.join(", ")));
            }
        }
    }
    t.forbidden("IAM statements with wildcard actions or resources")
}

fn roles_only_for_tasks(s: &Snapshot) -> Flow {
    let mut t = Trace::default();
    for role in &s.roles {
        for other in iam::trust(&role.trust_policy, ECS_TASKS).others {
            t.allow(format!("role {} {other}", role.name));
            t.block(format!(
                "role {} can be assumed by more than ECS tasks ({other})",
                role.name
            ));
        }
    }
    t.forbidden(format!("anyone but {ECS_TASKS} → assume a stack role"))
}

fn no_foreign_messaging(s: &Snapshot) -> Flow {
    let mut t = Trace::default();
    for owner in &s.services {
        let resources: Vec<(&String, &[&str])> = [
            (&owner.topic_arn, &FOREIGN_TOPIC_ACTIONS[..]),
            (&owner.queue_arn, &FOREIGN_QUEUE_ACTIONS[..]),
            (&owner.dead_letter_queue_arn, &FOREIGN_QUEUE_ACTIONS[..]),
        ]
        .into_iter()
        .filter_map(|(arn, actions)| arn.as_ref().map(|a| (a, actions)))
        .collect();
        for role in &s.roles {
            if owner.task_role_arn.as_deref() == Some(role.arn.as_str()) {
                continue;
            }
            for (arn, actions) in &resources {
                let mut allowed = Vec::new();
                let mut by = None;
                for action in actions.iter() {
                    if let Decision::Allowed(statements) = iam::decide(role, action, arn) {
                        allowed.push(*action);
                        by.get_or_insert(statements[0].clone());
                    }
                }
                if let Some(by) = by {
                    t.allow(by.to_string());
                    t.block(format!(
                        "role {} may {} on {} of the {} service ({by})",
                        role.name,
                        allowed.join(", "),
                        short(arn),
                        owner.name
                    ));
                }
            }
        }
    }
    t.forbidden("a role → another service's topic or queues")
}
