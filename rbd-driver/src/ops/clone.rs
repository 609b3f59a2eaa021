//! Clones (cross-pool, clone v2 by default), flatten in-process or queued to the mgr,
//! parents, children and clone depth.

use tracing::instrument;

use super::{Conn, RbdDriver};
use crate::ctl::OpCtl;
use crate::diff;
use crate::error::{Error, ErrorKind, Result};
use crate::pool::Lane;
use crate::rbd::{Image, ImageOptions, Open};
use crate::types::{ChildInfo, CloneOptions, ImageSpec, Lineage, ParentInfo, SnapSpec};

/// Longest parent chain walked before giving up (librbd allows far less in practice).
const MAX_CHAIN: u32 = 64;

impl RbdDriver {
    /// Clones `parent` (any pool, e.g. Glance's `images/<id>@snap`) into `child`. With
    /// clone format 2 the parent snapshot needs no protection. A child that already
    /// exists as a clone of the same snapshot counts as done.
    #[instrument(skip_all, fields(parent = %parent, pool = %child.pool, image = %child.name))]
    pub async fn clone_image(
        &self,
        parent: &SnapSpec,
        child: &ImageSpec,
        opts: &CloneOptions,
    ) -> Result<()> {
        let (parent, child, opts) = (parent.clone(), child.clone(), opts.clone());
        self.short(move |inner| clone_in(inner, &parent, &child, &opts))
            .await
    }

    /// Clones `parent` into `child` as [`RbdDriver::clone_image`] does, grows the clone
    /// to at least `min_size` bytes, and reads its lineage: one job on the short lane,
    /// the clone opened once read-only (and once more to grow it, only when it must;
    /// growing only writes the header). With `parent_depth` (the parents above
    /// `parent`'s image, as the caller knows them) the clone's depth is one more, and no
    /// ancestor is opened; without, the chain is walked.
    #[instrument(skip_all, fields(parent = %parent, pool = %child.pool, image = %child.name, min_size))]
    pub async fn clone_grown(
        &self,
        parent: &SnapSpec,
        child: &ImageSpec,
        opts: &CloneOptions,
        min_size: u64,
        parent_depth: Option<u32>,
    ) -> Result<Lineage> {
        let (parent, child, opts) = (parent.clone(), child.clone(), opts.clone());
        self.short(move |inner| {
            clone_in(inner, &parent, &child, &opts)?;
            let cio = inner.io(&child.pool)?;
            let img = Image::open(&cio, Open::NameReadOnly(&child.name, None))?;
            if img.stat()?.size < min_size {
                Image::open(&cio, Open::Name(&child.name))?.resize(
                    min_size,
                    false,
                    &OpCtl::new(),
                )?;
            }
            let parent = img.parent()?;
            let depth = match (&parent, parent_depth) {
                (None, _) => 0,
                (Some(_), Some(d)) => d.saturating_add(1),
                (Some(p), None) => 1 + depth_above(inner, p, &child)?,
            };
            Ok(Lineage { depth, parent })
        })
        .await
    }

    /// Copies `src` (at `src_snap`, or HEAD; the parent's data included) into a new
    /// image `dst` in full: long lane, only allocated extents, sparse, cancellable,
    /// progress reported. The answer when clone chains must not grow
    /// (`rbd_max_clone_depth = 0`). A failed or cancelled copy removes the half-made
    /// `dst`; an existing `dst` is `AlreadyExists` and left alone.
    #[instrument(skip_all, fields(pool = %src.pool, image = %src.name, snap = src_snap, to = %dst))]
    pub async fn copy_image(
        &self,
        src: &ImageSpec,
        src_snap: Option<&str>,
        dst: &ImageSpec,
        opts: &CloneOptions,
        ctl: &OpCtl,
    ) -> Result<()> {
        let (src, snap, dst, opts) = (
            src.clone(),
            src_snap.map(str::to_string),
            dst.clone(),
            opts.clone(),
        );
        self.run(Lane::Long, ctl, move |inner, ctl| {
            let sio = inner.io(&src.pool)?;
            let dio = inner.io(&dst.pool)?;
            let img = Image::open(&sio, Open::NameReadOnly(&src.name, snap.as_deref()))?;
            let st = img.stat()?;
            let o = ImageOptions::for_new_image(
                Some(opts.order.unwrap_or(st.order as u8)),
                opts.features,
                opts.data_pool.as_deref(),
            )?;
            dio.create(&dst.name, st.size, &o)
                .map_err(|e| match e.kind() {
                    ErrorKind::AlreadyExists => Error::AlreadyExists {
                        target: dst.to_string(),
                        detail: "copy target exists".into(),
                    },
                    _ => e,
                })?;
            // librbd's own copy ignores its progress callback, so it cannot be cancelled:
            // copy the allocated extents here instead, reads and writes windowed.
            let window = inner.config.rbd_concurrent_management_ops;
            let copied = (|| {
                let out = Image::open(&dio, Open::Name(&dst.name))?;
                let mut writer = diff::Applier::new(&out, window);
                let result =
                    diff::read_changes(&img, None, false, window, ctl, &mut |e: diff::Extent| {
                        // The new image reads as zeroes already: only data is written.
                        e.data
                            .map_or(Ok(()), |buf| writer.write_data(e.offset, buf).map(|_| ()))
                    });
                let drained = writer.drain();
                result?;
                drained?;
                out.flush()
            })();
            if let Err(e) = copied {
                // Leave no half-made image behind (not cancellable: cleanup must finish).
                return match dio.remove(&dst.name, &OpCtl::new()) {
                    Ok(()) => Err(e),
                    Err(r) => Err(Error::Unexpected(format!(
                        "{e}; and removing the partial copy failed: {r}"
                    ))),
                };
            }
            Ok(())
        })
        .await
    }

    /// Flattens a clone in-process (long lane; progress reported; cancelling stops it and
    /// the clone keeps its parent). An image without a parent is already flat.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name))]
    pub async fn flatten(&self, spec: &ImageSpec, ctl: &OpCtl) -> Result<()> {
        let spec = spec.clone();
        self.run(Lane::Long, ctl, move |inner, ctl| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::Name(&spec.name))?;
            if img.parent()?.is_none() {
                return Ok(());
            }
            img.flatten(ctl)
        })
        .await
    }

    /// Queues a flatten with the mgr (`rbd task add flatten`): returns at once with the
    /// task id; the mgr runs it and it survives our restarts.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name))]
    pub async fn queue_flatten(&self, spec: &ImageSpec) -> Result<String> {
        self.mgr_task(serde_json::json!({
            "prefix": "rbd task add flatten",
            "image_spec": spec.to_string(),
            "format": "json",
        }))
        .await
    }

    /// Queues the purge of a trashed image with the mgr (`rbd task add trash remove`).
    #[instrument(skip_all, fields(pool, trash_id))]
    pub async fn queue_trash_purge(&self, pool: &str, trash_id: &str) -> Result<String> {
        self.mgr_task(serde_json::json!({
            "prefix": "rbd task add trash remove",
            "image_id_spec": format!("{pool}/{trash_id}"),
            "format": "json",
        }))
        .await
    }

    /// Ids of the mgr's queued and running rbd tasks.
    pub async fn mgr_tasks(&self) -> Result<Vec<String>> {
        let out = self
            .short(|inner| {
                inner.cluster.command(
                    crate::rbd::CommandTarget::Mgr,
                    &serde_json::json!({"prefix": "rbd task list", "format": "json"}),
                )
            })
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&out)
            .map_err(|e| Error::Unexpected(format!("rbd task list: {e}")))?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("id")?.as_str().map(str::to_string))
            .collect())
    }

    async fn mgr_task(&self, cmd: serde_json::Value) -> Result<String> {
        let out = self
            .short(move |inner| inner.cluster.command(crate::rbd::CommandTarget::Mgr, &cmd))
            .await?;
        let v: serde_json::Value = serde_json::from_slice(&out).map_err(|e| {
            Error::Unexpected(format!(
                "mgr task reply {e}: {}",
                String::from_utf8_lossy(&out)
            ))
        })?;
        v.get("id")
            .and_then(|i| i.as_str())
            .map(str::to_string)
            .ok_or_else(|| Error::Unexpected(format!("mgr task reply without id: {v}")))
    }

    /// The image's clone parent, if any.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name))]
    pub async fn parent(&self, spec: &ImageSpec) -> Result<Option<ParentInfo>> {
        let spec = spec.clone();
        self.short(move |inner| {
            let io = inner.io(&spec.pool)?;
            let img = Image::open(&io, Open::NameReadOnly(&spec.name, None))?;
            img.parent()
        })
        .await
    }

    /// Clones of a snapshot, in every pool.
    #[instrument(skip_all, fields(pool = %snap.image.pool, image = %snap.image.name, snap = %snap.snap))]
    pub async fn children(&self, snap: &SnapSpec) -> Result<Vec<ChildInfo>> {
        let snap = snap.clone();
        self.short(move |inner| {
            let io = inner.io(&snap.image.pool)?;
            let img = Image::open(&io, Open::NameReadOnly(&snap.image.name, Some(&snap.snap)))?;
            img.children()
        })
        .await
    }

    /// How many parents lie above the image, whatever they are (volumes, snapshots of
    /// volumes, Glance images, images in the trash): 0 for a flat image.
    #[instrument(skip_all, fields(pool = %spec.pool, image = %spec.name))]
    pub async fn clone_depth(&self, spec: &ImageSpec) -> Result<u32> {
        let spec = spec.clone();
        self.short(move |inner| {
            let io = inner.io(&spec.pool)?;
            let parent = Image::open(&io, Open::NameReadOnly(&spec.name, None))?.parent()?;
            match parent {
                Some(p) => Ok(1 + depth_above(inner, &p, &spec)?),
                None => Ok(0),
            }
        })
        .await
    }
}

/// Clones `parent` into `child`; a child that already exists as a clone of the same
/// snapshot counts as done.
fn clone_in(
    inner: &Conn<'_>,
    parent: &SnapSpec,
    child: &ImageSpec,
    opts: &CloneOptions,
) -> Result<()> {
    let pio = inner.io(&parent.image.pool)?;
    let cio = inner.io(&child.pool)?;
    let mut o = ImageOptions::for_new_image(opts.order, opts.features, opts.data_pool.as_deref())?;
    o.set_u64(
        rbd_sys::RBD_IMAGE_OPTION_CLONE_FORMAT,
        inner.config.rbd_clone_format as u64,
    )?;
    match cio.clone_from(&pio, &parent.image.name, &parent.snap, &child.name, &o) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            let existing = Image::open(&cio, Open::NameReadOnly(&child.name, None))?.parent()?;
            match existing {
                Some(p)
                    if p.pool == parent.image.pool
                        && p.image == parent.image.name
                        && p.snap == parent.snap =>
                {
                    Ok(())
                }
                other => Err(Error::AlreadyExists {
                    target: child.to_string(),
                    detail: format!("exists with parent {other:?}, asked {parent}"),
                }),
            }
        }
        r => r,
    }
}

/// How many parents lie above `parent` (itself not counted), whatever they are.
fn depth_above(inner: &Conn<'_>, parent: &ParentInfo, of: &ImageSpec) -> Result<u32> {
    let pio = inner.io(&parent.pool)?;
    let mut next = Image::open(&pio, Open::IdReadOnly(&parent.image_id, None))?.parent()?;
    let mut depth = 0;
    while let Some(p) = next {
        depth += 1;
        if depth >= MAX_CHAIN {
            return Err(Error::Unexpected(format!(
                "clone chain of {of} is longer than {MAX_CHAIN}"
            )));
        }
        let pio = inner.io(&p.pool)?;
        next = Image::open(&pio, Open::IdReadOnly(&p.image_id, None))?.parent()?;
    }
    Ok(depth)
}
