//! Periodic work of a volume service: the heartbeat, the capacity report and the trash
//! sweep. Each runs on the async runtime; librbd work goes through the driver's pool.

pub mod heartbeat;
pub mod stats;
pub mod trash;
