//! The operations: create (full or incremental), delete and restore, each returning
//! the [`Ending`] its claim finishes with, and their resume after a crash.
//!
//! - **Create**: a snapshot of the source (`backup.<id>.snap.<ts>`, or the user's
//!   snapshot for a backup of a snapshot), streamed as an RBD diff into the base image
//!   (a new one for a full backup, the parent's for an incremental, whose snapshots are
//!   checked first on both sides: a missing one fails with its name, never a silent
//!   full), ending with a base snapshot of the same name: the restore point. The chain
//!   record goes into `service_metadata` with the final status. Then the source keeps
//!   only the snapshot the next incremental needs (the newest backup's).
//! - **Delete**: the restore point, the base image once it has none, the source
//!   snapshot if it is the backup's own.
//! - **Restore**: the target is emptied (resized to 0), the restore point is streamed
//!   into it with its digest checked before the stream may end, and it is grown back to
//!   the volume's size.
//!
//! A failure undoes what the operation made (its source snapshot; a full backup's base
//! image; the importer rolls an incremental back), and ends the backup `error` with the
//! reason in `fail_reason`.

use std::time::Duration;

use chrono::Utc;
use cinder_common::ops::{self, ClaimKey, Outcome, ResourceKind};
use cinder_common::status::VolumeStatus;
use cinder_db::entity::{backups, volumes};
use cinder_db::{BackupChanges, Ending};
use cinder_service::{Recover, Resumed};
use rbd_driver::diff::ContentDigest;
use rbd_driver::{
    CreateOptions, Digesting, ErrorKind, ImageSpec, OpCtl, Progress, RbdDriver, RemoveMode,
};

use crate::chain::{backup_snap, base_image, snap_owner, ChainRecord};
use crate::manager::BackupManager;

const GIB: u64 = 1 << 30;

/// Why an operation could not go on.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The database failed: the work is retried by recovery.
    #[error(transparent)]
    Db(#[from] cinder_db::Error),
    /// The storage refused or failed.
    #[error(transparent)]
    Rbd(#[from] rbd_driver::Error),
    /// The request cannot be carried out (the reason says why).
    #[error("{0}")]
    Invalid(String),
}

impl OpError {
    /// The reason a user reads (`fail_reason`).
    fn reason(&self) -> String {
        match self {
            OpError::Rbd(e) if e.kind() == ErrorKind::Cancelled => {
                "cancelled: the backup was deleted or the backup service stopped".into()
            }
            OpError::Rbd(rbd_driver::Error::DigestMismatch {
                target,
                expected,
                actual,
            }) => format!(
                "the data of {target} does not match the backup's checksum (expected {expected}, found {actual}): the backup is damaged"
            ),
            e => e.to_string(),
        }
    }

    /// Whether the database failed (the work is retried rather than failed).
    fn is_db(&self) -> bool {
        matches!(self, OpError::Db(_))
    }
}

/// What a create made, to undo on failure.
#[derive(Default)]
struct Made {
    /// The source snapshot it took (its own).
    source_snap: Option<(RbdDriver, ImageSpec, String)>,
    /// The base image it created (a full backup).
    base: Option<ImageSpec>,
}

/// The ending of the backup's source: the volume's backup, or the snapshot's.
pub(crate) fn source_ending(b: &backups::Model, outcome: Outcome) -> Ending {
    match &b.snapshot_id {
        Some(s) => Ending::snapshot(&ops::snapshot::BACKUP, s, outcome),
        None => Ending::volume(&ops::volume::BACKUP, &b.volume_id, outcome),
    }
}

fn now_secs() -> f64 {
    let now = Utc::now();
    now.timestamp() as f64 + f64::from(now.timestamp_subsec_millis()) / 1000.0
}

impl BackupManager {
    /// Writes the stream's progress to the row while it runs (at most once a second).
    fn watch_progress(&self, id: &str, ctl: OpCtl) -> (OpCtl, tokio::task::JoinHandle<()>) {
        let (p, mut rx) = Progress::channel();
        let (db, id) = (self.db.clone(), id.to_string());
        let task = tokio::spawn(async move {
            let mut last = String::new();
            while rx.changed().await.is_ok() {
                let r = *rx.borrow_and_update();
                if r.total == 0 {
                    continue;
                }
                let pct = format!("{}%", (r.done.min(r.total) * 100 / r.total).min(99));
                if pct != last {
                    if let Err(e) = db.set_backup_progress(&id, &pct).await {
                        tracing::debug!(error = %e, "cannot write the progress");
                    }
                    last = pct;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        (ctl.with_progress(p), task)
    }

    /// `create_backup`.
    pub(crate) async fn create_backup(&self, id: &str) -> Result<Ending, OpError> {
        let b = match self.db.backup(id).await {
            Ok(b) => b,
            // Gone meanwhile: the finish finds it gone and only releases the claim.
            Err(cinder_db::Error::NotFound { .. }) => {
                return Ok(Ending::backup(&ops::backup::CREATE, id, Outcome::Failed))
            }
            Err(e) => return Err(e.into()),
        };
        if b.status != cinder_common::status::BackupStatus::Creating {
            // Deleted (forced) before the work began: nothing to make; the finish finds
            // it moved on and the source is released.
            return Ok(Ending::backup(&ops::backup::CREATE, id, Outcome::Failed));
        }
        let mut made = Made::default();
        let r = self.run_create(&b, &mut made).await;
        match r {
            Ok(record) => {
                let ending = Ending::backup(&ops::backup::CREATE, id, Outcome::Done)
                    .with_backup(BackupChanges {
                        service_metadata: Some(record.to_json()),
                        fail_reason: Some(None),
                        progress: Some("100%".into()),
                        ..Default::default()
                    })
                    .and_if_busy(source_ending(&b, Outcome::Done));
                Ok(ending)
            }
            Err(e) => {
                tracing::error!(backup_id = %id, error = %e, "backup failed");
                self.undo(made).await;
                if e.is_db() {
                    return Err(e);
                }
                Ok(Ending::backup(&ops::backup::CREATE, id, Outcome::Failed)
                    .with_backup(BackupChanges {
                        fail_reason: Some(Some(e.reason())),
                        ..Default::default()
                    })
                    .and_if_busy(source_ending(&b, Outcome::Failed)))
            }
        }
    }

    async fn undo(&self, made: Made) {
        if let Some((driver, spec, snap)) = made.source_snap {
            if let Err(e) = driver
                .remove_snapshot(&spec.snap(&snap), &OpCtl::new())
                .await
            {
                tracing::error!(error = %e, %snap, "cannot remove the failed backup's source snapshot; the next backup of the volume removes it");
            }
        }
        if let Some(base) = made.base {
            if let Err(e) = self
                .target
                .remove_image(&base, RemoveMode::PurgeNow, &OpCtl::new())
                .await
            {
                tracing::error!(error = %e, base = %base, "cannot remove the failed backup's base image");
            }
        }
    }

    async fn run_create(
        &self,
        b: &backups::Model,
        made: &mut Made,
    ) -> Result<ChainRecord, OpError> {
        let started = std::time::Instant::now();
        let v = self.db.volume(&b.volume_id).await?;
        let image_metadata = self
            .db
            .image_metadata(match &b.snapshot_id {
                Some(s) => cinder_db::ImageMetadataOf::Snapshot(s),
                None => cinder_db::ImageMetadataOf::Volume(&v.id),
            })
            .await?;
        let (src, spec) = self.volume_image(&v).await?;
        let (source_snap, owned) = match &b.snapshot_id {
            Some(s) => (format!("snapshot-{s}"), false),
            None => (backup_snap(&b.id, now_secs()), true),
        };
        let parent = match &b.parent_id {
            None => None,
            Some(p) => {
                let pb = self.db.backup(p).await?;
                Some(ChainRecord::of(pb.service_metadata.as_deref()).ok_or_else(|| {
                    OpError::Invalid(format!(
                        "the parent backup {p} has no chain record: an incremental backup cannot build on it"
                    ))
                })?)
            }
        };
        // Everything an incremental builds on, checked before anything changes.
        let since = match &parent {
            None => None,
            Some(rec) => {
                let on_source = src.list_snapshots(&spec).await?;
                if !on_source.iter().any(|s| s.name == rec.source_snap) {
                    return Err(OpError::Invalid(format!(
                        "incremental backup impossible: snapshot {} of the parent backup is gone from {spec} (removed out of band?); take a full backup",
                        rec.source_snap
                    )));
                }
                let base = self.base_spec(&rec.base);
                let on_base = match self.target.list_snapshots(&base).await {
                    Ok(s) => s,
                    Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(e.into()),
                };
                if !on_base.iter().any(|s| s.name == rec.snap) {
                    return Err(OpError::Invalid(format!(
                        "incremental backup impossible: restore point {} of the parent backup is gone from {base} (removed out of band?); take a full backup",
                        rec.snap
                    )));
                }
                let digest = rec.content_digest().ok_or_else(|| {
                    OpError::Invalid(format!(
                        "the parent backup's checksum {:?} does not read",
                        rec.digest
                    ))
                })?;
                Some((rec.source_snap.clone(), digest))
            }
        };
        if !owned {
            let on_source = src.list_snapshots(&spec).await?;
            if !on_source.iter().any(|s| s.name == source_snap) {
                return Err(OpError::Invalid(format!(
                    "snapshot {source_snap} is gone from {spec}"
                )));
            }
        }
        let base_name = match &parent {
            Some(rec) => rec.base.clone(),
            None => base_image(&v.id, &b.id),
        };
        let base = self.base_spec(&base_name);
        if owned {
            src.create_snapshot(&spec.snap(&source_snap)).await?;
            made.source_snap = Some((src.clone(), spec.clone(), source_snap.clone()));
        }
        if parent.is_none() {
            self.target
                .create_image(
                    &base,
                    &CreateOptions {
                        size: 0,
                        ..Default::default()
                    },
                )
                .await?;
            made.base = Some(base.clone());
        }
        let prepared = started.elapsed();
        let (ctl, _running) = self.stream_ctl(&b.id);
        let (ctl, progress) = self.watch_progress(&b.id, ctl);
        let digesting = match &since {
            Some((_, d)) => Digesting::Since(*d),
            None => Digesting::Full,
        };
        let sent = src
            .send_diff(
                &spec,
                &source_snap,
                since.as_ref().map(|(s, _)| s.as_str()),
                Some(&source_snap),
                digesting,
                &self.target,
                &base,
                &ctl,
            )
            .await;
        progress.abort();
        let stats = sent?;
        tracing::info!(
            backup_id = %b.id,
            incremental = parent.is_some(),
            stream_bytes = stats.export.stream_bytes,
            data_bytes = stats.export.data_bytes,
            digest = %stats.digest,
            prepare_ms = prepared.as_millis() as u64,
            stream_ms = (started.elapsed() - prepared).as_millis() as u64,
            "backup streamed"
        );
        Ok(ChainRecord {
            pool: self.pool.clone(),
            fsid: self.target.fsid().to_string(),
            base: base_name,
            snap: source_snap.clone(),
            source_snap,
            source_owned: owned,
            digest: stats.digest.to_string(),
            size_bytes: stats.digest.size,
            stream_bytes: stats.export.stream_bytes,
            image_metadata: Some(image_metadata).filter(|m| !m.is_empty()),
        })
    }

    /// After a backup became available: the source snapshots no future incremental
    /// needs go (each removal is a monitor round, about a second: not on the backup's
    /// own time). A failure is only logged: the next backup of the volume tries again.
    pub(crate) async fn trim_source_snaps(&self, backup_id: &str) {
        let t = std::time::Instant::now();
        let r = match self.db.backup(backup_id).await {
            Ok(b) => self.keep_only_newest_source_snap(&b).await,
            Err(e) => Err(e.into()),
        };
        match r {
            Ok(()) => tracing::info!(
                backup_id,
                ms = t.elapsed().as_millis() as u64,
                "source snapshots trimmed"
            ),
            Err(e) => {
                tracing::warn!(backup_id, error = %e, "cannot remove source snapshots no incremental needs; the next backup tries again")
            }
        }
    }

    /// Removes the source snapshots of `b`'s volume that belong to backups (ours, not
    /// creating) other than the newest available one.
    async fn keep_only_newest_source_snap(&self, b: &backups::Model) -> Result<(), OpError> {
        let v = match self.db.volume(&b.volume_id).await {
            Ok(v) => v,
            Err(cinder_db::Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let (src, spec) = self.volume_image(&v).await?;
        // Snapshots first, rows second: every snapshot listed belongs to a row that
        // exists by then (the API writes the row before the service takes the
        // snapshot), so a backup starting meanwhile is seen `creating` and kept.
        let snaps = match src.list_snapshots(&spec).await {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let all = self.db.backups_of_volume(&v.id).await?;
        // The newest available backup's source snapshot is what the next incremental
        // starts from; a backup being created keeps its own.
        let when = |x: &backups::Model| (x.data_timestamp.unwrap_or(x.created_at), x.created_at);
        let keep: Vec<String> = all
            .iter()
            .filter(|x| x.status == cinder_common::status::BackupStatus::Available)
            .max_by_key(|x| when(x))
            .and_then(|n| ChainRecord::of(n.service_metadata.as_deref()))
            .map(|r| r.source_snap)
            .into_iter()
            .collect();
        let creating: Vec<&str> = all
            .iter()
            .filter(|x| x.status == cinder_common::status::BackupStatus::Creating && x.id != b.id)
            .map(|x| x.id.as_str())
            .collect();
        for s in snaps {
            let Some(owner) = snap_owner(&s.name) else {
                continue;
            };
            if keep.contains(&s.name) || creating.contains(&owner) {
                continue;
            }
            tracing::info!(snap = %s.name, volume_id = %v.id, "removing a source snapshot no incremental needs");
            src.remove_snapshot(&spec.snap(&s.name), &OpCtl::new())
                .await?;
        }
        Ok(())
    }

    /// `delete_backup`.
    pub(crate) async fn delete_backup(&self, id: &str) -> Result<Ending, OpError> {
        let b = match self.db.backup(id).await {
            Ok(b) => b,
            Err(cinder_db::Error::NotFound { .. }) => {
                return Ok(Ending::backup(&ops::backup::DELETE, id, Outcome::Done))
            }
            Err(e) => return Err(e.into()),
        };
        match self.run_delete(&b).await {
            Ok(()) => Ok(Ending::backup(&ops::backup::DELETE, id, Outcome::Done)),
            Err(e) if e.is_db() => Err(e),
            Err(e) => {
                tracing::error!(backup_id = %id, error = %e, "backup delete failed");
                Ok(
                    Ending::backup(&ops::backup::DELETE, id, Outcome::Failed).with_backup(
                        BackupChanges {
                            fail_reason: Some(Some(e.reason())),
                            ..Default::default()
                        },
                    ),
                )
            }
        }
    }

    async fn run_delete(&self, b: &backups::Model) -> Result<(), OpError> {
        let Some(rec) = ChainRecord::of(b.service_metadata.as_deref()) else {
            // Never completed: what a create left behind (a crash) goes.
            return self.remove_create_leftovers(b).await;
        };
        let base = self.base_spec(&rec.base);
        self.target
            .remove_snapshot(&base.snap(&rec.snap), &OpCtl::new())
            .await?;
        self.remove_base_if_empty(&base).await?;
        if rec.source_owned {
            match self.db.volume(&b.volume_id).await {
                Ok(v) => {
                    let (src, spec) = self.volume_image(&v).await?;
                    src.remove_snapshot(&spec.snap(&rec.source_snap), &OpCtl::new())
                        .await?;
                }
                Err(cinder_db::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn remove_base_if_empty(&self, base: &ImageSpec) -> Result<(), OpError> {
        let snaps = match self.target.list_snapshots(base).await {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if snaps.is_empty() {
            self.target
                .remove_image(base, RemoveMode::PurgeNow, &OpCtl::new())
                .await?;
        }
        Ok(())
    }

    /// What an interrupted create of `b` may have left: its own snapshots on the source
    /// and on the base image, a full backup's base image, an incremental's base image
    /// head written past the parent's restore point (rolled back to it).
    async fn remove_create_leftovers(&self, b: &backups::Model) -> Result<(), OpError> {
        let mine = |name: &str| snap_owner(name) == Some(b.id.as_str());
        match self.db.volume(&b.volume_id).await {
            Ok(v) => {
                let (src, spec) = self.volume_image(&v).await?;
                match src.list_snapshots(&spec).await {
                    Ok(snaps) => {
                        for s in snaps.iter().filter(|s| mine(&s.name)) {
                            src.remove_snapshot(&spec.snap(&s.name), &OpCtl::new())
                                .await?;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(cinder_db::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        match &b.parent_id {
            None => {
                let base = self.base_spec(&base_image(&b.volume_id, &b.id));
                for s in self.target.list_snapshots(&base).await.unwrap_or_default() {
                    self.target
                        .remove_snapshot(&base.snap(&s.name), &OpCtl::new())
                        .await?;
                }
                self.target
                    .remove_image(&base, RemoveMode::PurgeNow, &OpCtl::new())
                    .await?;
            }
            Some(p) => {
                let parent = self.db.backup(p).await;
                let rec = parent
                    .ok()
                    .and_then(|pb| ChainRecord::of(pb.service_metadata.as_deref()));
                if let Some(rec) = rec {
                    let base = self.base_spec(&rec.base);
                    let snaps = match self.target.list_snapshots(&base).await {
                        Ok(s) => s,
                        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                        Err(e) => return Err(e.into()),
                    };
                    for s in snaps.iter().filter(|s| mine(&s.name)) {
                        self.target
                            .remove_snapshot(&base.snap(&s.name), &OpCtl::new())
                            .await?;
                    }
                    if snaps.iter().any(|s| s.name == rec.snap) {
                        self.target
                            .rollback_to_snapshot(&base.snap(&rec.snap), &OpCtl::new())
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// `restore_backup`.
    pub(crate) async fn restore_backup(
        &self,
        id: &str,
        volume_id: &str,
        new_volume: bool,
    ) -> Result<Ending, OpError> {
        let fail = |reason: String| {
            Ending::backup(&ops::backup::RESTORE, id, Outcome::Failed)
                .with_backup(BackupChanges {
                    fail_reason: Some(Some(reason)),
                    ..Default::default()
                })
                .and_if_busy(Ending::volume(
                    &ops::volume::RESTORE,
                    volume_id,
                    Outcome::Failed,
                ))
        };
        let b = match self.db.backup(id).await {
            Ok(b) => b,
            Err(cinder_db::Error::NotFound { .. }) => {
                return Ok(fail(format!("backup {id} is gone")))
            }
            Err(e) => return Err(e.into()),
        };
        if b.status != cinder_common::status::BackupStatus::Restoring {
            return Ok(fail(format!("backup {id} is {} now", b.status)));
        }
        if new_volume {
            if let Err(reason) = self.wait_for_new_volume(volume_id).await? {
                return Ok(fail(reason));
            }
        }
        let v = match self.db.volume(volume_id).await {
            Ok(v) => v,
            Err(cinder_db::Error::NotFound { .. }) => {
                return Ok(fail(format!("volume {volume_id} is gone")))
            }
            Err(e) => return Err(e.into()),
        };
        match self.run_restore(&b, &v).await {
            Ok(()) => Ok(Ending::backup(&ops::backup::RESTORE, id, Outcome::Done)
                .with_backup(BackupChanges {
                    restore_volume_id: Some(Some(volume_id.to_string())),
                    progress: Some("100%".into()),
                    ..Default::default()
                })
                .and_if_busy(Ending::volume(
                    &ops::volume::RESTORE,
                    volume_id,
                    Outcome::Done,
                ))),
            Err(e) if e.is_db() => Err(e),
            Err(e) => {
                tracing::error!(backup_id = %id, volume_id, error = %e, "restore failed");
                Ok(fail(e.reason()))
            }
        }
    }

    /// Waits for the volume the API created for a restore to be created, then begins
    /// the restore on it. `Ok(Err(reason))`: it will not be.
    async fn wait_for_new_volume(&self, volume_id: &str) -> Result<Result<(), String>, OpError> {
        let deadline = tokio::time::Instant::now() + self.volume_wait;
        loop {
            match self.db.volume(volume_id).await {
                Ok(v) if v.status == VolumeStatus::Available => {
                    return match self.db.begin(&ops::volume::RESTORE, volume_id).await {
                        Ok(()) => Ok(Ok(())),
                        Err(cinder_db::Error::Conflict { found, .. }) => Ok(Err(format!(
                            "volume {volume_id} became {found} before the restore began"
                        ))),
                        Err(e) => Err(e.into()),
                    };
                }
                // Already begun (a redelivery after the begin).
                Ok(v) if v.status == VolumeStatus::RestoringBackup => return Ok(Ok(())),
                Ok(v) if v.status != VolumeStatus::Creating => {
                    return Ok(Err(format!(
                        "the volume {volume_id} created for the restore is {}",
                        v.status
                    )))
                }
                Ok(_) => {}
                Err(cinder_db::Error::NotFound { .. }) => {
                    return Ok(Err(format!("volume {volume_id} is gone")))
                }
                Err(e) => return Err(e.into()),
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Err(format!(
                    "volume {volume_id} was not created within {} s",
                    self.volume_wait.as_secs()
                )));
            }
            tokio::select! {
                _ = self.streams.cancelled() => return Ok(Err("cancelled: the backup service stopped".into())),
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    async fn run_restore(&self, b: &backups::Model, v: &volumes::Model) -> Result<(), OpError> {
        let rec = ChainRecord::of(b.service_metadata.as_deref())
            .ok_or_else(|| OpError::Invalid(format!("backup {} has no restore point", b.id)))?;
        let digest: ContentDigest = rec.content_digest().ok_or_else(|| {
            OpError::Invalid(format!(
                "the backup's checksum {:?} does not read",
                rec.digest
            ))
        })?;
        let want = u64::try_from(v.size).unwrap_or(0) * GIB;
        if want < rec.size_bytes {
            return Err(OpError::Invalid(format!(
                "volume {} ({} GiB) is smaller than the backup ({} bytes)",
                v.id, v.size, rec.size_bytes
            )));
        }
        let (dst, spec) = self.volume_image(v).await?;
        let base = self.base_spec(&rec.base);
        let (ctl, _running) = self.stream_ctl(&b.id);
        let (ctl, progress) = self.watch_progress(&b.id, ctl);
        // Emptied first: a full stream writes only the data the restore point holds.
        dst.resize(&spec, 0, true, &ctl).await?;
        let sent = self
            .target
            .send_diff(
                &base,
                &rec.snap,
                None,
                None,
                Digesting::Expect(digest),
                &dst,
                &spec,
                &ctl,
            )
            .await;
        progress.abort();
        let stats = sent?;
        dst.resize(&spec, want, false, &ctl).await?;
        // The image metadata the backup kept replaces the volume's (Cinder's restore of
        // `volume-glance-metadata`), and the volume is bootable again.
        if let Some(m) = &rec.image_metadata {
            let of = cinder_db::ImageMetadataOf::Volume(&v.id);
            self.db.replace_image_metadata(of, m).await?;
            self.db.set_bootable(&v.id, true).await?;
        }
        tracing::info!(backup_id = %b.id, volume_id = %v.id, stream_bytes = stats.export.stream_bytes, "restored");
        Ok(())
    }
}

impl Recover for BackupManager {
    type Report = ();
    type Error = OpError;

    async fn resume(&self, key: &ClaimKey, _: &mut ()) -> Result<Resumed, OpError> {
        if key.resource != ResourceKind::Backup {
            return Ok(Resumed::NotMine);
        }
        let id = key.id.as_str();
        let ending = if key.operation == ops::backup::CREATE.name {
            let b = match self.db.backup(id).await {
                Ok(b) => b,
                Err(cinder_db::Error::NotFound { .. }) => {
                    self.claims.release(key).await?;
                    return Ok(Resumed::Done);
                }
                Err(e) => return Err(e.into()),
            };
            // Whatever it made goes: no half restore point, no stray source snapshot.
            self.remove_create_leftovers(&b).await?;
            Ending::backup(&ops::backup::CREATE, id, Outcome::Failed)
                .with_backup(BackupChanges {
                    fail_reason: Some(Some(
                        "interrupted: the backup service stopped while the backup ran".into(),
                    )),
                    ..Default::default()
                })
                .and_if_busy(source_ending(&b, Outcome::Failed))
        } else if key.operation == ops::backup::DELETE.name {
            self.delete_backup(id).await?
        } else if key.operation == ops::backup::RESTORE.name {
            let b = self.db.backup(id).await.ok();
            let volume = b.and_then(|b| b.restore_volume_id);
            let mut e = Ending::backup(&ops::backup::RESTORE, id, Outcome::Failed).with_backup(
                BackupChanges {
                    fail_reason: Some(Some(
                        "interrupted: the backup service stopped while the restore ran".into(),
                    )),
                    ..Default::default()
                },
            );
            if let Some(v) = volume {
                e = e.and_if_busy(Ending::volume(&ops::volume::RESTORE, &v, Outcome::Failed));
            }
            e
        } else {
            return Ok(Resumed::NotMine);
        };
        self.claims.finish(key, &ending).await?;
        Ok(Resumed::Done)
    }
}
