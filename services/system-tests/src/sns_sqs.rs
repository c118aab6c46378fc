//! The services' events on SNS and SQS in moto, behind the strict proxy,
//! wired as `techctl up` wires them: a topic per producer, a queue and a
//! dead-letter queue per consumer, raw subscriptions filtered on
//! `event_name`, a redrive policy that allows every retry.
//!
//! Each service runs as itself: a task role with the policy the stack
//! gives its tasks (`engine::plan::expand::task_policy`), taken as ECS
//! takes it for a task, and the proxy evaluating every call against it.

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_sqs::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_sqs::types::QueueAttributeName;
use engine::plan::resource::Output;
use serde_json::json;
use service_messaging::sqs::{Queues, SqsTransport};
use testkit::{Fault, StrictAws};

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";

pub struct SnsSqs {
    pub aws: StrictAws,
    /// The tests' own: every right.
    config: aws_config::SdkConfig,
    queues: HashMap<&'static str, Queues>,
    /// Each service's, with its task role's credentials.
    roles: HashMap<&'static str, aws_config::SdkConfig>,
    /// Each service's token keys secret (what its task role may read).
    pub keys_secrets: HashMap<&'static str, String>,
}

impl SnsSqs {
    /// Moto with every producer's topic and every consumer's queues, and
    /// a task role for each service.
    pub async fn start(max_receive: u32) -> Arc<SnsSqs> {
        let aws = StrictAws::start().await;
        let config = aws.sdk_config().await;
        let queues =
            service_messaging::sqs::wire(&config, "system", max_receive, (REGION, ACCOUNT))
                .await
                .expect("the topics and queues");
        let mut roles = HashMap::new();
        let mut keys_secrets = HashMap::new();
        for (service, wired) in &queues {
            let keys = aws_sdk_secretsmanager::Client::new(&config)
                .create_secret()
                .name(format!("system/{service}/keys"))
                .secret_string("{}")
                .send()
                .await
                .expect("a keys secret")
                .arn
                .unwrap_or_default();
            let role = task_role(&config, service, wired, &keys).await;
            roles.insert(*service, as_task(&aws, &config, &role).await);
            keys_secrets.insert(*service, keys);
        }
        Arc::new(SnsSqs {
            aws,
            config,
            queues,
            roles,
            keys_secrets,
        })
    }

    /// `service`'s transport, as the service gets it: with its task
    /// role's credentials.
    pub fn transport(&self, service: &str, settings: &service_messaging::Settings) -> SqsTransport {
        SqsTransport::new(
            &self.roles[service],
            self.queues[service].clone(),
            settings.max_receive,
            settings.visibility,
        )
    }

    /// `service`'s SDK configuration: its task role's credentials.
    pub fn role_config(&self, service: &str) -> &aws_config::SdkConfig {
        &self.roles[service]
    }

    /// The queues and topic of `service`.
    pub fn queues(&self, service: &str) -> &Queues {
        &self.queues[service]
    }

    /// The broker stops answering (every connection cut), or answers again.
    pub fn unreachable(&self, down: bool) {
        if down {
            self.aws.proxy.set_policy(|_| Fault::Drop);
        } else {
            self.aws.proxy.set_policy(|_| Fault::Pass);
        }
    }

    /// Messages in the consumers' queues, waiting or in flight; and in
    /// their dead-letter queues.
    pub async fn backlog(&self) -> (i64, i64) {
        let sqs = aws_sdk_sqs::Client::new(&self.config);
        let count = |url: String| {
            let sqs = sqs.clone();
            async move {
                let attributes = sqs
                    .get_queue_attributes()
                    .queue_url(url)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                    .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                    .send()
                    .await
                    .expect("the queue's attributes");
                attributes
                    .attributes()
                    .map(|a| {
                        a.values()
                            .filter_map(|v| v.parse::<i64>().ok())
                            .sum::<i64>()
                    })
                    .unwrap_or_default()
            }
        };
        let (mut waiting, mut dead) = (0, 0);
        for queues in self.queues.values().filter(|q| !q.queue_url.is_empty()) {
            waiting += count(queues.queue_url.clone()).await;
            dead += count(queues.dead_letter_queue_url.clone()).await;
        }
        (waiting, dead)
    }
}

/// The queue URL's ARN.
fn queue_arn(url: &str) -> String {
    let name = url.rsplit('/').next().unwrap_or_default();
    format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}")
}

/// `service`'s task role: trusted by this account's ECS tasks, with the
/// stack's task policy over its own topic, queues and keys.
async fn task_role(
    config: &aws_config::SdkConfig,
    service: &str,
    wired: &Queues,
    keys: &str,
) -> String {
    let text = |arn: &str| Output::Text(arn.to_string());
    let policy = engine::plan::expand::task_policy(
        text(keys),
        (!wired.topic_arn.is_empty()).then(|| text(&wired.topic_arn)),
        (!wired.queue_url.is_empty()).then(|| {
            (
                text(&queue_arn(&wired.queue_url)),
                text(&queue_arn(&wired.dead_letter_queue_url)),
            )
        }),
    );
    let document = engine::plan::resource::policy_document(&policy, |o| match o {
        Output::Text(t) => Ok(t.clone()),
        other => Err(format!("{other:?} is not an ARN")),
    })
    .expect("the task policy");
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": engine::plan::expand::ECS_TASKS},
        "Action": "sts:AssumeRole",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
            "ArnLike": {"aws:SourceArn": format!("arn:aws:ecs:{REGION}:{ACCOUNT}:*")},
        },
    }]});
    let iam = aws_sdk_iam::Client::new(config);
    let name = format!("system-{service}-task");
    let role = iam
        .create_role()
        .role_name(&name)
        .path("/techctl/system/")
        .assume_role_policy_document(trust.to_string())
        .send()
        .await
        .expect("a task role")
        .role
        .map(|r| r.arn)
        .unwrap_or_default();
    iam.put_role_policy()
        .role_name(&name)
        .policy_name("techctl")
        .policy_document(document.to_string())
        .send()
        .await
        .expect("the task policy");
    role
}

/// The configuration of a task of `role`: the role's credentials, taken
/// as ECS takes them for a task (the proxy checks the role trusts ECS's
/// tasks of this account).
async fn as_task(
    aws: &StrictAws,
    config: &aws_config::SdkConfig,
    role: &str,
) -> aws_config::SdkConfig {
    let taken = aws_sdk_sts::Client::new(config)
        .assume_role()
        .role_arn(role)
        .role_session_name("task")
        .customize()
        .mutate_request(|request| {
            request
                .headers_mut()
                .insert(testkit::strict::ASSUMED_BY, engine::plan::expand::ECS_TASKS);
        })
        .send()
        .await
        .expect("the task role's credentials")
        .credentials
        .expect("credentials");
    let credentials = Credentials::new(
        taken.access_key_id,
        taken.secret_access_key,
        Some(taken.session_token),
        None,
        "task role",
    );
    aws.sdk_config()
        .await
        .to_builder()
        .credentials_provider(SharedCredentialsProvider::new(credentials))
        .build()
}
