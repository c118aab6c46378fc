//! The AWS half of `techctl deploy`: the task definition a service runs
//! with ([`task`]), its registration and the ECS service's update
//! ([`ecs`]), and watching the rollout until it is steady or rolled back
//! ([`rollout`]); before a service's first rollout, the one-off task that
//! makes its database role ([`db_init`]).

pub mod db_init;
pub mod ecs;
pub mod rollout;
pub mod task;
