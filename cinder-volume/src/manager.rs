//! The volume manager: turns each RPC request into driver work and final statuses.
//!
//! For casts the order is always: claim the work in the `workers` table (durable), ack
//! the delivery, do the work, set the final status with a conditional update, release
//! the claim. A crash before the claim means redelivery (handled idempotently: a claim
//! the service already holds is found again); a crash after it is found by start-up
//! reconciliation. Calls reply, then ack.

use std::sync::Arc;

use cinder_common::status::{SnapshotStatus, VolumeStatus};
use cinder_db::{Db, VolumeChanges};
use cinder_rpc::messages::{RemoteErrorKind, VolumeRequest};
use cinder_rpc::{Incoming, RemoteError};
use tracing::Instrument;

use crate::drivers::{CreateSource, VolumeDriver, VolumeError};

/// What start-up reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Interrupted creates now in `error`, their half-made images removed.
    pub failed_creates: Vec<String>,
    /// Interrupted deletes carried to their end.
    pub resumed_deletes: Vec<String>,
    /// Images in the pool no volume row knows: reported, never deleted.
    pub unknown_images: Vec<String>,
}

/// Handles the requests of one backend.
pub struct VolumeManager<D> {
    db: Db,
    driver: Arc<D>,
    service_id: i32,
    /// `host@backend`.
    host: String,
    /// Resources with work running in this process (the claim table guards across
    /// processes; this catches duplicate deliveries within one).
    busy: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// Removes a resource from the busy set when its work ends, however it ends.
struct BusyGuard<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    key: (String, String),
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.key);
        }
    }
}

fn remote(kind: RemoteErrorKind, message: impl Into<String>) -> RemoteError {
    RemoteError {
        kind,
        message: message.into(),
        retryable: false,
    }
}

fn remote_from_driver(e: &VolumeError) -> RemoteError {
    use rbd_driver::ErrorKind as K;
    match e {
        VolumeError::Driver(d) => {
            let kind = match d.kind() {
                K::NotFound => RemoteErrorKind::NotFound,
                K::Busy | K::HasDependents => RemoteErrorKind::Busy,
                K::InvalidInput | K::AlreadyExists => RemoteErrorKind::InvalidInput,
                K::Unavailable | K::TimedOut => RemoteErrorKind::Unavailable,
                K::Cancelled | K::Other => RemoteErrorKind::Internal,
            };
            RemoteError {
                kind,
                message: e.to_string(),
                retryable: matches!(kind, RemoteErrorKind::Unavailable),
            }
        }
        VolumeError::NotCloneable(_) | VolumeError::Invalid(_) => {
            remote(RemoteErrorKind::InvalidInput, e.to_string())
        }
    }
}

impl<D: VolumeDriver> VolumeManager<D> {
    /// A manager for the service row `service_id` serving `host` (`host@backend`).
    pub fn new(
        db: Db,
        driver: Arc<D>,
        service_id: i32,
        host: String,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        VolumeManager {
            db,
            driver,
            service_id,
            host,
            busy: Default::default(),
            metrics,
        }
    }

    /// Handles one request to its end.
    pub async fn handle(&self, req: Incoming) {
        let env = &req.envelope;
        let method = serde_json::to_value(&env.body)
            .ok()
            .and_then(|v| v.get("method").and_then(|m| m.as_str()).map(str::to_string));
        let span = tracing::info_span!("rpc", request_id = %env.request_id, method = method.as_deref().unwrap_or("?"), backend = %self.host);
        let _in_flight = self.metrics.start();
        let started = std::time::Instant::now();
        let ok = self.dispatch(req).instrument(span).await;
        self.metrics.record(
            &self.host,
            method.as_deref().unwrap_or("unknown"),
            ok,
            started.elapsed(),
        );
    }

    /// Handles a request; false when it failed (for metrics).
    async fn dispatch(&self, req: Incoming) -> bool {
        let failed = std::sync::atomic::AtomicBool::new(false);
        let fail = || failed.store(true, std::sync::atomic::Ordering::Relaxed);
        let body = req.envelope.body.clone();
        let result = match body {
            VolumeRequest::CreateVolume(c) => {
                let source = match (&c.snapshot_id, &c.source_volid, &c.image_location) {
                    (Some(s), _, _) => match self.db.snapshot(s).await {
                        Ok(snap) => CreateSource::Snapshot { volume_id: snap.volume_id, snapshot_id: s.clone() },
                        Err(e) => {
                            self.fail_early(&req, &c.volume_id, VolumeStatus::Error, e.to_string()).await;
                            return false;
                        }
                    },
                    (None, Some(v), _) => CreateSource::Volume { volume_id: v.clone() },
                    (None, None, Some(l)) => CreateSource::Image { location: l.clone() },
                    _ => CreateSource::Blank,
                };
                self.claimed(&req, "volume", &c.volume_id, "create_volume", async {
                    // A redelivery after reconciliation failed the create: nothing to build.
                    let current = self.db.volume(&c.volume_id).await?;
                    if current.status != VolumeStatus::Creating.as_str() {
                        tracing::warn!(volume_id = %c.volume_id, status = %current.status, "create for a volume no longer creating; ignored");
                        return Ok(());
                    }
                    match self.driver.create_volume(&c.volume_id, c.size_gib, &source).await {
                        Ok(created) => {
                            let changes = VolumeChanges {
                                host: Some(format!("{}#{}", self.host, created.provider_location.split('/').next().unwrap_or(""))),
                                provider_location: Some(created.provider_location),
                                rbd_parent: Some(created.rbd_parent),
                                clone_depth: Some(created.clone_depth as i32),
                                launched_at: true,
                                ..Default::default()
                            };
                            if let Err(e) = self.db.update_volume_if(&c.volume_id, &[VolumeStatus::Creating], VolumeStatus::Available, &changes).await {
                                // The row moved on meanwhile (reset, failed): no image may
                                // outlive the volume that wanted it.
                                if !matches!(&e, cinder_db::Error::Conflict { found, .. } if found == "available") {
                                    self.driver.cleanup_failed_create(&c.volume_id).await;
                                }
                                return Err(e);
                            }
                            tracing::info!(volume_id = %c.volume_id, "volume created");
                            Ok(())
                        }
                        Err(e) => {
                            tracing::error!(volume_id = %c.volume_id, error = %e, "create failed");
                            fail();
                            self.driver.cleanup_failed_create(&c.volume_id).await;
                            self.db.update_volume_status_if(&c.volume_id, &[VolumeStatus::Creating], VolumeStatus::Error).await?;
                            Ok(())
                        }
                    }
                })
                .await
            }
            VolumeRequest::DeleteVolume(d) => {
                self.claimed(&req, "volume", &d.volume_id, "delete_volume", async {
                    let current = self.db.volume(&d.volume_id).await?;
                    if current.status != VolumeStatus::Deleting.as_str() {
                        tracing::warn!(volume_id = %d.volume_id, status = %current.status, "delete for a volume not deleting; ignored");
                        return Ok(());
                    }
                    match self.driver.delete_volume(&d.volume_id).await {
                        Ok(()) => {
                            self.db.soft_delete_volume(&d.volume_id).await?;
                            tracing::info!(volume_id = %d.volume_id, "volume deleted");
                        }
                        Err(e) => {
                            tracing::error!(volume_id = %d.volume_id, error = %e, "delete failed");
                            fail();
                            self.db.update_volume_status_if(&d.volume_id, &[VolumeStatus::Deleting], VolumeStatus::ErrorDeleting).await?;
                        }
                    }
                    Ok(())
                })
                .await
            }
            VolumeRequest::ExtendVolume(x) => {
                self.claimed(&req, "volume", &x.volume_id, "extend_volume", async {
                    match self.driver.extend_volume(&x.volume_id, x.new_size_gib).await {
                        Ok(()) => {
                            let changes = VolumeChanges { size_gib: Some(x.new_size_gib as i32), ..Default::default() };
                            self.db.update_volume_if(&x.volume_id, &[VolumeStatus::Extending], VolumeStatus::Available, &changes).await?;
                        }
                        Err(e) => {
                            tracing::error!(volume_id = %x.volume_id, error = %e, "extend failed");
                            fail();
                            self.db.update_volume_status_if(&x.volume_id, &[VolumeStatus::Extending], VolumeStatus::ErrorExtending).await?;
                        }
                    }
                    Ok(())
                })
                .await
            }
            VolumeRequest::CreateSnapshot(s) => {
                self.claimed(&req, "snapshot", &s.snapshot_id, "create_snapshot", async {
                    let status = match self.driver.create_snapshot(&s.volume_id, &s.snapshot_id).await {
                        Ok(()) => SnapshotStatus::Available,
                        Err(e) => {
                            tracing::error!(snapshot_id = %s.snapshot_id, error = %e, "snapshot failed");
                            fail();
                            SnapshotStatus::Error
                        }
                    };
                    self.db.update_snapshot_status_if(&s.snapshot_id, &[SnapshotStatus::Creating], status).await?;
                    Ok(())
                })
                .await
            }
            VolumeRequest::DeleteSnapshot(s) => {
                self.claimed(&req, "snapshot", &s.snapshot_id, "delete_snapshot", async {
                    match self.driver.delete_snapshot(&s.volume_id, &s.snapshot_id).await {
                        Ok(()) => self.db.soft_delete_snapshot(&s.snapshot_id).await?,
                        Err(e) => {
                            tracing::error!(snapshot_id = %s.snapshot_id, error = %e, "snapshot delete failed");
                            fail();
                            self.db.update_snapshot_status_if(&s.snapshot_id, &[SnapshotStatus::Deleting], SnapshotStatus::ErrorDeleting).await?;
                        }
                    }
                    Ok(())
                })
                .await
            }
            VolumeRequest::InitializeConnection(c) => {
                let r = self.driver.initialize_connection(&c.volume_id, &c.connector).await.map_err(|e| remote_from_driver(&e));
                self.answer(&req, r).await
            }
            VolumeRequest::TerminateConnection(_) => self.answer(&req, Ok(())).await,
            VolumeRequest::GetCapabilities(_) => {
                let r = match self.db.provisioned_gib(&self.host).await {
                    Ok(p) => self.driver.get_volume_stats(p).await.map_err(|e| remote_from_driver(&e)),
                    Err(e) => Err(remote(RemoteErrorKind::Unavailable, format!("database: {e}"))),
                };
                self.answer(&req, r).await
            }
        };
        if let Err(e) = &result {
            tracing::error!(error = %e, "request handling failed");
        }
        result.is_ok() && !failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Start-up reconciliation, before serving: work this service claimed and did not
    /// finish is failed cleanly (creates, extends, snapshot creates) or resumed (deletes);
    /// images in the pool that no volume row knows are reported, never deleted.
    pub async fn reconcile(&self) -> Result<Reconciled, String> {
        let mut report = Reconciled::default();
        let claims = self
            .db
            .claims_of_service(self.service_id)
            .await
            .map_err(|e| e.to_string())?;
        for claim in claims {
            let id = claim.resource_id.clone();
            let done = match (claim.resource_type.as_str(), claim.operation.as_str()) {
                ("volume", "create_volume") => {
                    self.driver.cleanup_failed_create(&id).await;
                    match self
                        .db
                        .update_volume_status_if(
                            &id,
                            &[VolumeStatus::Creating],
                            VolumeStatus::Error,
                        )
                        .await
                    {
                        Ok(()) => report.failed_creates.push(id.clone()),
                        Err(e) => {
                            tracing::info!(volume_id = %id, error = %e, "interrupted create had already ended")
                        }
                    }
                    Ok(())
                }
                ("volume", "delete_volume") => match self.db.volume(&id).await {
                    Ok(v) if v.status == VolumeStatus::Deleting.as_str() => {
                        match self.driver.delete_volume(&id).await {
                            Ok(()) => {
                                report.resumed_deletes.push(id.clone());
                                self.db
                                    .soft_delete_volume(&id)
                                    .await
                                    .map_err(|e| e.to_string())
                            }
                            Err(e) => {
                                tracing::error!(volume_id = %id, error = %e, "resumed delete failed");
                                self.db
                                    .update_volume_status_if(
                                        &id,
                                        &[VolumeStatus::Deleting],
                                        VolumeStatus::ErrorDeleting,
                                    )
                                    .await
                                    .map_err(|e| e.to_string())
                            }
                        }
                    }
                    _ => Ok(()),
                },
                ("volume", "extend_volume") => {
                    let _ = self
                        .db
                        .update_volume_status_if(
                            &id,
                            &[VolumeStatus::Extending],
                            VolumeStatus::ErrorExtending,
                        )
                        .await;
                    Ok(())
                }
                ("snapshot", "create_snapshot") => {
                    if let Ok(snap) = self.db.snapshot(&id).await {
                        if snap.status == SnapshotStatus::Creating.as_str() {
                            let _ = self.driver.delete_snapshot(&snap.volume_id, &id).await;
                            let _ = self
                                .db
                                .update_snapshot_status_if(
                                    &id,
                                    &[SnapshotStatus::Creating],
                                    SnapshotStatus::Error,
                                )
                                .await;
                            report.failed_creates.push(id.clone());
                        }
                    }
                    Ok(())
                }
                ("snapshot", "delete_snapshot") => {
                    if let Ok(snap) = self.db.snapshot(&id).await {
                        if snap.status == SnapshotStatus::Deleting.as_str()
                            && self
                                .driver
                                .delete_snapshot(&snap.volume_id, &id)
                                .await
                                .is_ok()
                        {
                            let _ = self.db.soft_delete_snapshot(&id).await;
                            report.resumed_deletes.push(id.clone());
                        }
                    }
                    Ok(())
                }
                (kind, op) => {
                    tracing::warn!(kind, op, resource = %id, "unknown claim; releasing it");
                    Ok(())
                }
            };
            done?;
            self.db
                .release_work(&claim.resource_type, &id)
                .await
                .map_err(|e| e.to_string())?;
        }
        let known = self.db.live_volume_ids().await.map_err(|e| e.to_string())?;
        for name in self.driver.list_images().await.map_err(|e| e.to_string())? {
            if !self
                .driver
                .volume_id_of(&name)
                .is_some_and(|id| known.contains(&id))
            {
                tracing::warn!(image = %name, backend = %self.host, "image in the pool that no volume knows (left alone)");
                report.unknown_images.push(name);
            }
        }
        Ok(report)
    }

    /// Claim, ack, work, release.
    async fn claimed(
        &self,
        req: &Incoming,
        kind: &str,
        id: &str,
        operation: &str,
        work: impl std::future::Future<Output = Result<(), cinder_db::Error>>,
    ) -> Result<(), String> {
        let key = (kind.to_string(), id.to_string());
        let fresh = self
            .busy
            .lock()
            .map(|mut s| s.insert(key.clone()))
            .unwrap_or(false);
        if !fresh {
            // A duplicate delivery of work already running here: that handler owns it
            // (and a crash leaves its claim for reconciliation), so this copy is done.
            tracing::warn!(resource = %id, operation, "duplicate delivery of work in progress; acknowledged and dropped");
            return req.ack().await.map_err(|e| e.to_string());
        }
        let _busy = BusyGuard {
            set: &self.busy,
            key,
        };
        match self
            .db
            .claim_work(kind, id, operation, self.service_id)
            .await
        {
            Ok(_) => {}
            Err(cinder_db::Error::Conflict { found, .. }) => {
                // Another operation holds this resource: a conflicting request upstream.
                // Keep the message (dead-letter) rather than drop or spin on it.
                tracing::error!(resource = %id, holder = %found, "resource busy with another operation; rejecting the request");
                return req.reject().await.map_err(|e| e.to_string());
            }
            Err(e) => {
                // The claim could not be written: leave the message for a later try.
                tracing::error!(resource = %id, error = %e, "cannot claim the work; returning the message");
                return req.requeue().await.map_err(|e| e.to_string());
            }
        }
        req.ack().await.map_err(|e| e.to_string())?;
        let outcome = work.await;
        self.db
            .release_work(kind, id)
            .await
            .map_err(|e| e.to_string())?;
        outcome.map_err(|e| e.to_string())
    }

    /// A request that fails before any claim: final status, then ack.
    async fn fail_early(&self, req: &Incoming, volume_id: &str, status: VolumeStatus, why: String) {
        tracing::error!(volume_id, error = %why, "request cannot be served");
        let _ = self
            .db
            .update_volume_status_if(volume_id, &[VolumeStatus::Creating], status)
            .await;
        let _ = req.ack().await;
    }

    async fn answer<R: serde::Serialize>(
        &self,
        req: &Incoming,
        r: Result<R, RemoteError>,
    ) -> Result<(), String> {
        req.reply(r).await.map_err(|e| e.to_string())?;
        req.ack().await.map_err(|e| e.to_string())
    }
}
