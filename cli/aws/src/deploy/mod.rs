//! The AWS half of `techctl deploy`: the task definition a service runs
//! with ([`task`]), its registration and the ECS service's update
//! ([`ecs`]), and watching the rollout until it is steady or rolled back
//! ([`rollout`]).

pub mod ecs;
pub mod rollout;
pub mod task;
