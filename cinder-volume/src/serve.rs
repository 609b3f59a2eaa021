//! The consumer loop: at most `concurrency` requests taken in (the prefetch matches), a
//! task per request; long work gives its intake slot back once acknowledged (see
//! [`crate::manager::VolumeManager::handle`]). The budget and the task tracker outlive connections: when the
//! broker goes away the loop returns [`Ended::ConsumerLost`], running work carries on
//! (its acks fail and the broker redelivers; handlers are idempotent), and the caller
//! reconnects. On shutdown it stops consuming and returns at once.

use std::sync::Arc;

use cinder_common::shutdown::CancellationToken;
use cinder_rpc::messages::VolumeTopic;
use cinder_rpc::RpcServer;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::drivers::VolumeDriver;
use crate::manager::VolumeManager;

/// Why [`serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Shutdown was asked for.
    Shutdown,
    /// The consumer ended (connection or channel lost).
    ConsumerLost,
}

/// Serves `server` until `shutdown` or the consumer ends.
pub async fn serve<D: VolumeDriver>(
    manager: &Arc<VolumeManager<D>>,
    server: &mut RpcServer<VolumeTopic>,
    permits: &Arc<Semaphore>,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Ended {
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ended::Shutdown,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return Ended::Shutdown },
        };
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ended::Shutdown,
            n = server.next() => n,
        };
        match next {
            Some(Ok(req)) => {
                let manager = manager.clone();
                tracker.spawn(async move { manager.handle(req, permit).await });
            }
            Some(Err(e)) => {
                tracing::warn!(error = %e, "RPC consumer failed");
                return Ended::ConsumerLost;
            }
            None => return Ended::ConsumerLost,
        }
    }
}
