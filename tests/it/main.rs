//! One integration test binary; every module runs against the real dev cluster.

mod active_active;
mod architecture;
mod crash;
mod db;
mod fixtures;
mod heartbeat;
mod rbd;
mod rbd_diff;
mod rbd_runtime;
mod rpc;
mod service;
mod volume_actions;
mod volume_service;
