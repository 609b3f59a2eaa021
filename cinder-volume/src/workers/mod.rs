//! Periodic work of a volume service: the heartbeat (and, with later issues, capacity
//! reports and trash purges). Each runs on the async runtime and never calls librbd.

pub mod heartbeat;
pub mod stats;
