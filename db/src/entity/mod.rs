//! sea-orm entities, one module per table.
#![allow(missing_docs)]

pub mod backup_metadata;
pub mod backups;
pub mod clusters;
pub mod default_volume_types;
pub mod executions;
pub mod messages;
pub mod quality_of_service_specs;
pub mod quota_classes;
pub mod quota_usages;
pub mod quotas;
pub mod reservations;
pub mod services;
pub mod snapshot_metadata;
pub mod snapshots;
pub mod volume_admin_metadata;
pub mod volume_attachment;
pub mod volume_glance_metadata;
pub mod volume_metadata;
pub mod volume_type_extra_specs;
pub mod volume_type_projects;
pub mod volume_types;
pub mod volumes;
pub mod workers;
