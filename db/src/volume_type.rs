//! Volume types and their extra specs (what the scheduler matches against backends).

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter};

use crate::entity::{volume_type_extra_specs, volume_types};
use crate::error::{Error, Result};
use crate::Db;

/// A volume type with its extra specs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeType {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Extra specs.
    pub extra_specs: BTreeMap<String, String>,
}

impl Db {
    /// Creates a public volume type with `extra_specs`.
    pub async fn create_volume_type(
        &self,
        name: &str,
        extra_specs: &BTreeMap<String, String>,
    ) -> Result<VolumeType> {
        let id = uuid::Uuid::new_v4().to_string();
        let now = Utc::now().naive_utc();
        volume_types::Entity::insert(volume_types::ActiveModel {
            id: Set(id.clone()),
            name: Set(name.to_string()),
            description: Set(None),
            is_public: Set(true),
            qos_specs_id: Set(None),
            created_at: Set(now),
            updated_at: Set(None),
            deleted_at: Set(None),
            deleted: Set(false),
        })
        .exec_without_returning(&self.conn)
        .await?;
        for (k, v) in extra_specs {
            volume_type_extra_specs::Entity::insert(volume_type_extra_specs::ActiveModel {
                volume_type_id: Set(id.clone()),
                key: Set(k.clone()),
                value: Set(Some(v.clone())),
                created_at: Set(now),
                updated_at: Set(None),
                deleted_at: Set(None),
                deleted: Set(false),
                ..Default::default()
            })
            .exec_without_returning(&self.conn)
            .await?;
        }
        Ok(VolumeType {
            id,
            name: name.to_string(),
            extra_specs: extra_specs.clone(),
        })
    }

    /// The volume type named or identified by `name_or_id` (the id wins), with its
    /// extra specs; [`Error::NotFound`] when there is none.
    pub async fn volume_type_by_name_or_id(&self, name_or_id: &str) -> Result<VolumeType> {
        let rows = volume_types::Entity::find()
            .filter(volume_types::Column::Deleted.eq(false))
            .filter(
                Condition::any()
                    .add(volume_types::Column::Id.eq(name_or_id))
                    .add(volume_types::Column::Name.eq(name_or_id)),
            )
            .all(&self.conn)
            .await?;
        let row = rows
            .iter()
            .find(|r| r.id == name_or_id)
            .or_else(|| rows.first())
            .ok_or_else(|| Error::NotFound {
                kind: "volume type",
                id: name_or_id.to_string(),
            })?;
        let specs = volume_type_extra_specs::Entity::find()
            .filter(volume_type_extra_specs::Column::VolumeTypeId.eq(row.id.as_str()))
            .filter(volume_type_extra_specs::Column::Deleted.eq(false))
            .all(&self.conn)
            .await?;
        Ok(VolumeType {
            id: row.id.clone(),
            name: row.name.clone(),
            extra_specs: specs
                .into_iter()
                .map(|s| (s.key, s.value.unwrap_or_default()))
                .collect(),
        })
    }
}
