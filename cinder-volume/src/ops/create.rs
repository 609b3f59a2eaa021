//! `create_volume`: blank, or a clone of a snapshot, a volume or a Glance image in RBD.
//! A crash mid-create leaves a half-made image: resume removes it and runs the create
//! again from the source its row records when that is safe, else fails it.

use cinder_common::settings::Secret;
use std::sync::Arc;

use cinder_common::messages;
use cinder_common::ops::{volume, ClaimKey, Operation, Outcome};
use cinder_common::status::VolumeStatus;
use cinder_db::{Ending, VolumeChanges};
use cinder_rpc::messages::{
    CreateVolume, RequestContext, ScheduleCreateVolume, SchedulerTopic, VolumeTopic,
};
use cinder_rpc::Incoming;
use cinder_service::Finished;

use crate::manager::{Admission, ManagerError, Ran, VolumeManager};
use crate::recovery::{settle, Reconciled, Resumed};
use cinder_drivers::{CreateSource, DriverError, DriverErrorKind, VolumeDriver};

/// The operation.
pub const OP: &Operation<VolumeStatus> = &volume::CREATE;

/// Where the new volume's data comes from; a snapshot's with the clone depth its
/// volume's row records (unknown: as deep as can be, so it counts as long work). The
/// driver decides from it whether the create is long work (a clone that no flatten
/// follows is short).
pub(crate) async fn source<D: VolumeDriver>(
    m: &VolumeManager<D>,
    c: &CreateVolume,
) -> Result<CreateSource, cinder_db::Error> {
    Ok(match (&c.snapshot_id, &c.source_volid, &c.image_location) {
        (None, None, _) if c.image.is_some() => {
            // Only raw images are cloned; others are downloaded (no location to try).
            let image = c.image.as_ref().expect("matched");
            let raw = image.disk_format.as_deref() == Some("raw");
            CreateSource::Image {
                locations: if raw {
                    image.locations.clone()
                } else {
                    Vec::new()
                },
            }
        }
        (Some(s), _, _) => {
            let snap = m.db.snapshot(s).await?;
            let depth = match m.db.volume(&snap.volume_id).await {
                Ok(v) => u32::try_from(v.clone_depth).unwrap_or(u32::MAX),
                Err(cinder_db::Error::NotFound { .. }) => u32::MAX,
                Err(e) => return Err(e),
            };
            CreateSource::Snapshot {
                volume_id: snap.volume_id,
                snapshot_id: s.clone(),
                depth,
            }
        }
        (None, Some(v), _) => CreateSource::Volume {
            volume_id: v.clone(),
        },
        (None, None, Some(l)) => CreateSource::Image {
            locations: vec![l.clone()],
        },
        _ => CreateSource::Blank,
    })
}

/// Claims and runs the create from `source` (read by the caller).
pub(crate) async fn accept<D: VolumeDriver>(
    m: &Arc<VolumeManager<D>>,
    req: &Incoming<VolumeTopic>,
    adm: &Admission,
    c: CreateVolume,
    source: Result<CreateSource, cinder_db::Error>,
) -> Result<Ran, ManagerError> {
    let source = match source {
        Ok(source) => source,
        Err(e) if e.is_unavailable() => {
            // Not an answer about the snapshot: the request waits for the database.
            tracing::error!(volume_id = %c.volume_id, error = %e, "the database is unavailable; returning the create to its queue");
            tokio::time::sleep(cinder_service::REQUEUE_PAUSE).await;
            req.requeue().await?;
            return Ok(Ran::Failed);
        }
        Err(e) => {
            // Nothing was claimed nor made: the create fails before it starts.
            tracing::error!(volume_id = %c.volume_id, error = %e, "the source snapshot cannot be read; the create fails");
            let ending = Ending::volume(OP, &c.volume_id, Outcome::Failed);
            if let Err(e) = m.db.finish(None, &ending).await {
                tracing::warn!(volume_id = %c.volume_id, error = %e, "cannot fail the create");
            }
            req.ack().await?;
            return Ok(Ran::Failed);
        }
    };
    let key = OP.claim(&c.volume_id);
    let caller = (
        req.envelope.request_id.clone(),
        req.envelope.context.clone(),
    );
    m.claimed(req, adm, key, |k| run(m, k, c, source, caller))
        .await
}

async fn run<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: ClaimKey,
    c: CreateVolume,
    source: CreateSource,
    (request_id, context): (String, RequestContext),
) -> Result<Ran, ManagerError> {
    // A redelivery after reconciliation failed the create: nothing to build.
    let Some(row) = m.volume_in_any(&c.volume_id, &OP.running()).await? else {
        m.release(&key).await?;
        return Ok(Ran::Ok);
    };
    m.executing(&key).await?;
    let mut downloaded = false;
    let made = match m
        .driver
        .create_volume(&c.volume_id, c.size_gib, &source)
        .await
    {
        // An image none of whose locations can be cloned here: its data comes from
        // Glance.
        Err(e) if e.kind == DriverErrorKind::NotCloneable && c.image.is_some() => {
            tracing::info!(volume_id = %c.volume_id, reason = %e, "the image is downloaded");
            downloaded = true;
            download(m, &c, context.auth_token.as_ref().map(Secret::expose)).await
        }
        other => other,
    };
    match made {
        Ok(created) => {
            let ending = created_ending(m, &c.volume_id, created);
            if let Finished::MovedOn { found } = m.finish(&key, &ending).await? {
                // The row moved on meanwhile (failed, deleted): no image may outlive the
                // volume that wanted it; but a volume an admin reset to `available`
                // keeps the image it now has.
                if found.as_deref() != Some(VolumeStatus::Available.as_str()) {
                    discard_half_made(m, &c.volume_id).await;
                }
                return Ok(Ran::Failed);
            }
            tracing::info!(volume_id = %c.volume_id, "volume created");
            Ok(Ran::Ok)
        }
        Err(e) => {
            tracing::error!(volume_id = %c.volume_id, error = %e, "create failed");
            // Cinder's message for a driver's failed create, rescheduled or not.
            super::tell_user(
                m,
                row.project_id.clone(),
                request_id,
                &c.volume_id,
                messages::CREATE_VOLUME_FROM_BACKEND,
                messages::DRIVER_FAILED_CREATE,
            )
            .await;
            discard_half_made(m, &c.volume_id).await;
            // A download that failed fails here: another backend would fetch the same
            // data.
            if let Some(schedule) = reschedulable(&c, &source).filter(|_| !downloaded) {
                if reschedule(m, &key, schedule, &e.to_string(), &context).await? {
                    return Ok(Ran::Failed);
                }
            }
            m.finish_or_release(&key, &Ending::volume(OP, &c.volume_id, Outcome::Failed))
                .await?;
            Ok(Ran::Failed)
        }
    }
}

/// The download path of a create from an image: a blank volume, `downloading` while
/// Glance's data goes in.
async fn download<D: VolumeDriver>(
    m: &VolumeManager<D>,
    c: &CreateVolume,
    token: Option<&str>,
) -> Result<cinder_drivers::Created, DriverError> {
    let image = c.image.as_ref().expect("checked by the caller");
    let created = m
        .driver
        .create_volume(&c.volume_id, c.size_gib, &CreateSource::Blank)
        .await?;
    match m.db.pass(OP, &c.volume_id, VolumeStatus::Downloading).await {
        Ok(()) => {}
        Err(cinder_db::Error::Conflict { .. }) => {
            return Err(DriverError::new(
                DriverErrorKind::Cancelled,
                "the volume moved on before its download",
            ))
        }
        Err(e) => {
            return Err(DriverError::new(
                DriverErrorKind::Unavailable,
                format!("database: {e}"),
            ))
        }
    }
    crate::ops::image::download(m, token, &c.volume_id, image)
        .await
        .map_err(|e| {
            let kind = match &e {
                crate::ops::image::DownloadError::Driver(d) => d.kind,
                crate::ops::image::DownloadError::Glance(_) => DriverErrorKind::Unavailable,
                _ => DriverErrorKind::Other,
            };
            DriverError::new(kind, format!("image {}: {e}", image.id))
        })?;
    Ok(created)
}

/// The scheduler's request for another attempt, when the create may go elsewhere: the
/// scheduler sent one (attempts are left), and the volume does not have to stay here
/// (a clone of a snapshot or volume of this backend does).
fn reschedulable(c: &CreateVolume, source: &CreateSource) -> Option<ScheduleCreateVolume> {
    match source {
        CreateSource::Blank | CreateSource::Image { .. } => c.schedule.as_deref().cloned(),
        CreateSource::Snapshot { .. } | CreateSource::Volume { .. } => None,
    }
}

/// Gives a failed create back to the scheduler: the volume, still `creating`, is placed
/// nowhere and the claim released (one transaction), then the request goes back with
/// the failure in its `retry`. `false`: it could not (no scheduler, the volume moved on,
/// the broker refused), and the create fails here.
async fn reschedule<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    mut schedule: ScheduleCreateVolume,
    why: &str,
    context: &RequestContext,
) -> Result<bool, ManagerError> {
    let Some((scheduler, queue)) = &m.scheduler else {
        return Ok(false);
    };
    let holder = m.claims.service_id();
    match m
        .db
        .reschedule_volume((key, holder), &key.id, &m.host)
        .await
    {
        Ok(()) => {}
        Err(cinder_db::Error::Conflict { .. }) => {
            tracing::warn!(volume_id = %key.id, "the volume moved on; not rescheduled");
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    }
    schedule.retry.exc = Some(format!("{}: {why}", m.host));
    match scheduler
        .cast_request::<SchedulerTopic>(queue, context, schedule.into())
        .await
    {
        Ok(_) => {
            tracing::warn!(volume_id = %key.id, "create failed here; rescheduled");
            Ok(true)
        }
        Err(e) => {
            // Not claimed any more: the create fails without a claim.
            tracing::error!(volume_id = %key.id, error = %e, "cannot reschedule; the create fails");
            let ending = Ending::volume(OP, &key.id, Outcome::Failed);
            if let Err(e) = m.db.finish(None, &ending).await {
                tracing::error!(volume_id = %key.id, error = %e, "cannot fail the create");
            }
            Ok(true)
        }
    }
}

/// The ending of a create that made its volume: `available`, with what the driver made.
fn created_ending<D: VolumeDriver>(
    m: &VolumeManager<D>,
    volume_id: &str,
    created: cinder_drivers::Created,
) -> Ending {
    let changes = VolumeChanges {
        host: Some(m.pool_host()),
        provider_location: Some(created.provider_location),
        rbd_parent: Some(created.rbd_parent),
        clone_depth: Some(created.clone_depth as i32),
        launched_at: true,
        ..Default::default()
    };
    Ending::volume(OP, volume_id, Outcome::Done).with(changes)
}

/// An interrupted create: its half-made image goes; then the create runs again (in the
/// background once start-up reconciliation is done) from the source its row records
/// when that is safe (blank; a snapshot still `available`; a
/// source volume still `available` or `in-use`), else the volume goes to `error`. A
/// create from a Glance image (or a backup) is not re-run: its data needs the caller's
/// token, which a restart does not have.
pub(crate) async fn resume<D: VolumeDriver>(
    m: &VolumeManager<D>,
    key: &ClaimKey,
    report: &mut Reconciled,
) -> Result<Resumed, ManagerError> {
    // Whatever became of the row, a killed download's files are ours to remove.
    super::image::remove_leftovers(m, &key.id).await;
    // A cluster peer that adopted the claim meanwhile owns the image now.
    if !m.holds(key).await? {
        tracing::warn!(volume_id = %key.id, "the interrupted create is no longer this service's; left alone");
        return Ok(Resumed::Done);
    }
    let Some(row) = m.volume_in_any(&key.id, &OP.running()).await? else {
        m.release(key).await?;
        return Ok(Resumed::Done);
    };
    let cleaned = match m.driver.cleanup_failed_create(&key.id).await {
        Err(e) if e.is_busy() => return Ok(Resumed::Busy),
        Err(e) => {
            tracing::error!(volume_id = %key.id, error = %e, "the half-made image of an interrupted create could not be removed");
            false
        }
        Ok(()) => true,
    };
    if cleaned {
        if let Some(c) = rerunnable(m, &row).await? {
            // Not before serving: the re-run may flatten for minutes.
            if !m.reconciled.load(std::sync::atomic::Ordering::Acquire) {
                return Ok(Resumed::Later);
            }
            // A source volume the killed predecessor had open (a clone of a volume
            // takes a temporary snapshot, which needs the image's lock) would hold the
            // re-run until Ceph drops the dead watch: retried in the background
            // meanwhile. A watch cannot be told from a VM's, so a source a VM keeps
            // open fails the create once that retry gives up. A clone of an existing
            // snapshot needs no lock on its volume.
            if let (None, Some(v)) = (&c.snapshot_id, &c.source_volid) {
                match m.driver.volume_in_use(v).await {
                    Ok(true) => return Ok(Resumed::Busy),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(volume_id = %key.id, source = %v, error = %e, "cannot tell whether the source is open elsewhere")
                    }
                }
            }
            tracing::warn!(volume_id = %key.id, snapshot_id = ?c.snapshot_id, source_volid = ?c.source_volid, "re-running an interrupted create from its recorded source");
            m.executing(key).await?;
            // The database failing here is no answer: the resume is retried.
            let src = source(m, &c).await?;
            let made = m.driver.create_volume(&c.volume_id, c.size_gib, &src).await;
            match made {
                Ok(created) => {
                    let ending = created_ending(m, &key.id, created);
                    match m.finish(key, &ending).await? {
                        Finished::Done => report.rerun_creates.push(key.id.clone()),
                        // Moved on meanwhile (an admin's reset, a delete): no image
                        // outlives the volume that wanted it; but one that reads
                        // `available` keeps it (a reset, or our own commit whose answer
                        // an outage lost).
                        Finished::MovedOn { found } => {
                            if found.as_deref() != Some(VolumeStatus::Available.as_str()) {
                                discard_half_made(m, &key.id).await;
                            }
                        }
                    }
                    return Ok(Resumed::Done);
                }
                Err(e) if e.is_busy() => return Ok(Resumed::Busy),
                Err(e) => {
                    tracing::error!(volume_id = %key.id, error = %e, "the re-run of an interrupted create failed");
                    discard_half_made(m, &key.id).await;
                }
            }
        }
    }
    let ending = Ending::volume(OP, &key.id, Outcome::Failed);
    settle(m, key, &ending, &mut report.failed_creates).await
}

/// The create to run again for interrupted create `row`, when its recorded source makes
/// that safe.
async fn rerunnable<D: VolumeDriver>(
    m: &VolumeManager<D>,
    row: &cinder_db::entity::volumes::Model,
) -> Result<Option<CreateVolume>, ManagerError> {
    if row.status != VolumeStatus::Creating || row.image_id.is_some() || row.backup_id.is_some() {
        return Ok(None);
    }
    if let Some(s) = &row.snapshot_id {
        match m.db.snapshot(s).await {
            Ok(snap) if snap.status == cinder_common::status::SnapshotStatus::Available => {}
            Ok(_) | Err(cinder_db::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(v) = &row.source_volid {
        match m.db.volume(v).await {
            Ok(src) if matches!(src.status, VolumeStatus::Available | VolumeStatus::InUse) => {}
            Ok(_) | Err(cinder_db::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(CreateVolume {
        volume_id: row.id.clone(),
        size_gib: row.size.max(0) as u64,
        snapshot_id: row.snapshot_id.clone(),
        source_volid: row.source_volid.clone(),
        image_location: None,
        image: None,
        schedule: None,
    }))
}

/// Removes a failed create's image, logging when it cannot (the row in `error` still
/// names it; deleting the volume removes it).
async fn discard_half_made<D: VolumeDriver>(m: &VolumeManager<D>, volume_id: &str) {
    if let Err(e) = m.driver.cleanup_failed_create(volume_id).await {
        tracing::warn!(volume_id, error = %e, "could not remove the image of a failed create");
    }
}
