//! Volume types and their extra specs (what the scheduler matches against backends).

use std::collections::BTreeMap;

use chrono::Utc;
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};

use crate::entity::{
    default_volume_types, volume_type_extra_specs, volume_type_projects, volume_types,
};
use crate::error::{Error, Result};
use crate::soft_delete::soft_delete;
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

/// A volume type row with its extra specs, as the types API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRecord {
    /// The row.
    pub row: volume_types::Model,
    /// Extra specs.
    pub extra_specs: BTreeMap<String, String>,
}

/// Fields of a type update: `Some` sets.
#[derive(Debug, Clone, Default)]
pub struct TypeUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears).
    pub description: Option<Option<String>>,
    /// Public or private.
    pub is_public: Option<bool>,
}

impl Db {
    /// Creates a volume type (the API's create): name unique among live types
    /// ([`Error::Conflict`] otherwise).
    pub async fn create_type(
        &self,
        name: &str,
        description: Option<&str>,
        is_public: bool,
        extra_specs: &BTreeMap<String, String>,
    ) -> Result<TypeRecord> {
        if self.type_by_name(name).await?.is_some() {
            return Err(Error::Conflict {
                kind: "volume type",
                id: name.to_string(),
                expected: vec![],
                found: "exists".into(),
            });
        }
        let t = self.create_volume_type(name, extra_specs).await?;
        let now = Utc::now().naive_utc();
        volume_types::Entity::update_many()
            .col_expr(
                volume_types::Column::Description,
                Expr::value(description.map(str::to_string)),
            )
            .col_expr(volume_types::Column::IsPublic, Expr::value(is_public))
            .col_expr(volume_types::Column::UpdatedAt, Expr::value(now))
            .filter(volume_types::Column::Id.eq(t.id.as_str()))
            .exec(&self.conn)
            .await?;
        self.type_record(&t.id).await
    }

    async fn type_by_name(&self, name: &str) -> Result<Option<volume_types::Model>> {
        Ok(volume_types::Entity::find()
            .filter(volume_types::Column::Deleted.eq(false))
            .filter(volume_types::Column::Name.eq(name))
            .one(&self.conn)
            .await?)
    }

    /// A live type by id, with its extra specs.
    pub async fn type_record(&self, id: &str) -> Result<TypeRecord> {
        let row = volume_types::Entity::find_by_id(id.to_string())
            .filter(volume_types::Column::Deleted.eq(false))
            .one(&self.conn)
            .await?
            .ok_or_else(|| Error::NotFound {
                kind: "volume type",
                id: id.to_string(),
            })?;
        let extra_specs = self.extra_specs(id).await?;
        Ok(TypeRecord { row, extra_specs })
    }

    /// The extra specs of type `id`.
    pub async fn extra_specs(&self, id: &str) -> Result<BTreeMap<String, String>> {
        Ok(volume_type_extra_specs::Entity::find()
            .filter(volume_type_extra_specs::Column::VolumeTypeId.eq(id))
            .filter(volume_type_extra_specs::Column::Deleted.eq(false))
            .all(&self.conn)
            .await?
            .into_iter()
            .map(|s| (s.key, s.value.unwrap_or_default()))
            .collect())
    }

    /// Every live type (`project`: only the public ones and those it was given
    /// access to), by name.
    pub async fn list_types(&self, project: Option<&str>) -> Result<Vec<TypeRecord>> {
        let mut select =
            volume_types::Entity::find().filter(volume_types::Column::Deleted.eq(false));
        if let Some(p) = project {
            let granted = sea_orm::sea_query::Query::select()
                .column(volume_type_projects::Column::VolumeTypeId)
                .from(volume_type_projects::Entity)
                .and_where(volume_type_projects::Column::ProjectId.eq(p))
                .and_where(volume_type_projects::Column::Deleted.eq(false))
                .to_owned();
            select = select.filter(
                Condition::any()
                    .add(volume_types::Column::IsPublic.eq(true))
                    .add(volume_types::Column::Id.in_subquery(granted)),
            );
        }
        let rows = select
            .order_by_asc(volume_types::Column::Name)
            .all(&self.conn)
            .await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut specs: std::collections::HashMap<String, BTreeMap<String, String>> =
            Default::default();
        for chunk in ids.chunks(500) {
            for s in volume_type_extra_specs::Entity::find()
                .filter(volume_type_extra_specs::Column::VolumeTypeId.is_in(chunk.iter().cloned()))
                .filter(volume_type_extra_specs::Column::Deleted.eq(false))
                .all(&self.conn)
                .await?
            {
                specs
                    .entry(s.volume_type_id)
                    .or_default()
                    .insert(s.key, s.value.unwrap_or_default());
            }
        }
        Ok(rows
            .into_iter()
            .map(|row| TypeRecord {
                extra_specs: specs.remove(&row.id).unwrap_or_default(),
                row,
            })
            .collect())
    }

    /// Whether `project` may use type `id` (public, or granted).
    pub async fn type_accessible(&self, id: &str, project: &str) -> Result<bool> {
        let t = self.type_record(id).await?;
        if t.row.is_public {
            return Ok(true);
        }
        Ok(self.type_projects(id).await?.iter().any(|p| p == project))
    }

    /// The projects granted access to private type `id`.
    pub async fn type_projects(&self, id: &str) -> Result<Vec<String>> {
        Ok(volume_type_projects::Entity::find()
            .filter(volume_type_projects::Column::VolumeTypeId.eq(id))
            .filter(volume_type_projects::Column::Deleted.eq(false))
            .all(&self.conn)
            .await?
            .into_iter()
            .map(|p| p.project_id)
            .collect())
    }

    /// Grants (or, `grant = false`, revokes) `project` access to type `id`;
    /// [`Error::Conflict`] when it already has (or has not) access.
    pub async fn set_type_access(&self, id: &str, project: &str, grant: bool) -> Result<()> {
        let has = self.type_projects(id).await?.iter().any(|p| p == project);
        let now = Utc::now().naive_utc();
        match (grant, has) {
            (true, false) => {
                volume_type_projects::Entity::insert(volume_type_projects::ActiveModel {
                    volume_type_id: Set(id.to_string()),
                    project_id: Set(project.to_string()),
                    created_at: Set(now),
                    updated_at: Set(None),
                    deleted_at: Set(None),
                    deleted: Set(false),
                    ..Default::default()
                })
                .exec_without_returning(&self.conn)
                .await?;
                Ok(())
            }
            (false, true) => {
                soft_delete::<volume_type_projects::Entity>()
                    .filter(volume_type_projects::Column::VolumeTypeId.eq(id))
                    .filter(volume_type_projects::Column::ProjectId.eq(project))
                    .exec(&self.conn)
                    .await?;
                Ok(())
            }
            _ => Err(Error::Conflict {
                kind: "volume type access",
                id: format!("{id}/{project}"),
                expected: vec![],
                found: if has { "granted" } else { "not granted" }.into(),
            }),
        }
    }

    /// Updates type `id`.
    pub async fn update_type(&self, id: &str, u: &TypeUpdate) -> Result<TypeRecord> {
        if let Some(n) = &u.name {
            if let Some(other) = self.type_by_name(n).await? {
                if other.id != id {
                    return Err(Error::Conflict {
                        kind: "volume type",
                        id: n.clone(),
                        expected: vec![],
                        found: "exists".into(),
                    });
                }
            }
        }
        let mut q = volume_types::Entity::update_many()
            .col_expr(
                volume_types::Column::UpdatedAt,
                Expr::value(Utc::now().naive_utc()),
            )
            .filter(volume_types::Column::Id.eq(id))
            .filter(volume_types::Column::Deleted.eq(false));
        if let Some(n) = &u.name {
            q = q.col_expr(volume_types::Column::Name, Expr::value(n.clone()));
        }
        if let Some(d) = &u.description {
            q = q.col_expr(volume_types::Column::Description, Expr::value(d.clone()));
        }
        if let Some(p) = u.is_public {
            q = q.col_expr(volume_types::Column::IsPublic, Expr::value(p));
        }
        if q.exec(&self.conn).await?.rows_affected == 0 {
            return Err(Error::NotFound {
                kind: "volume type",
                id: id.to_string(),
            });
        }
        self.type_record(id).await
    }

    /// Deletes type `id` unless a live volume uses it or it is a project's default type
    /// ([`Error::Conflict`] with `found` "in use" or "a project default"). The checks
    /// and the delete are one conditional statement, so a create or a `default-types`
    /// PUT that lands between them cannot leave a live volume or a default naming a
    /// deleted type (on SQLite, where statements run one at a time; PostgreSQL and
    /// MariaDB see only what was committed when the statement began).
    pub async fn delete_type(&self, id: &str) -> Result<()> {
        use crate::entity::volumes;
        use sea_orm::sea_query::{ExprTrait, Query};
        let used = Query::select()
            .expr(Expr::val(1))
            .from(volumes::Entity)
            .and_where(volumes::Column::VolumeTypeId.eq(id))
            .and_where(volumes::Column::Deleted.eq(false))
            .to_owned();
        let a_default = Query::select()
            .expr(Expr::val(1))
            .from(default_volume_types::Entity)
            .and_where(default_volume_types::Column::VolumeTypeId.eq(id))
            .to_owned();
        let res = soft_delete::<volume_types::Entity>()
            .filter(volume_types::Column::Id.eq(id))
            .filter(Expr::exists(used).not())
            .filter(Expr::exists(a_default).not())
            .exec(&self.conn)
            .await?;
        if res.rows_affected == 1 {
            return Ok(());
        }
        // Nothing deleted: say why.
        self.type_record(id).await?;
        let found = if self.is_a_project_default(id).await? {
            "a project default"
        } else {
            "in use"
        };
        Err(Error::Conflict {
            kind: "volume type",
            id: id.to_string(),
            expected: vec![],
            found: found.into(),
        })
    }

    /// Sets extra specs of type `id` (adds or replaces the given keys).
    pub async fn set_extra_specs(&self, id: &str, specs: &BTreeMap<String, String>) -> Result<()> {
        let now = Utc::now().naive_utc();
        for (k, v) in specs {
            soft_delete::<volume_type_extra_specs::Entity>()
                .filter(volume_type_extra_specs::Column::VolumeTypeId.eq(id))
                .filter(volume_type_extra_specs::Column::Key.eq(k.as_str()))
                .exec(&self.conn)
                .await?;
            volume_type_extra_specs::Entity::insert(volume_type_extra_specs::ActiveModel {
                volume_type_id: Set(id.to_string()),
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
        Ok(())
    }

    /// Deletes extra spec `key` of type `id` ([`Error::NotFound`] when absent).
    pub async fn delete_extra_spec(&self, id: &str, key: &str) -> Result<()> {
        let res = soft_delete::<volume_type_extra_specs::Entity>()
            .filter(volume_type_extra_specs::Column::VolumeTypeId.eq(id))
            .filter(volume_type_extra_specs::Column::Key.eq(key))
            .exec(&self.conn)
            .await?;
        if res.rows_affected == 0 {
            return Err(Error::NotFound {
                kind: "extra spec",
                id: key.to_string(),
            });
        }
        Ok(())
    }
}

/// A project's own default type (3.62).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectDefaultType {
    /// The project.
    pub project_id: String,
    /// Its default type.
    pub volume_type_id: String,
}

impl Db {
    /// Makes type `type_id` the default of `project` (replacing any earlier one).
    pub async fn set_project_default_type(&self, project: &str, type_id: &str) -> Result<()> {
        use sea_orm::sea_query::OnConflict;
        let now = Utc::now().naive_utc();
        // One statement (an upsert), so two first settings at once cannot collide.
        default_volume_types::Entity::insert(default_volume_types::ActiveModel {
            project_id: Set(project.to_string()),
            volume_type_id: Set(type_id.to_string()),
            created_at: Set(now),
            updated_at: Set(Some(now)),
            deleted_at: Set(None),
            deleted: Set(false),
        })
        .on_conflict(
            OnConflict::column(default_volume_types::Column::ProjectId)
                .update_columns([
                    default_volume_types::Column::VolumeTypeId,
                    default_volume_types::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(&self.conn)
        .await?;
        Ok(())
    }

    /// The default type of `project`, if it has one of its own.
    pub async fn project_default_type(&self, project: &str) -> Result<Option<String>> {
        Ok(
            default_volume_types::Entity::find_by_id(project.to_string())
                .one(&self.conn)
                .await?
                .map(|r| r.volume_type_id),
        )
    }

    /// Every project's own default type, by project.
    pub async fn project_default_types(&self) -> Result<Vec<ProjectDefaultType>> {
        Ok(default_volume_types::Entity::find()
            .order_by_asc(default_volume_types::Column::ProjectId)
            .all(&self.conn)
            .await?
            .into_iter()
            .map(|r| ProjectDefaultType {
                project_id: r.project_id,
                volume_type_id: r.volume_type_id,
            })
            .collect())
    }

    /// Forgets `project`'s own default type (Cinder deletes the row).
    pub async fn unset_project_default_type(&self, project: &str) -> Result<()> {
        default_volume_types::Entity::delete_by_id(project.to_string())
            .exec(&self.conn)
            .await?;
        Ok(())
    }

    /// Whether type `type_id` is some project's own default.
    pub async fn is_a_project_default(&self, type_id: &str) -> Result<bool> {
        Ok(default_volume_types::Entity::find()
            .filter(default_volume_types::Column::VolumeTypeId.eq(type_id))
            .one(&self.conn)
            .await?
            .is_some())
    }
}
