//! The consumer loop: at most `concurrency` requests in flight (the prefetch matches), a
//! task per request, and on shutdown: stop consuming, let running work finish within
//! the grace period (long librbd work is cancelled through the driver's token).

use std::sync::Arc;
use std::time::Duration;

use cinder_common::shutdown::CancellationToken;
use cinder_rpc::RpcServer;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::drivers::VolumeDriver;
use crate::manager::VolumeManager;

/// Serves `server` until `shutdown` (or the consumer ends).
pub async fn serve<D: VolumeDriver>(
    manager: Arc<VolumeManager<D>>,
    mut server: RpcServer,
    concurrency: usize,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let next = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            n = server.next() => n,
        };
        match next {
            Some(Ok(req)) => {
                let manager = manager.clone();
                tracker.spawn(async move {
                    let _permit = permit;
                    manager.handle(req).await;
                });
            }
            Some(Err(e)) => {
                tracing::error!(error = %e, "RPC consumer failed");
                break;
            }
            None => break,
        }
    }
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(
            ?grace,
            "requests still running at the end of the grace period"
        );
    }
    // Closing the connection returns prefetched, unclaimed deliveries to the queue.
    drop(server);
}
