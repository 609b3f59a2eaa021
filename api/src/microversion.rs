//! Microversions: `OpenStack-API-Version: volume 3.N` (or, without it, a legacy
//! `OpenStack-Volume-microversion` / `X-OpenStack-Volume-API-Version: 3.N`), `latest`, 3.0 when absent; 400 when
//! malformed, 406 out of range; the version in force is echoed as Cinder echoes it
//! (`OpenStack-API-Version: volume 3.N`, `Vary: OpenStack-API-Version`).

use axum::http::{HeaderMap, HeaderValue};

use crate::error::ApiError;

/// The newest microversion served.
pub const MAX_MINOR: u16 = 71;

/// A v3 microversion (3.minor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Microversion(pub u16);

impl Microversion {
    /// Whether this version is at least 3.`minor`.
    pub fn at_least(self, minor: u16) -> bool {
        self.0 >= minor
    }

    /// Reads the request's version.
    pub fn from_headers(h: &HeaderMap) -> Result<Microversion, ApiError> {
        let asked = match h.get("openstack-api-version") {
            Some(v) => {
                let v = v
                    .to_str()
                    .map_err(|_| ApiError::bad_request("Invalid API version header"))?;
                // "volume 3.5", possibly among other services' versions.
                v.split(',').map(str::trim).find_map(|part| {
                    let (service, version) = part.split_once(char::is_whitespace)?;
                    (service.eq_ignore_ascii_case("volume")).then(|| version.trim().to_string())
                })
            }
            // Legacy per-service headers (gophercloud sends the second beside the
            // standard one; Cinder itself reads neither).
            None => [
                "openstack-volume-microversion",
                "x-openstack-volume-api-version",
            ]
            .iter()
            .find_map(|name| h.get(*name))
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_string()),
        };
        let Some(asked) = asked else {
            return Ok(Microversion(0));
        };
        if asked.eq_ignore_ascii_case("latest") {
            return Ok(Microversion(MAX_MINOR));
        }
        let malformed = || {
            ApiError::bad_request(format!(
                "API Version String {asked} is of invalid format. Must be of format MajorNum.MinorNum."
            ))
        };
        let (major, minor) = asked.split_once('.').ok_or_else(malformed)?;
        let (major, minor): (u16, u16) = (
            major.parse().map_err(|_| malformed())?,
            minor.parse().map_err(|_| malformed())?,
        );
        if major != 3 || minor > MAX_MINOR {
            return Err(ApiError::not_acceptable(format!(
                "Version {asked} is not supported by the API. Minimum is 3.0 and maximum is 3.{MAX_MINOR}."
            )));
        }
        Ok(Microversion(minor))
    }

    /// The response headers naming the version in force.
    pub fn headers(self) -> [(&'static str, HeaderValue); 2] {
        [
            (
                "OpenStack-API-Version",
                HeaderValue::from_str(&format!("volume 3.{}", self.0)).expect("ascii"),
            ),
            ("Vary", HeaderValue::from_static("OpenStack-API-Version")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(name: &str, value: &str) -> Result<Microversion, u16> {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        Microversion::from_headers(&h).map_err(|e| e.status.as_u16())
    }

    #[test]
    fn versions_are_read_as_cinder_reads_them() {
        assert_eq!(
            Microversion::from_headers(&HeaderMap::new()),
            Ok(Microversion(0))
        );
        let h = "openstack-api-version";
        assert_eq!(read(h, "volume 3.35"), Ok(Microversion(35)));
        assert_eq!(read(h, "compute 2.1, volume 3.28"), Ok(Microversion(28)));
        assert_eq!(read(h, "volume latest"), Ok(Microversion(MAX_MINOR)));
        assert_eq!(read(h, "compute 2.1"), Ok(Microversion(0)));
        assert_eq!(read(h, "volume 3"), Err(400));
        assert_eq!(read(h, "volume 3.x"), Err(400));
        assert_eq!(read(h, "volume 3.72"), Err(406));
        assert_eq!(read(h, "volume 2.0"), Err(406));
        assert_eq!(
            read("openstack-volume-microversion", "3.31"),
            Ok(Microversion(31))
        );
    }
}
