//! One integration test binary; every module runs against the real services (the
//! protocol module against the broker and a database only, with the fake driver).

mod active_active;
mod api;
mod architecture;
mod backup;
mod chaos;
mod crash;
mod db;
mod fixtures;
mod heartbeat;
mod images;
mod protocol;
mod rbd;
mod rbd_diff;
mod rbd_runtime;
mod rpc;
mod scheduler;
mod service;
mod volume_actions;
mod volume_service;
