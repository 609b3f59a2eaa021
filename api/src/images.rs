//! Volumes and Glance images: resolving a create's `imageRef` (an id, a URL ending in
//! one, or a name), the checks an image must pass before anything is reserved, the
//! image metadata a volume made from it keeps, and the image metadata actions
//! (`os-set_image_metadata`, `os-unset_image_metadata`, `os-show_image_metadata`).

use cinder_db::{ImageMetadataOf, Metadata};
use cinder_glance::{Error as GlanceError, Glance, Image};
use cinder_rpc::messages::ImageSource;

use crate::error::ApiError;
use crate::AppState;

const GIB: u64 = 1 << 30;

/// The image property naming the volume type of volumes made from the image.
pub(crate) const TYPE_PROPERTY: &str = "cinder_img_volume_type";

/// The image service, or 400 when none is configured.
pub(crate) fn glance(state: &AppState) -> Result<&Glance, ApiError> {
    state.glance.as_ref().ok_or_else(|| {
        ApiError::bad_request(
            "Invalid input received: no image service is configured ([glance] api_servers).",
        )
    })
}

fn unreachable(e: GlanceError) -> ApiError {
    tracing::error!(error = %e, "the image service failed");
    ApiError::unavailable(format!("The image service cannot be reached: {e}"))
}

fn invalid_ref() -> ApiError {
    ApiError::bad_request("Invalid image identifier or unable to access requested image.")
}

fn uuid_like(s: &str) -> bool {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// The image `reference` names, as Cinder resolves an `imageRef`: its last path
/// segment as an id, else the whole reference as a name. Unknown: 400; a name that
/// several images share: 409.
pub(crate) async fn resolve(
    state: &AppState,
    token: Option<&str>,
    reference: &str,
) -> Result<Image, ApiError> {
    let g = glance(state)?;
    let id = reference.rsplit('/').next().unwrap_or(reference);
    if uuid_like(id) {
        match g.image(token, id).await {
            Ok(i) => return Ok(i),
            Err(GlanceError::NotFound(_) | GlanceError::Refused { .. }) => {}
            Err(e) => return Err(unreachable(e)),
        }
    }
    let mut found = match g.images_named(token, reference).await {
        Ok(l) => l,
        Err(GlanceError::NotFound(_) | GlanceError::Refused { .. }) => Vec::new(),
        Err(e) => return Err(unreachable(e)),
    };
    match found.len() {
        0 => Err(invalid_ref()),
        1 => Ok(found.remove(0)),
        _ => Err(ApiError::conflict(format!(
            "Multiple matches found for '{reference}', use an ID to be more specific."
        ))),
    }
}

/// Cinder's checks of an image for a volume of `size_gib`, in its order: active, its
/// data, its `min_disk` and its virtual size fit. 400 otherwise.
pub(crate) fn check(image: &Image, size_gib: i64) -> Result<(), ApiError> {
    let invalid = |m: String| ApiError::bad_request(format!("Invalid input received: {m}"));
    if image.status() != "active" {
        return Err(invalid(format!("Image {} is not active.", image.id())));
    }
    let size = size_gib.max(0) as u64;
    let data_gib = image.size().unwrap_or(0).div_ceil(GIB);
    if data_gib > size {
        return Err(invalid(format!(
            "Size of specified image {data_gib}GB is larger than volume size {size}GB."
        )));
    }
    let min_disk = image.min_disk();
    if min_disk > size {
        return Err(invalid(format!(
            "Volume size {size}GB cannot be smaller than the image minDisk size {min_disk}GB."
        )));
    }
    if let Some(v) = image.virtual_size() {
        let virtual_gib = v.div_ceil(GIB);
        if virtual_gib > size {
            return Err(ApiError::bad_request(format!(
                "Image {} is unacceptable: Image virtual size is {virtual_gib}GB and doesn't fit in a volume of size {size}GB.",
                image.id()
            )));
        }
    }
    Ok(())
}

/// What a volume made from `image` keeps as its image metadata: the image's id and
/// name, formats, sizes and checksum, and its own properties.
pub(crate) fn metadata_of(image: &Image) -> Metadata {
    // Every property, as Cinder copies them on create (filtering happens on upload).
    let mut m: Metadata = image.properties();
    let core = &image.0;
    m.insert("image_id".into(), image.id().to_string());
    if let Some(n) = image.name() {
        m.insert("image_name".into(), n.to_string());
    }
    for k in [
        "checksum",
        "container_format",
        "disk_format",
        "min_disk",
        "min_ram",
        "size",
    ] {
        match core.get(k) {
            Some(serde_json::Value::String(s)) => {
                m.insert(k.into(), s.clone());
            }
            Some(serde_json::Value::Number(n)) => {
                m.insert(k.into(), n.to_string());
            }
            _ => {}
        }
    }
    m
}

/// What the volume service needs of `image`: where to clone it from, or what to
/// download.
pub(crate) fn source_of(image: &Image) -> ImageSource {
    ImageSource {
        id: image.id().to_string(),
        disk_format: image.disk_format().map(str::to_string),
        container_format: image.container_format().map(str::to_string),
        size: image.size(),
        locations: image.locations(),
    }
}

fn no_image_metadata(id: &str) -> ApiError {
    ApiError::not_found(format!(
        "Glance metadata for volume/snapshot {id} cannot be found."
    ))
}

/// The image metadata of volume `id` (`os-show_image_metadata`); 404 when it has none.
pub(crate) async fn show(state: &AppState, id: &str) -> Result<Metadata, ApiError> {
    let m = state
        .db
        .image_metadata(ImageMetadataOf::Volume(id))
        .await
        .map_err(ApiError::from_db)?;
    if m.is_empty() {
        return Err(no_image_metadata(id));
    }
    Ok(m)
}

/// Sets `items` in the image metadata of volume `id` (`os-set_image_metadata`).
pub(crate) async fn set(
    state: &AppState,
    id: &str,
    items: &Metadata,
) -> Result<Metadata, ApiError> {
    state
        .db
        .set_image_metadata(ImageMetadataOf::Volume(id), items)
        .await
        .map_err(ApiError::from_db)
}

/// Deletes `key` from the image metadata of volume `id` (`os-unset_image_metadata`);
/// 404 when it has no such key.
pub(crate) async fn unset(state: &AppState, id: &str, key: &str) -> Result<(), ApiError> {
    match state
        .db
        .delete_image_metadata_key(ImageMetadataOf::Volume(id), key)
        .await
    {
        Ok(()) => Ok(()),
        Err(cinder_db::Error::NotFound { .. }) => Err(no_image_metadata(id)),
        Err(e) => Err(ApiError::from_db(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image(v: serde_json::Value) -> Image {
        Image(v)
    }

    #[test]
    fn an_image_must_be_active_and_fit() {
        let ok = json!({"id": "i", "status": "active", "size": 4 << 20, "min_disk": 1});
        assert!(check(&image(ok.clone()), 1).is_ok());
        let mut queued = ok.clone();
        queued["status"] = json!("deactivated");
        assert!(check(&image(queued), 1).is_err());
        let mut big = ok.clone();
        big["size"] = json!((1u64 << 30) + 1);
        assert!(check(&image(big), 1).is_err());
        let mut virt = ok.clone();
        virt["virtual_size"] = json!(3u64 << 30);
        assert!(check(&image(virt.clone()), 2).is_err());
        assert!(check(&image(virt), 3).is_ok());
        let mut min = ok;
        min["min_disk"] = json!(5);
        assert!(check(&image(min), 4).is_err());
    }

    #[test]
    fn volumes_keep_the_image_core_fields_and_every_property() {
        let m = metadata_of(&image(json!({
            "id": "i", "name": "deb", "status": "active", "size": 5, "min_disk": 1,
            "min_ram": 0, "disk_format": "raw", "container_format": "bare",
            "checksum": "c", "os_distro": "debian", "cinder_encryption_key_id": "k",
            "visibility": "public",
        })));
        for (k, v) in [
            ("image_id", "i"),
            ("image_name", "deb"),
            ("size", "5"),
            ("min_disk", "1"),
            ("disk_format", "raw"),
            ("os_distro", "debian"),
        ] {
            assert_eq!(m.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(
            m.get("cinder_encryption_key_id").map(String::as_str),
            Some("k")
        );
        assert!(!m.contains_key("visibility") && !m.contains_key("status"));
    }

    #[test]
    fn references_read_as_ids_when_they_look_like_one() {
        assert!(uuid_like("56581404-f8a6-4e64-97d2-58cd7b51b614"));
        assert!(!uuid_like("debian-12"));
    }
}
