//! The blueprint's event wiring must be the services' own: what techctl
//! subscribes each queue to on AWS is what the PostgreSQL transport fans
//! out to locally.

use std::path::Path;

#[test]
fn the_blueprint_subscribes_each_queue_to_what_the_services_consume() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../blueprints/techchallenge.toml");
    let blueprint = blueprint::load(&path).expect("the full blueprint loads");
    for (name, service) in blueprint.services.get_ref() {
        let consumes: Vec<&str> = service
            .consumes
            .iter()
            .map(|e| e.get_ref().as_str())
            .collect();
        let expected = contracts::CONSUMERS
            .iter()
            .find(|(s, _)| s == name.get_ref())
            .map(|(_, events)| events.to_vec())
            .unwrap_or_default();
        assert_eq!(consumes, expected, "services.{}.consumes", name.get_ref());
        for event in &service.publishes {
            assert_eq!(
                contracts::producer_of(event.get_ref()),
                name.get_ref(),
                "{}",
                event.get_ref()
            );
        }
    }
}

/// The Dockerfiles for people who build with Docker describe the same
/// image as `techctl deploy`: the binary, its port, the non-root user and
/// the health check.
#[test]
fn each_service_has_a_dockerfile_matching_the_blueprint() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let blueprint = blueprint::load(&root.join("blueprints/techchallenge.toml"))
        .expect("the full blueprint loads");
    for (name, service) in blueprint.services() {
        let path = root.join(format!("services/{name}/Dockerfile"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let port = service.port.get_ref();
        let binary = format!("/usr/local/bin/{name}-service");
        for expected in [
            format!("-p {name}-service"),
            format!("EXPOSE {port}"),
            format!("ENV PORT={port}"),
            "USER 65532:65532".to_string(),
            format!("ENTRYPOINT [\"{binary}\"]"),
            format!("CMD [\"{binary}\", \"health\"]"),
        ] {
            assert!(
                text.contains(&expected),
                "{}: no {expected:?}",
                path.display()
            );
        }
    }
}
