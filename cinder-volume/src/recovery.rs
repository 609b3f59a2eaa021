//! The volume service's side of recovery (`cinder_service::Recovery` runs it): each
//! interrupted claim is carried to its end or failed cleanly by its own operation's
//! resume (`crate::ops`); at start, images in the pool that no volume row knows are
//! reported, never deleted.
//!
//! An image a killed predecessor still had open keeps its watch until the OSDs time it
//! out (`osd_client_watch_timeout`, 30 s by default), and Ceph refuses to remove a
//! watched image: such work is retried in the background for [`RESUME_BUSY_FOR`], then
//! it fails with its operation's failure status.

use std::sync::Arc;
use std::time::Duration;

use cinder_common::ops::{ClaimKey, ResourceKind};
use cinder_db::Ending;
use cinder_drivers::VolumeDriver;
pub(crate) use cinder_service::Resumed;
use cinder_service::{Recover, Recovery};

use crate::manager::{ManagerError, VolumeManager};

/// What reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Interrupted creates now in `error`, their half-made images removed.
    pub failed_creates: Vec<String>,
    /// Interrupted creates run again from the source their rows record (blank, an
    /// available snapshot or volume), their half-made images removed first.
    pub rerun_creates: Vec<String>,
    /// Interrupted deletes carried to their end.
    pub resumed_deletes: Vec<String>,
    /// Other interrupted work failed cleanly (extends, reverts, retypes, manages not
    /// yet renamed).
    pub failed_others: Vec<String>,
    /// Other interrupted work carried to its end (manages already renamed, unmanages).
    pub finished_others: Vec<String>,
    /// Interrupted work carried on in the background: creates run again (they never
    /// hold up serving), and work whose image the previous process still had open,
    /// retried until Ceph drops the dead watch.
    pub waiting: Vec<String>,
    /// Images in the pool that no volume row knows: reported, never deleted.
    pub unknown_images: Vec<String>,
}

/// How long recovery retries work on an image the killed predecessor still watches:
/// twice Ceph's default `osd_client_watch_timeout`.
pub const RESUME_BUSY_FOR: Duration = Duration::from_secs(60);

/// Ends interrupted work with `ending` (its claim released with it); when the resource
/// moved, its id goes to `into` (a list of the report).
pub(crate) async fn settle<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    ending: &Ending,
    into: &mut Vec<String>,
) -> Result<Resumed, ManagerError> {
    if m.finish_or_release(key, ending).await? {
        into.push(key.id.clone());
    }
    Ok(Resumed::Done)
}

impl<D: VolumeDriver> Recover for VolumeManager<D> {
    type Report = Reconciled;
    type Error = ManagerError;

    async fn resume(
        &self,
        key: &ClaimKey,
        report: &mut Reconciled,
    ) -> Result<Resumed, ManagerError> {
        use crate::ops as o;
        let op = key.operation;
        match key.resource {
            ResourceKind::Volume if op == o::create::OP.name => {
                o::create::resume(self, key, report).await
            }
            ResourceKind::Volume if op == o::delete::OP.name => {
                o::delete::resume(self, key, report).await
            }
            ResourceKind::Volume if op == o::extend::OP.name => {
                o::extend::resume(self, key, report).await
            }
            ResourceKind::Volume if op == o::revert::OP.name => {
                o::revert::resume(self, key, report).await
            }
            ResourceKind::Volume if op == o::retype::OP.name => {
                o::retype::resume(self, key, report).await
            }
            ResourceKind::Volume if op == o::manage::MANAGE.name => {
                o::manage::resume_manage(self, key, report).await
            }
            ResourceKind::Volume if op == o::reimage::OP.name => {
                o::reimage::resume(self, key, report).await
            }
            ResourceKind::Volume if op == o::upload::OP.name => {
                o::upload::resume(self, key, report).await
            }
            ResourceKind::Volume if op == o::manage::UNMANAGE.name => {
                o::manage::resume_unmanage(self, key, report).await
            }
            ResourceKind::Snapshot if op == o::snapshot::CREATE.name => {
                o::snapshot::resume_create(self, key, report).await
            }
            ResourceKind::Snapshot if op == o::snapshot::DELETE.name => {
                o::snapshot::resume_delete(self, key, report).await
            }
            // Another service's kind of work (a backup, say).
            _ => Ok(Resumed::NotMine),
        }
    }
}

/// Start-up reconciliation, before serving: this service's claims through `recovery`,
/// then the pool's images against the volume rows.
pub async fn reconcile<D: VolumeDriver>(
    manager: &Arc<VolumeManager<D>>,
    recovery: &Recovery<VolumeManager<D>>,
) -> Result<Reconciled, ManagerError> {
    let mut report = Reconciled::default();
    let waiting = recovery.own_claims(&mut report).await?;
    report.waiting = waiting.into_iter().map(|k| k.id).collect();
    // From here on long resumes run where they are asked (the background retry).
    manager
        .reconciled
        .store(true, std::sync::atomic::Ordering::Release);
    let known = manager.db.live_volume_ids().await?;
    for name in manager.driver.list_images().await? {
        if !manager
            .driver
            .volume_id_of(&name)
            .is_some_and(|id| known.contains(&id))
        {
            tracing::warn!(image = %name, backend = %manager.host, "image in the pool that no volume knows (left alone)");
            report.unknown_images.push(name);
        }
    }
    Ok(report)
}
