//! The volume service's operations, one module each, holding both the run of the
//! operation and its resume after a crash. Each takes its statuses from the operations
//! table (`cinder_common::ops`) and ends through `Db::finish`.

pub mod connection;
pub mod create;
pub mod delete;
pub mod extend;
pub mod manage;
pub mod retype;
pub mod revert;
pub mod snapshot;
