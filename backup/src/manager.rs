//! The backup topic's requests, each claimed (`cinder-service`'s protocol) before it
//! runs and finished with its backup's final status, the source's and its claim's
//! release in one transaction.
//!
//! Cancellation: every stream runs under a token of its own, registered by backup id. A
//! delete of a backup that is still streaming here (forced: the API allows it from any
//! status) cancels that stream first; the service's shutdown cancels all of them once
//! the grace period is over. A cancelled stream is rolled back by the importer and its
//! backup ends `error` ("cancelled").

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cinder_common::ops::{ClaimKey, ResourceKind};
use cinder_common::shutdown::CancellationToken;
use cinder_db::entity::volumes;
use cinder_db::Db;
use cinder_drivers::rbd::RbdBackendConfig;
use cinder_rpc::messages::{BackupRequest, BackupTopic};
use cinder_rpc::Incoming;
use cinder_service::{Claim, Claims, Handler};
use rbd_driver::{ImageSpec, OpCtl, RbdDriver};
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use crate::ops::OpError;

/// Handles the backup topic.
pub struct BackupManager {
    pub(crate) db: Db,
    pub(crate) claims: Arc<Claims>,
    /// The backup cluster's driver (base images live in `pool`).
    pub(crate) target: RbdDriver,
    /// The backup pool.
    pub(crate) pool: String,
    /// The `[backends.*]` sections: where each backend's volumes live.
    backends: BTreeMap<String, serde_json::Value>,
    /// Connections to the volume backends' clusters, by backend name, made on first use.
    sources: tokio::sync::Mutex<HashMap<String, RbdDriver>>,
    /// Streams running here, by backup id.
    running: Mutex<HashMap<String, CancellationToken>>,
    /// Cancelled at shutdown (after the grace period): every stream's parent.
    pub(crate) streams: CancellationToken,
    /// How long a restore waits for the new volume it restores onto to be created.
    pub(crate) volume_wait: Duration,
}

impl BackupManager {
    /// A manager over its connected backup cluster.
    pub fn new(
        db: Db,
        claims: Arc<Claims>,
        target: RbdDriver,
        pool: String,
        backends: BTreeMap<String, serde_json::Value>,
        volume_wait: Duration,
    ) -> Self {
        BackupManager {
            db,
            claims,
            target,
            pool,
            backends,
            sources: Default::default(),
            running: Default::default(),
            streams: CancellationToken::new(),
            volume_wait,
        }
    }

    /// Cancels every running stream (shutdown's overrun).
    pub fn cancel_streams(&self) {
        self.streams.cancel();
    }

    /// Closes the volume clusters' connections (at shutdown, after the work).
    pub async fn close(&self) {
        self.sources.lock().await.clear();
    }

    /// The control of a stream of `backup_id`: cancelled by a delete or shutdown.
    pub(crate) fn stream_ctl(&self, backup_id: &str) -> (OpCtl, Running<'_>) {
        let token = self.streams.child_token();
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(backup_id.to_string(), token.clone());
        (
            OpCtl::with_cancel(token),
            Running {
                map: &self.running,
                id: backup_id.to_string(),
            },
        )
    }

    /// Cancels the stream of `backup_id` running here, if any.
    fn cancel_stream(&self, backup_id: &str) -> bool {
        match self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(backup_id)
        {
            Some(t) => {
                t.cancel();
                true
            }
            None => false,
        }
    }

    /// The driver of the backend holding `volume`, and its image.
    pub(crate) async fn volume_image(
        &self,
        volume: &volumes::Model,
    ) -> Result<(RbdDriver, ImageSpec), OpError> {
        let host = volume.host.as_deref().unwrap_or_default();
        let backend = host
            .split_once('@')
            .map(|(_, b)| b.split('#').next().unwrap_or(b))
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                OpError::Invalid(format!(
                    "volume {} is on no backend (host {host:?})",
                    volume.id
                ))
            })?;
        let mut sources = self.sources.lock().await;
        let driver = match sources.get(backend) {
            Some(d) => d.clone(),
            None => {
                let cfg = RbdBackendConfig::from_backends(&self.backends, backend)
                    .map_err(OpError::Invalid)?;
                let d = tokio::time::timeout(Duration::from_secs(60), RbdDriver::connect(cfg.rbd))
                    .await
                    .map_err(|_| {
                        OpError::Invalid(format!(
                            "the cluster of backend {backend} did not answer within 60 s"
                        ))
                    })??;
                sources.insert(backend.to_string(), d.clone());
                d
            }
        };
        let spec = ImageSpec::new(&driver.config().rbd_pool, format!("volume-{}", volume.id));
        Ok((driver, spec))
    }

    /// A base image in the backup pool.
    pub(crate) fn base_spec(&self, name: &str) -> ImageSpec {
        ImageSpec::new(&self.pool, name)
    }
}

impl BackupManager {
    /// What a create or restore holds busy besides its backup (the volume or snapshot
    /// backed up, the volume restored onto), as the failure ending that releases it.
    async fn held_source(&self, body: &BackupRequest) -> Option<cinder_db::Ending> {
        use cinder_common::ops::{self, Outcome};
        match body {
            BackupRequest::CreateBackup(c) => {
                let b = self.db.backup_including_deleted(&c.backup_id).await.ok()?;
                Some(crate::ops::source_ending(&b, Outcome::Failed))
            }
            BackupRequest::RestoreBackup(r) => Some(cinder_db::Ending::volume(
                &ops::volume::RESTORE,
                &r.volume_id,
                Outcome::Failed,
            )),
            BackupRequest::DeleteBackup(_) => None,
        }
    }
}

/// A registered stream; unregisters on drop.
pub(crate) struct Running<'a> {
    map: &'a Mutex<HashMap<String, CancellationToken>>,
    id: String,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

fn key(id: &str, operation: &'static str) -> ClaimKey {
    ClaimKey {
        resource: ResourceKind::Backup,
        id: id.to_string(),
        operation,
    }
}

impl Handler<BackupTopic> for BackupManager {
    async fn handle(self: Arc<Self>, req: Incoming<BackupTopic>, intake: OwnedSemaphorePermit) {
        let span = tracing::info_span!("backup", request_id = %req.envelope.request_id);
        async move {
            let body = req.envelope.body.clone();
            let (id, op) = match &body {
                BackupRequest::CreateBackup(c) => (c.backup_id.clone(), cinder_common::ops::backup::CREATE.name),
                BackupRequest::DeleteBackup(d) => {
                    // A forced delete of a backup still streaming here: stop the stream
                    // first, so the delete's claim does not wait for it.
                    if self.cancel_stream(&d.backup_id) {
                        tracing::warn!(backup_id = %d.backup_id, "deleting a backup whose stream runs: cancelling it");
                    }
                    (d.backup_id.clone(), cinder_common::ops::backup::DELETE.name)
                }
                BackupRequest::RestoreBackup(r) => (r.backup_id.clone(), cinder_common::ops::backup::RESTORE.name),
            };
            let k = key(&id, op);
            let busy = match self.claims.claim(&req, &k).await {
                Ok(Claim::Run(busy)) => busy,
                Ok(Claim::Duplicate | Claim::Rejected) => return,
                Err(e) => {
                    tracing::warn!(claim = %k, error = %e, "cannot claim; the broker redelivers it");
                    return;
                }
            };
            // Claimed and acknowledged: the intake slot goes back, the stream budget is
            // the backup driver's long lane.
            drop(intake);
            let ending = match &body {
                BackupRequest::CreateBackup(_) => self.create_backup(&id).await,
                BackupRequest::DeleteBackup(_) => self.delete_backup(&id).await,
                BackupRequest::RestoreBackup(r) => {
                    self.restore_backup(&id, &r.volume_id, r.new_volume).await
                }
            };
            match ending {
                Ok(ending) => match self.claims.finish(&k, &ending).await {
                    Ok(cinder_service::Finished::MovedOn { found }) => {
                        // The backup moved on under the work (a forced delete cancelled
                        // it): the source the work held goes back all the same.
                        tracing::warn!(claim = %k, ?found, "the backup moved on; releasing what the work held");
                        if let Some(source) = self.held_source(&body).await {
                            if let Err(e) = self.db.finish(None, &source).await {
                                tracing::debug!(error = %e, "the source had moved on too");
                            }
                        }
                    }
                    Ok(f) => {
                        tracing::info!(claim = %k, done = f.done(), "backup work finished");
                        if matches!(body, BackupRequest::CreateBackup(_)) {
                            let me = self.clone();
                            let id = id.clone();
                            tokio::spawn(async move { me.trim_source_snaps(&id).await });
                        }
                    }
                    Err(e) => {
                        tracing::error!(claim = %k, error = %e, "cannot record the end of the work; recovery retries it");
                        self.claims.recover_later(busy);
                    }
                },
                Err(e) => {
                    tracing::error!(claim = %k, error = %e, "the work could not reach an end; recovery retries it");
                    self.claims.recover_later(busy);
                }
            }
        }
        .instrument(span)
        .await
    }
}
