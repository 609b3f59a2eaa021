//! One integration test binary; every module runs against the real dev cluster.

mod architecture;
mod db;
mod fixtures;
mod heartbeat;
mod rbd;
mod rbd_diff;
mod rbd_runtime;
mod rpc;
mod service;
mod volume_service;
