//! The initial schema: services and clusters, volumes and their metadata and attachments,
//! snapshots, backups, volume types and QoS specs, quotas and reservations, user
//! messages, and the `workers` intent table.
//!
//! Conventions (Cinder's): UUIDs as `VARCHAR(36)`; soft delete with `deleted` and
//! `deleted_at`; `created_at`/`updated_at` on every row; statuses as OpenStack's strings.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261121_000001_create_schema"
    }
}

// UUIDs as VARCHAR(36), as Cinder: PostgreSQL blank-pads CHAR(n) values.
fn id36(name: &str) -> ColumnDef {
    string_len(Alias::new(name), 36).primary_key().take()
}
fn uuid_col(name: &str) -> ColumnDef {
    string_len(Alias::new(name), 36)
}
fn uuid_null(name: &str) -> ColumnDef {
    string_len_null(Alias::new(name), 36)
}
fn s(name: &str) -> ColumnDef {
    string(Alias::new(name))
}
fn s_null(name: &str) -> ColumnDef {
    string_null(Alias::new(name))
}
fn txt_null(name: &str) -> ColumnDef {
    text_null(Alias::new(name))
}
fn int(name: &str, default: i32) -> ColumnDef {
    integer(Alias::new(name)).default(default).take()
}
fn int_null(name: &str) -> ColumnDef {
    integer_null(Alias::new(name))
}
fn big(name: &str, default: i64) -> ColumnDef {
    big_integer(Alias::new(name)).default(default).take()
}
fn flag(name: &str, default: bool) -> ColumnDef {
    boolean(Alias::new(name)).default(default).take()
}
fn ts_null(name: &str) -> ColumnDef {
    date_time_null(Alias::new(name))
}
fn auto_id() -> ColumnDef {
    pk_auto(Alias::new("id"))
}

/// A table with the columns every table has: created/updated/deleted_at and deleted.
fn table(name: &str, columns: Vec<ColumnDef>) -> TableCreateStatement {
    let mut t = Table::create();
    t.table(Alias::new(name));
    for mut c in columns {
        t.col(&mut c);
    }
    t.col(date_time(Alias::new("created_at")))
        .col(ts_null("updated_at"))
        .col(ts_null("deleted_at"))
        .col(flag("deleted", false));
    t.take()
}

fn index(table: &str, name: &str, cols: &[&str], unique: bool) -> IndexCreateStatement {
    let mut i = Index::create();
    i.name(format!("ix_{table}_{name}"))
        .table(Alias::new(table));
    for c in cols {
        i.col(Alias::new(*c));
    }
    if unique {
        i.unique();
    }
    i.take()
}

/// Tables in creation order (dropped in reverse).
fn tables() -> Vec<TableCreateStatement> {
    vec![
        table(
            "clusters",
            vec![
                auto_id(),
                s("name"),
                s("binary"),
                flag("disabled", false),
                s_null("disabled_reason"),
                int("race_preventer", 0),
                s_null("replication_status"),
                s_null("active_backend_id"),
                flag("frozen", false),
            ],
        ),
        table(
            "services",
            vec![
                auto_id(),
                uuid_col("uuid"),
                s("host"),
                s("binary"),
                s("topic"),
                s("availability_zone"),
                flag("disabled", false),
                s_null("disabled_reason"),
                big("report_count", 0),
                txt_null("capabilities"),
                s_null("cluster_name"),
                s_null("rpc_current_version"),
                s_null("object_current_version"),
                s_null("replication_status"),
                s_null("active_backend_id"),
                flag("frozen", false),
            ],
        ),
        table(
            "volume_types",
            vec![
                id36("id"),
                s("name"),
                s_null("description"),
                flag("is_public", true),
                uuid_null("qos_specs_id"),
            ],
        ),
        table(
            "volume_type_extra_specs",
            vec![
                auto_id(),
                uuid_col("volume_type_id"),
                s("key"),
                s_null("value"),
            ],
        ),
        table(
            "volume_type_projects",
            vec![auto_id(), uuid_col("volume_type_id"), s("project_id")],
        ),
        table(
            "quality_of_service_specs",
            vec![id36("id"), uuid_null("specs_id"), s("key"), s_null("value")],
        ),
        table(
            "volumes",
            vec![
                id36("id"),
                s("project_id"),
                s("user_id"),
                s_null("display_name"),
                txt_null("display_description"),
                int("size", 0),
                s("status"),
                s("attach_status"),
                s_null("availability_zone"),
                uuid_null("volume_type_id"),
                uuid_null("snapshot_id"),
                uuid_null("source_volid"),
                uuid_null("image_id"),
                uuid_null("backup_id"),
                s_null("host"),
                s_null("cluster_name"),
                txt_null("provider_location"),
                s_null("provider_id"),
                flag("bootable", false),
                flag("multiattach", false),
                uuid_null("encryption_key_id"),
                s_null("migration_status"),
                s_null("replication_status"),
                s_null("previous_status"),
                flag("use_quota", true),
                uuid_null("group_id"),
                uuid_null("service_uuid"),
                flag("shared_targets", true),
                ts_null("scheduled_at"),
                ts_null("launched_at"),
                ts_null("terminated_at"),
                txt_null("rbd_parent"),
                int("clone_depth", 0),
            ],
        ),
        table(
            "volume_metadata",
            vec![auto_id(), uuid_col("volume_id"), s("key"), s_null("value")],
        ),
        table(
            "volume_admin_metadata",
            vec![auto_id(), uuid_col("volume_id"), s("key"), s_null("value")],
        ),
        table(
            "volume_attachment",
            vec![
                id36("id"),
                uuid_col("volume_id"),
                s_null("attached_host"),
                uuid_null("instance_uuid"),
                s_null("mountpoint"),
                ts_null("attach_time"),
                ts_null("detach_time"),
                s_null("attach_mode"),
                s("attach_status"),
                txt_null("connection_info"),
                txt_null("connector"),
            ],
        ),
        table(
            "snapshots",
            vec![
                id36("id"),
                uuid_col("volume_id"),
                s("project_id"),
                s("user_id"),
                s_null("display_name"),
                txt_null("display_description"),
                s("status"),
                s_null("progress"),
                int("volume_size", 0),
                txt_null("provider_location"),
                s_null("provider_id"),
                uuid_null("encryption_key_id"),
                uuid_null("volume_type_id"),
                uuid_null("group_snapshot_id"),
                flag("use_quota", true),
            ],
        ),
        table(
            "snapshot_metadata",
            vec![
                auto_id(),
                uuid_col("snapshot_id"),
                s("key"),
                s_null("value"),
            ],
        ),
        table(
            "backups",
            vec![
                id36("id"),
                uuid_col("volume_id"),
                uuid_null("snapshot_id"),
                s("project_id"),
                s("user_id"),
                s_null("host"),
                s_null("availability_zone"),
                s_null("display_name"),
                txt_null("display_description"),
                s_null("container"),
                s("status"),
                txt_null("fail_reason"),
                txt_null("service_metadata"),
                s_null("service"),
                int("size", 0),
                int_null("object_count"),
                uuid_null("parent_id"),
                int("num_dependent_backups", 0),
                ts_null("data_timestamp"),
                uuid_null("restore_volume_id"),
                uuid_null("temp_volume_id"),
                uuid_null("temp_snapshot_id"),
                flag("is_incremental", false),
                uuid_null("encryption_key_id"),
            ],
        ),
        table(
            "backup_metadata",
            vec![auto_id(), uuid_col("backup_id"), s("key"), s_null("value")],
        ),
        table(
            "quotas",
            vec![
                auto_id(),
                s("project_id"),
                s("resource"),
                int("hard_limit", 0),
                int("allocated", 0),
            ],
        ),
        table(
            "quota_classes",
            vec![
                auto_id(),
                s("class_name"),
                s("resource"),
                int("hard_limit", 0),
            ],
        ),
        table(
            "quota_usages",
            vec![
                auto_id(),
                s("project_id"),
                s("resource"),
                int("in_use", 0),
                int("reserved", 0),
                int_null("until_refresh"),
            ],
        ),
        table(
            "reservations",
            vec![
                auto_id(),
                uuid_col("uuid"),
                integer(Alias::new("usage_id")),
                s("project_id"),
                s("resource"),
                int("delta", 0),
                date_time(Alias::new("expire")),
                int_null("allocated_id"),
            ],
        ),
        table(
            "messages",
            vec![
                id36("id"),
                s("project_id"),
                s("request_id"),
                s("resource_type"),
                uuid_null("resource_uuid"),
                s("event_id"),
                s("message_level"),
                s_null("detail_id"),
                s_null("action_id"),
                date_time(Alias::new("expires_at")),
            ],
        ),
        table(
            "workers",
            vec![
                auto_id(),
                s("resource_type"),
                uuid_col("resource_id"),
                s("status"),
                s("operation"),
                int_null("service_id"),
                int("race_preventer", 0),
            ],
        ),
    ]
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        index(
            "services",
            "host_binary",
            &["host", "binary", "deleted"],
            false,
        ),
        index("services", "uuid", &["uuid"], true),
        index(
            "clusters",
            "name_binary",
            &["name", "binary", "deleted"],
            false,
        ),
        index("volumes", "project", &["project_id", "deleted"], false),
        index("volumes", "status", &["status"], false),
        index("volumes", "host", &["host"], false),
        index("volumes", "created_at", &["created_at"], false),
        index("volumes", "display_name", &["display_name"], false),
        index(
            "volume_metadata",
            "volume",
            &["volume_id", "deleted"],
            false,
        ),
        index(
            "volume_admin_metadata",
            "volume",
            &["volume_id", "deleted"],
            false,
        ),
        index(
            "volume_attachment",
            "volume",
            &["volume_id", "deleted"],
            false,
        ),
        index("snapshots", "volume", &["volume_id", "deleted"], false),
        index("snapshots", "project", &["project_id", "deleted"], false),
        index(
            "snapshot_metadata",
            "snapshot",
            &["snapshot_id", "deleted"],
            false,
        ),
        index("backups", "project", &["project_id", "deleted"], false),
        index("backups", "volume", &["volume_id", "deleted"], false),
        index(
            "backup_metadata",
            "backup",
            &["backup_id", "deleted"],
            false,
        ),
        index("volume_types", "name", &["name", "deleted"], false),
        index(
            "volume_type_extra_specs",
            "type",
            &["volume_type_id", "deleted"],
            false,
        ),
        index(
            "volume_type_projects",
            "type",
            &["volume_type_id", "project_id", "deleted"],
            false,
        ),
        index(
            "quotas",
            "project",
            &["project_id", "resource", "deleted"],
            false,
        ),
        index(
            "quota_classes",
            "class",
            &["class_name", "resource", "deleted"],
            false,
        ),
        index(
            "quota_usages",
            "project_resource",
            &["project_id", "resource"],
            true,
        ),
        index("reservations", "uuid", &["uuid"], false),
        index("reservations", "expire", &["deleted", "expire"], false),
        index("messages", "project", &["project_id", "deleted"], false),
        index(
            "workers",
            "resource",
            &["resource_type", "resource_id"],
            true,
        ),
    ]
}

fn table_name(t: &TableCreateStatement) -> TableRef {
    t.get_table_name().cloned().expect("tables are named")
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in tables() {
            manager.create_table(t).await?;
        }
        for i in indexes() {
            manager.create_index(i).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in tables().iter().rev() {
            manager
                .drop_table(Table::drop().table(table_name(t)).to_owned())
                .await?;
        }
        Ok(())
    }
}
