//! The manager's error: what stopped a request from being handled to its end (an
//! operation that fails cleanly is not an error: its resource takes the failure status).

use cinder_drivers::DriverError;

/// Why a request could not be handled to its end.
#[derive(Debug, thiserror::Error)]
pub enum ManagerError {
    /// The database failed or a row was not as expected.
    #[error(transparent)]
    Db(#[from] cinder_db::Error),
    /// The broker failed (ack, reply).
    #[error(transparent)]
    Rpc(#[from] cinder_rpc::RpcError),
    /// The driver failed where no failure status applies (recovery).
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The claim could not be written or the delivery settled.
    #[error(transparent)]
    Claim(#[from] cinder_service::ClaimError),
}
