//! The blueprint's event wiring must be the services' own: what techctl
//! subscribes each queue to on AWS is what the PostgreSQL transport fans
//! out to locally.

use std::path::Path;

#[test]
fn the_blueprint_subscribes_each_queue_to_what_the_services_consume() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../blueprints/techchallenge.toml");
    let blueprint = techctl::blueprint::load(&path).expect("the full blueprint loads");
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
