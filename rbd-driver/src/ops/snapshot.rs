//! Snapshots: create, list, remove (also trashed clone-v2 snapshots), rollback, and
//! protect/unprotect for pools whose clients need clone v1.

use tracing::instrument;

use super::RbdDriver;
use crate::ctl::OpCtl;
use crate::error::{ErrorKind, Result};
use crate::pool::Lane;
use crate::rbd::{Image, Open};
use crate::types::{ImageSpec, SnapInfo, SnapNamespace, SnapSpec};

impl RbdDriver {
    /// Creates a snapshot; an existing one of that name counts as done.
    #[instrument(skip_all, fields(pool = %snap.image.pool, image = %snap.image.name, snap = %snap.snap))]
    pub async fn create_snapshot(&self, snap: &SnapSpec) -> Result<()> {
        let snap = snap.clone();
        self.short(move |inner| {
            let io = inner.io(&snap.image.pool)?;
            let img = Image::open(&io, Open::Name(&snap.image.name))?;
            match img.snap_create(&snap.snap) {
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
                r => r,
            }
        })
        .await
    }

    /// All snapshots of an image, in every namespace.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name))]
    pub async fn list_snapshots(&self, spec: &ImageSpec) -> Result<Vec<SnapInfo>> {
        let spec = spec.clone();
        self.short(move |inner| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::NameReadOnly(&spec.name, None))?;
            img.snapshots()
        })
        .await
    }

    /// Removes a snapshot (missing: done). Under clone v2 a snapshot with clones moves to
    /// the trash namespace and disappears with its last clone. A protected snapshot is
    /// `Busy`: this driver never unprotects implicitly (Glance owns its snapshots).
    #[instrument(skip_all, fields(pool = %snap.image.pool, image = %snap.image.name, snap = %snap.snap))]
    pub async fn remove_snapshot(&self, snap: &SnapSpec, ctl: &OpCtl) -> Result<()> {
        let snap = snap.clone();
        self.run(Lane::Short, ctl, move |inner, ctl| {
            let io = inner.io(&snap.image.pool)?;
            let img = match Image::open(&io, Open::Name(&snap.image.name)) {
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                r => r?,
            };
            match img.snap_remove(&snap.snap, ctl) {
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                r => r,
            }
        })
        .await
    }

    /// Removes a snapshot from the trash namespace by id, once it has no clones left
    /// (`HasDependents`/`Busy` while it has).
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name, snap_id))]
    pub async fn remove_trashed_snapshot(&self, spec: &ImageSpec, snap_id: u64) -> Result<()> {
        let spec = spec.clone();
        self.short(move |inner| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::Name(&spec.name))?;
            let found = img.snapshots()?.into_iter().find(|s| s.id == snap_id);
            match found {
                None => Ok(()),
                Some(s) if !matches!(s.namespace, SnapNamespace::Trash { .. }) => {
                    Err(crate::Error::InvalidArgument(format!(
                        "snapshot {snap_id} of {spec} is not in the trash namespace"
                    )))
                }
                Some(_) => img.snap_remove_by_id(snap_id),
            }
        })
        .await
    }

    /// Rolls the image back to a snapshot (long: copies every object; cancellable,
    /// progress reported).
    #[instrument(skip_all, fields(pool = %snap.image.pool, image = %snap.image.name, snap = %snap.snap))]
    pub async fn rollback_to_snapshot(&self, snap: &SnapSpec, ctl: &OpCtl) -> Result<()> {
        let snap = snap.clone();
        self.run(Lane::Long, ctl, move |inner, ctl| {
            let io = inner.io(&snap.image.pool)?;
            let img = Image::open(&io, Open::Name(&snap.image.name))?;
            img.snap_rollback(&snap.snap, ctl)
        })
        .await
    }

    /// Protects a snapshot (clone v1 pools); already protected counts as done.
    #[instrument(skip_all, fields(pool = %snap.image.pool, image = %snap.image.name, snap = %snap.snap))]
    pub async fn protect_snapshot(&self, snap: &SnapSpec) -> Result<()> {
        let snap = snap.clone();
        self.short(move |inner| {
            let io = inner.io(&snap.image.pool)?;
            let img = Image::open(&io, Open::Name(&snap.image.name))?;
            if img.snap_is_protected(&snap.snap)? {
                return Ok(());
            }
            img.snap_protect(&snap.snap)
        })
        .await
    }

    /// Unprotects a snapshot; not protected counts as done; `Busy` while it has clones.
    #[instrument(skip_all, fields(pool = %snap.image.pool, image = %snap.image.name, snap = %snap.snap))]
    pub async fn unprotect_snapshot(&self, snap: &SnapSpec) -> Result<()> {
        let snap = snap.clone();
        self.short(move |inner| {
            let io = inner.io(&snap.image.pool)?;
            let img = Image::open(&io, Open::Name(&snap.image.name))?;
            if !img.snap_is_protected(&snap.snap)? {
                return Ok(());
            }
            img.snap_unprotect(&snap.snap)
        })
        .await
    }
}
