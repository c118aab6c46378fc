//! The plan: what `up` would do to make AWS match the blueprint, as data.
//!
//! Desired resources (from [`expand`]) are matched with observed ones by
//! logical id and compared field by field. A difference in a field AWS can
//! change in place is an update; anywhere else it is a replacement, and a
//! replacement spreads to the resources that live inside the replaced one.

pub mod cost;
pub mod expand;
pub mod outputs;
pub mod resource;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

pub use resource::{Kind, LogicalId, Observed, Resource, Spec};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
    NoOp,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::NoOp => "no change",
        }
    }

    pub fn destroys(self) -> bool {
        matches!(self, Action::Replace | Action::Delete)
    }
}

/// One field that differs between AWS and the blueprint.
#[derive(Clone, Debug, Serialize)]
pub struct FieldChange {
    pub field: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub forces_replacement: bool,
}

/// What happens to one resource.
#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub id: LogicalId,
    pub kind: Kind,
    pub action: Action,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    pub stack: String,
    pub region: String,
    pub changes: Vec<Change>,
    #[serde(skip)]
    pub desired: Vec<Resource>,
    #[serde(skip)]
    pub observed: Vec<Observed>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
}

impl Plan {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for change in &self.changes {
            match change.action {
                Action::Create => c.create += 1,
                Action::Update => c.update += 1,
                Action::Replace => c.replace += 1,
                Action::Delete => c.delete += 1,
                Action::NoOp => c.unchanged += 1,
            }
        }
        c
    }

    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::NoOp)
    }

    pub fn destroys_anything(&self) -> bool {
        self.changes.iter().any(|c| c.action.destroys())
    }
}

/// Compares what the blueprint wants with what AWS has.
/// Observes the stack through `provider` and plans `desired` against what
/// it holds.
pub async fn observe_and_compute<P: crate::apply::Provider>(
    provider: &P,
    stack: &str,
    region: &str,
    desired: Vec<Resource>,
) -> Result<Plan, P::Error> {
    let observed = provider.observe(stack).await?;
    Ok(compute(stack, region, desired, observed))
}

pub fn compute(stack: &str, region: &str, desired: Vec<Resource>, observed: Vec<Observed>) -> Plan {
    let (primary, duplicates) = pick_primaries(&observed);
    let resolve = |output: &resource::Output| match output {
        resource::Output::Id(id) => primary.get(id).map(|o| o.physical_id.clone()),
        resource::Output::Attr { of, attr } => primary.get(of)?.attributes.get(attr).cloned(),
        _ => None,
    };
    let mut changes: Vec<Change> = desired
        .iter()
        .map(|want| match primary.get(&want.id) {
            None => Change {
                id: want.id.clone(),
                kind: want.kind(),
                action: Action::Create,
                physical_id: None,
                fields: Vec::new(),
                reason: None,
            },
            Some(have) => compare(stack, want, have, &resolve),
        })
        .collect();

    spread_replacements(&desired, &mut changes);

    let wanted: HashMap<&LogicalId, ()> = desired.iter().map(|r| (&r.id, ())).collect();
    for have in &observed {
        let reason = if duplicates.contains(&have.physical_id.as_str()) {
            format!("duplicate of {}", primary[&have.id].physical_id)
        } else if !wanted.contains_key(&have.id) {
            "no longer in the blueprint".to_string()
        } else {
            continue;
        };
        changes.push(Change {
            id: have.id.clone(),
            kind: have.spec.kind(),
            action: Action::Delete,
            physical_id: Some(have.physical_id.clone()),
            fields: Vec::new(),
            reason: Some(reason),
        });
    }

    Plan {
        stack: stack.to_string(),
        region: region.to_string(),
        changes,
        desired,
        observed,
    }
}

/// Everything the stack owns, to be deleted, in the order `down` deletes it.
pub fn teardown(stack: &str, region: &str, observed: Vec<Observed>) -> Plan {
    let mut changes: Vec<Change> = observed
        .iter()
        .map(|o| Change {
            id: o.id.clone(),
            kind: o.spec.kind(),
            action: Action::Delete,
            physical_id: Some(o.physical_id.clone()),
            fields: Vec::new(),
            reason: None,
        })
        .collect();
    changes.sort_by(|a, b| (a.kind.deletion_wave(), &a.id).cmp(&(b.kind.deletion_wave(), &b.id)));
    Plan {
        stack: stack.to_string(),
        region: region.to_string(),
        changes,
        desired: Vec::new(),
        observed,
    }
}

/// When AWS holds two resources with the same logical id (a create whose
/// answer was lost, then retried elsewhere), one is kept and the others are
/// deleted: the one in the best state, then the oldest-looking id.
fn pick_primaries(observed: &[Observed]) -> (HashMap<LogicalId, &Observed>, Vec<&str>) {
    let mut by_id: BTreeMap<&LogicalId, Vec<&Observed>> = BTreeMap::new();
    for o in observed {
        by_id.entry(&o.id).or_default().push(o);
    }
    let mut primary = HashMap::new();
    let mut duplicates = Vec::new();
    for (id, mut group) in by_id {
        group.sort_by_key(|o| (state_rank(o.state.as_deref()), o.physical_id.clone()));
        primary.insert(id.clone(), group[0]);
        duplicates.extend(group[1..].iter().map(|o| o.physical_id.as_str()));
    }
    (primary, duplicates)
}

fn state_rank(state: Option<&str>) -> u8 {
    match state {
        None | Some("available" | "active") => 0,
        Some(s) if settling(s) => 1,
        _ => 2,
    }
}

/// States on the way to ready: an interrupted `up` left the resource
/// there, and the next one waits for it rather than re-creating it.
fn settling(state: &str) -> bool {
    matches!(
        state,
        "pending"
            | "provisioning"
            | "creating"
            | "modifying"
            | "backing-up"
            | "configuring-enhanced-monitoring"
    )
}

/// Resolves a reference to the text AWS holds for it, from what was observed.
type Resolve<'a> = dyn Fn(&resource::Output) -> Option<String> + 'a;

fn compare(stack: &str, want: &Resource, have: &Observed, resolve: &Resolve) -> Change {
    let kind = want.kind();
    let mut rendered = want.spec.clone();
    rendered.render_outputs(resolve);
    let desired = rendered.fields();
    let actual = have.spec.fields();
    let mut fields: Vec<FieldChange> = desired
        .iter()
        .filter(|(name, value)| actual.get(*name) != Some(value))
        .filter(|(name, value)| !in_sync_anyway(kind, name, value, actual.get(*name)))
        .map(|(name, value)| FieldChange {
            field: name.clone(),
            before: actual.get(name).cloned(),
            after: Some(value.clone()),
            forces_replacement: !kind.updatable(name),
        })
        .collect();

    let want_tags = expand::tags(stack, &want.id);
    let missing: BTreeMap<&String, &String> = want_tags
        .iter()
        .filter(|(k, v)| have.tags.get(*k) != Some(*v))
        .collect();
    if !missing.is_empty() && kind.tagged() {
        let before: BTreeMap<&String, Option<&String>> =
            missing.keys().map(|k| (*k, have.tags.get(*k))).collect();
        fields.push(FieldChange {
            field: "tags".into(),
            before: serde_json::to_value(before).ok(),
            after: serde_json::to_value(missing).ok(),
            forces_replacement: false,
        });
    }

    let broken = matches!(
        have.state.as_deref(),
        Some("failed" | "deleting" | "deleted")
    );
    let state = have.state.as_deref().unwrap_or("");
    let (action, reason) = if broken || fields.iter().any(|f| f.forces_replacement) {
        (
            Action::Replace,
            broken.then(|| format!("AWS reports it {state}")),
        )
    } else if fields.is_empty() && settling(state) {
        (
            Action::Update,
            Some(format!(
                "AWS reports it {state}; up waits until it is ready"
            )),
        )
    } else if fields.is_empty() {
        (Action::NoOp, None)
    } else {
        (Action::Update, None)
    };
    Change {
        id: want.id.clone(),
        kind,
        action,
        physical_id: Some(have.physical_id.clone()),
        fields,
        reason,
    }
}

/// Fields that differ in text but not in what the blueprint asks for: a
/// database engine that RDS upgraded to a newer minor version (or that
/// runs a newer major one, which `up` never tries to take back).
fn in_sync_anyway(
    kind: Kind,
    field: &str,
    wanted: &serde_json::Value,
    actual: Option<&serde_json::Value>,
) -> bool {
    if kind != Kind::DbInstance || field != "engine_version" {
        return false;
    }
    let requirement = wanted
        .as_str()
        .and_then(blueprint::engine_version::Requirement::parse);
    match (requirement, actual.and_then(|a| a.as_str())) {
        (Some(want), Some(have)) => want.accepts(have),
        _ => false,
    }
}

/// A resource living inside a replaced one is replaced too; one that merely
/// points at a replaced or new resource is updated to point at the new id.
fn spread_replacements(desired: &[Resource], changes: &mut [Change]) {
    loop {
        let action: HashMap<LogicalId, Action> =
            changes.iter().map(|c| (c.id.clone(), c.action)).collect();
        let mut changed = false;
        for (want, change) in desired.iter().zip(changes.iter_mut()) {
            if matches!(change.action, Action::Replace | Action::Create) {
                continue;
            }
            let replaced = want
                .spec
                .fixed_refs()
                .into_iter()
                .find(|r| action.get(*r) == Some(&Action::Replace));
            if let Some(r) = replaced {
                change.action = Action::Replace;
                change.reason = Some(format!("it lives in {r}, which is replaced"));
                changed = true;
                continue;
            }
            if change.action == Action::NoOp {
                let renewed = want
                    .spec
                    .mutable_refs()
                    .into_iter()
                    .find(|r| matches!(action.get(*r), Some(Action::Replace | Action::Create)));
                if let Some(r) = renewed {
                    change.action = Action::Update;
                    change.reason = Some(format!("it refers to {r}, which gets a new id"));
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::plan::expand::{ids, tags};
    use crate::plan::resource::Output;

    fn vpc(cidr: &str) -> Spec {
        Spec::Vpc {
            cidr: cidr.into(),
            dns_support: true,
            dns_hostnames: true,
        }
    }

    fn subnet(cidr: &str) -> Spec {
        Spec::Subnet {
            vpc: ids::vpc(),
            cidr: cidr.into(),
            availability_zone: "us-east-1a".into(),
        }
    }

    fn secret() -> Spec {
        Spec::StackOutputs {
            secret: ids::stack_secret(),
            outputs: BTreeMap::from([("vpc_id".to_string(), Output::Id(ids::vpc()))]),
        }
    }

    fn seen(id: LogicalId, physical: &str, spec: Spec) -> Observed {
        Observed {
            tags: tags("s", &id),
            id,
            physical_id: physical.into(),
            spec,
            state: None,
            attributes: BTreeMap::new(),
        }
    }

    fn desired() -> Vec<Resource> {
        vec![
            Resource::new(ids::vpc(), vpc("10.0.0.0/16")),
            Resource::new(ids::subnet("private", "a"), subnet("10.0.10.0/24")),
            Resource::new(ids::stack_outputs(), secret()),
        ]
    }

    fn action(plan: &Plan, id: &LogicalId) -> Action {
        plan.changes
            .iter()
            .find(|c| &c.id == id)
            .map(|c| c.action)
            .unwrap()
    }

    #[test]
    fn nothing_observed_means_everything_is_created() {
        let plan = compute("s", "us-east-1", desired(), vec![]);
        assert!(plan.changes.iter().all(|c| c.action == Action::Create));
        assert_eq!(plan.counts().create, 3);
    }

    #[test]
    fn a_replaced_vpc_takes_what_lives_in_it_and_updates_what_points_at_it() {
        let observed = vec![
            seen(ids::vpc(), "vpc-1", vpc("10.9.0.0/16")),
            seen(
                ids::subnet("private", "a"),
                "subnet-1",
                subnet("10.0.10.0/24"),
            ),
            seen(ids::stack_outputs(), "arn:1", secret()),
        ];
        let plan = compute("s", "us-east-1", desired(), observed);
        assert_eq!(action(&plan, &ids::vpc()), Action::Replace);
        assert_eq!(action(&plan, &ids::subnet("private", "a")), Action::Replace);
        assert_eq!(action(&plan, &ids::stack_outputs()), Action::Update);
        let vpc_change = plan.changes.iter().find(|c| c.id == ids::vpc()).unwrap();
        assert!(
            vpc_change
                .fields
                .iter()
                .any(|f| f.field == "cidr" && f.forces_replacement)
        );
        let subnet_change = plan
            .changes
            .iter()
            .find(|c| c.id == ids::subnet("private", "a"))
            .unwrap();
        assert_eq!(
            subnet_change.reason.as_deref(),
            Some("it lives in network/vpc, which is replaced")
        );
    }

    #[test]
    fn updatable_fields_missing_tags_orphans_and_duplicates() {
        let mut dns_off = vpc("10.0.0.0/16");
        if let Spec::Vpc { dns_hostnames, .. } = &mut dns_off {
            *dns_hostnames = false;
        }
        let mut untagged_subnet = seen(
            ids::subnet("private", "a"),
            "subnet-1",
            subnet("10.0.10.0/24"),
        );
        untagged_subnet.tags.remove("Name");
        let observed = vec![
            seen(ids::vpc(), "vpc-1", dns_off),
            untagged_subnet,
            seen(
                ids::subnet("private", "a"),
                "subnet-2",
                subnet("10.0.10.0/24"),
            ),
            seen(
                ids::subnet("private", "z"),
                "subnet-3",
                subnet("10.0.99.0/24"),
            ),
            seen(ids::stack_outputs(), "arn:1", secret()),
        ];
        let plan = compute("s", "us-east-1", desired(), observed);
        let vpc_change = plan.changes.iter().find(|c| c.id == ids::vpc()).unwrap();
        assert_eq!(vpc_change.action, Action::Update);
        assert_eq!(vpc_change.fields[0].field, "dns_hostnames");
        assert!(!vpc_change.fields[0].forces_replacement);
        assert_eq!(
            action(&plan, &ids::subnet("private", "a")),
            Action::Update,
            "tags are updated in place"
        );
        let deletes: BTreeMap<&str, &str> = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Delete)
            .map(|c| {
                (
                    c.physical_id.as_deref().unwrap(),
                    c.reason.as_deref().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            deletes,
            BTreeMap::from([
                ("subnet-2", "duplicate of subnet-1"),
                ("subnet-3", "no longer in the blueprint")
            ])
        );
        assert!(plan.destroys_anything());
    }

    #[test]
    fn a_plan_serialises_with_its_fields_and_without_secrets() {
        let plan = compute(
            "s",
            "us-east-1",
            desired(),
            vec![seen(ids::vpc(), "vpc-1", vpc("10.9.0.0/16"))],
        );
        let json = serde_json::to_value(&plan).unwrap();
        let first = &json["changes"][0];
        assert_eq!(first["action"], "replace");
        assert_eq!(first["fields"][0]["field"], "cidr");
        assert_eq!(first["fields"][0]["forces_replacement"], true);
        assert!(!json.to_string().contains("PRIVATE KEY"));
    }
}
