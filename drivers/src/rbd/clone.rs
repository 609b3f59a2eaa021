//! Creates: blank, or clones of a snapshot, of a volume (through a temporary snapshot)
//! or of a Glance image in RBD, then the clone-depth limits.

use rbd_driver::{CloneOptions, CreateOptions, ImageSpec, Lineage, OpCtl, RbdDriver};

use super::{RbdVolumeDriver, GIB};
use crate::{CreateSource, Created, DriverError, DriverErrorKind, Work};

/// `rbd://fsid/pool/image/snap`, parsed.
fn parse_location(location: &str) -> Option<(String, ImageSpec, String)> {
    let rest = location.strip_prefix("rbd://")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [fsid, pool, image, snap] if parts.iter().all(|p| !p.is_empty()) => Some((
            fsid.to_string(),
            ImageSpec::new(*pool, *image),
            snap.to_string(),
        )),
        _ => None,
    }
}

impl RbdVolumeDriver {
    /// Whether a create from `source` may run long work: a clone of a snapshot stays a
    /// clone (short) unless flattening is configured or the chain would pass the hard
    /// depth limit; volumes take a snapshot of the source first, images have chains of
    /// unknown depth (long).
    pub(super) fn clone_work(&self, source: &CreateSource) -> Work {
        match source {
            CreateSource::Blank => Work::Short,
            CreateSource::Snapshot { depth, .. }
                if !self.policy.rbd_flatten_volume_from_snapshot
                    && depth.saturating_add(1) <= self.policy.rbd_max_clone_depth =>
            {
                Work::Short
            }
            _ => Work::Long,
        }
    }

    /// Creates volume `volume_id` from `source`: blank, or a clone.
    pub(super) async fn create(
        &self,
        volume_id: &str,
        size_gib: u64,
        source: &CreateSource,
    ) -> Result<Created, DriverError> {
        let spec = self.volume_image(volume_id);
        match source {
            CreateSource::Blank => {
                let opts = CreateOptions {
                    size: size_gib * GIB,
                    ..Default::default()
                };
                self.driver.create_image(&spec, &opts).await?;
                Ok(Created {
                    provider_location: spec.to_string(),
                    rbd_parent: None,
                    clone_depth: 0,
                })
            }
            CreateSource::Snapshot {
                volume_id: src,
                snapshot_id,
                depth,
            } => {
                let d = self.for_create(source);
                let parent = self
                    .volume_image(src)
                    .snap(format!("snapshot-{snapshot_id}"));
                // The row's depth is an upper bound (a queued flatten may have shortened
                // the chain since): good enough while even the bound stays under the
                // soft limit, where no flatten is queued; at the limits, the chain is
                // walked.
                let known =
                    (depth.saturating_add(2) <= self.policy.rbd_max_clone_depth).then_some(*depth);
                let lineage = d
                    .clone_grown(
                        &parent,
                        &spec,
                        &CloneOptions::default(),
                        size_gib * GIB,
                        known,
                    )
                    .await?;
                let flatten = self.policy.rbd_flatten_volume_from_snapshot;
                self.settle_clone(d, &spec, lineage, flatten).await
            }
            CreateSource::Volume { volume_id: src } => {
                // A temporary snapshot of the source; with clone v2 removing it right away
                // moves it to the trash namespace until the clone no longer needs it, so no
                // `.clone_snap` is left behind on the source.
                let d = self.for_create(source);
                let source = self.volume_image(src);
                let temp = source.snap(format!("clone-{volume_id}"));
                d.create_snapshot(&temp).await?;
                let mut lineage = d
                    .clone_grown(&temp, &spec, &CloneOptions::default(), size_gib * GIB, None)
                    .await?;
                if self.config().rbd_clone_format == 2 {
                    d.remove_snapshot(&temp, &OpCtl::new()).await?;
                    // The parent is now the snapshot's trash entry.
                    lineage.parent = d.parent(&spec).await?;
                }
                self.settle_clone(d, &spec, lineage, false).await
            }
            CreateSource::Image { locations } => {
                let d = self.for_create(source);
                for location in locations {
                    let Some((fsid, image, snap)) = parse_location(location) else {
                        continue;
                    };
                    if fsid != self.driver.fsid() {
                        continue;
                    }
                    match d
                        .clone_grown(
                            &image.snap(snap),
                            &spec,
                            &CloneOptions::default(),
                            size_gib * GIB,
                            None,
                        )
                        .await
                    {
                        Ok(lineage) => return self.settle_clone(d, &spec, lineage, false).await,
                        Err(e) => {
                            // Gone, not readable with our user, ...: the next location,
                            // after whatever the attempt left.
                            tracing::warn!(volume_id, location = %location, error = %e, "image location not cloneable");
                            crate::VolumeDriver::cleanup_failed_create(self, volume_id).await?;
                        }
                    }
                }
                Err(DriverError::new(
                    DriverErrorKind::NotCloneable,
                    format!(
                        "no location of the image can be cloned in cluster {}",
                        self.driver.fsid()
                    ),
                ))
            }
        }
    }

    /// After a clone (`lineage` read by `driver`): apply the depth limits and report what
    /// the row records.
    async fn settle_clone(
        &self,
        driver: &RbdDriver,
        spec: &ImageSpec,
        lineage: Lineage,
        force_flatten: bool,
    ) -> Result<Created, DriverError> {
        let hard = self.policy.rbd_max_clone_depth;
        if force_flatten || lineage.depth > hard {
            // Long work: over the long lane's connection, whatever the request's budget.
            self.background.flatten(spec, &self.ctl()).await?;
            return Ok(Created {
                provider_location: spec.to_string(),
                rbd_parent: None,
                clone_depth: 0,
            });
        }
        if lineage.depth > hard.saturating_sub(1) {
            // The mgr flattens it later; until then the row records the chain as it is.
            if let Err(e) = driver.queue_flatten(spec).await {
                tracing::warn!(image = %spec, error = %e, "cannot queue a flatten with the mgr; the clone chain stays as it is");
            }
        }
        Ok(Created {
            provider_location: spec.to_string(),
            rbd_parent: lineage
                .parent
                .map(|p| format!("{}/{}@{}", p.pool, p.image, p.snap)),
            clone_depth: lineage.depth,
        })
    }

    /// The connection a create from `source` runs over: short work stays on the
    /// interactive connection, long work goes to the long lane's.
    fn for_create(&self, source: &CreateSource) -> &RbdDriver {
        match self.clone_work(source) {
            Work::Short => &self.driver,
            Work::Long => &self.background,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_locations_parse_only_in_their_four_part_form() {
        let (fsid, img, snap) = parse_location("rbd://f-s-i-d/images/abc/snap").unwrap();
        assert_eq!(
            (
                fsid.as_str(),
                img.pool.as_str(),
                img.name.as_str(),
                snap.as_str()
            ),
            ("f-s-i-d", "images", "abc", "snap")
        );
        assert!(parse_location("rbd://fsid/images/abc").is_none());
        assert!(parse_location("file:///x").is_none());
        assert!(parse_location("rbd://fsid//abc/snap").is_none());
    }
}
