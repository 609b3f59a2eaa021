//! `/types`: volume types, their extra specs, and private types' project access.
//! Reading is for everyone (private types only to admins and granted projects);
//! writing is for admins, as Cinder's default policy.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cinder_db::TypeRecord;
use serde_json::{json, Value};

use crate::body::JsonBody;
use crate::error::ApiError;
use crate::request::Req;
use crate::schema::{self, schema};
use crate::AppState;

/// Extra specs non-admins may see (Cinder's user-visible keys).
const USER_VISIBLE: &[&str] = &[
    "multiattach",
    "RESKEY:availability_zones",
    "replication_enabled",
];

fn spec_key() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[a-zA-Z0-9-_:. /]{1,255}$"})
}

fn specs() -> Value {
    json!({"type": "object",
           "patternProperties": {"^[a-zA-Z0-9-_:. /]{1,255}$": {"type": "string", "maxLength": 255}},
           "additionalProperties": false})
}

schema!(
    CREATE,
    json!({
        "type": "object",
        "properties": {"volume_type": {
            "type": "object",
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": schema::description(),
                "os-volume-type-access:is_public": schema::boolean(),
                "extra_specs": specs(),
            },
            "required": ["name"],
            "additionalProperties": false,
        }},
        "required": ["volume_type"],
        "additionalProperties": false,
    })
);

schema!(
    UPDATE,
    json!({
        "type": "object",
        "properties": {"volume_type": {
            "type": "object",
            "properties": {
                "name": {"type": ["string", "null"], "minLength": 1, "maxLength": 255},
                "description": schema::description(),
                "is_public": schema::boolean(),
            },
            "additionalProperties": false,
        }},
        "required": ["volume_type"],
        "additionalProperties": false,
    })
);

schema!(
    EXTRA_SPECS,
    json!({
        "type": "object",
        "properties": {"extra_specs": specs()},
        "required": ["extra_specs"],
        "additionalProperties": false,
    })
);

schema!(
    ACCESS,
    json!({
        "type": "object",
        "properties": {
            "addProjectAccess": {"type": "object", "properties": {"project": spec_key()},
                                 "required": ["project"], "additionalProperties": false},
            "removeProjectAccess": {"type": "object", "properties": {"project": spec_key()},
                                    "required": ["project"], "additionalProperties": false},
        },
        "minProperties": 1,
        "maxProperties": 1,
        "additionalProperties": false,
    })
);

/// Whether the caller may create volumes of type `id`.
pub(crate) async fn may_use(state: &AppState, r: &Req, id: &str) -> Result<bool, ApiError> {
    if r.ctx.is_admin {
        return Ok(true);
    }
    match state.db.type_accessible(id, &r.ctx.project_id).await {
        Ok(b) => Ok(b),
        Err(cinder_db::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(ApiError::from_db(e)),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("Volume type {id} could not be found."))
}

fn view(r: &Req, t: &TypeRecord) -> Value {
    let specs: BTreeMap<&String, &String> = t
        .extra_specs
        .iter()
        .filter(|(k, _)| r.ctx.is_admin || USER_VISIBLE.contains(&k.as_str()))
        .collect();
    json!({
        "id": t.row.id,
        "name": t.row.name,
        "description": t.row.description,
        "is_public": t.row.is_public,
        "os-volume-type-access:is_public": t.row.is_public,
        "qos_specs_id": t.row.qos_specs_id,
        "extra_specs": specs,
    })
}

/// Type `id` (or the name of one, as Cinder also accepts) if the caller may see it.
async fn visible(state: &AppState, r: &Req, id: &str) -> Result<TypeRecord, ApiError> {
    let t = match state.db.type_record(id).await {
        Ok(t) => t,
        Err(cinder_db::Error::NotFound { .. }) => {
            let by_name = state
                .db
                .volume_type_by_name_or_id(id)
                .await
                .map_err(|_| not_found(id))?;
            state
                .db
                .type_record(&by_name.id)
                .await
                .map_err(ApiError::from_db)?
        }
        Err(e) => return Err(ApiError::from_db(e)),
    };
    if may_use(state, r, &t.row.id).await? {
        Ok(t)
    } else {
        Err(not_found(id))
    }
}

/// `GET /types`.
pub(crate) async fn index(State(state): State<AppState>, r: Req) -> Result<Response, ApiError> {
    let project = (!r.ctx.is_admin).then_some(r.ctx.project_id.as_str());
    let mut types = state
        .db
        .list_types(project)
        .await
        .map_err(ApiError::from_db)?;
    // Admins: `is_public=true` (the default) public only, `false` private only,
    // `None` all.
    if r.ctx.is_admin {
        match r
            .query_value("is_public")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("true") | Some("1") => types.retain(|t| t.row.is_public),
            Some("false") | Some("0") => types.retain(|t| !t.row.is_public),
            _ => {}
        }
    }
    let docs: Vec<Value> = types.iter().map(|t| view(&r, t)).collect();
    Ok(Json(json!({ "volume_types": docs })).into_response())
}

/// `GET /types/{id}` (also `default`).
pub(crate) async fn show(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = if id == "default" {
        default_of(&state, &r.ctx.project_id).await?
    } else {
        id
    };
    let t = visible(&state, &r, &id).await?;
    Ok(Json(json!({ "volume_type": view(&r, &t) })).into_response())
}

/// `POST /types` (admin).
pub(crate) async fn create(
    State(state): State<AppState>,
    r: Req,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    r.ctx.require_admin("volume_extension:types_manage")?;
    CREATE.check(&body)?;
    let t = &body["volume_type"];
    let name = t["name"].as_str().unwrap_or_default().trim().to_string();
    if name.is_empty() {
        return Err(ApiError::bad_request(
            "Invalid input for field/attribute name. Value: . The name may not be blank.",
        ));
    }
    let is_public = t
        .get("os-volume-type-access:is_public")
        .and_then(schema::as_bool)
        .unwrap_or(true);
    let specs: BTreeMap<String, String> = schema::string_map(t.get("extra_specs"));
    let rec = state
        .db
        .create_type(&name, t["description"].as_str(), is_public, &specs)
        .await
        .map_err(|e| match e {
            cinder_db::Error::Conflict { .. } => {
                ApiError::conflict(format!("Volume Type {name} already exists."))
            }
            e => ApiError::from_db(e),
        })?;
    Ok(Json(json!({ "volume_type": view(&r, &rec) })).into_response())
}

/// `PUT /types/{id}` (admin).
pub(crate) async fn update(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    r.ctx.require_admin("volume_extension:types_manage")?;
    UPDATE.check(&body)?;
    let t = &body["volume_type"];
    let u = cinder_db::TypeUpdate {
        name: t
            .get("name")
            .and_then(|n| n.as_str())
            .map(|n| n.trim().to_string()),
        description: t.get("description").map(|d| d.as_str().map(str::to_string)),
        is_public: t.get("is_public").and_then(schema::as_bool),
    };
    if u.name.is_none() && u.description.is_none() && u.is_public.is_none() {
        return Err(ApiError::bad_request(
            "Specify volume type name, description, is_public or a combination thereof.",
        ));
    }
    if u.name.as_deref() == Some("") {
        return Err(ApiError::bad_request("Volume type name can not be empty."));
    }
    let rec = state.db.update_type(&id, &u).await.map_err(|e| match e {
        cinder_db::Error::NotFound { .. } => not_found(&id),
        cinder_db::Error::Conflict { id: n, .. } => {
            ApiError::conflict(format!("Volume Type {n} already exists."))
        }
        e => ApiError::from_db(e),
    })?;
    Ok(Json(json!({ "volume_type": view(&r, &rec) })).into_response())
}

/// `DELETE /types/{id}` (admin; refused while volumes use it).
pub(crate) async fn delete(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    r.ctx.require_admin("volume_extension:types_manage")?;
    let t = state.db.type_record(&id).await.map_err(|e| match e {
        cinder_db::Error::NotFound { .. } => not_found(&id),
        e => ApiError::from_db(e),
    })?;
    let is_default = || {
        ApiError::bad_request(format!(
            "The volume type {} is a default volume type and cannot be deleted.",
            t.row.id
        ))
    };
    if t.row.name == state.default_volume_type {
        return Err(is_default());
    }
    // In use or a project's default: checked in the delete itself.
    state.db.delete_type(&t.row.id).await.map_err(|e| match e {
        cinder_db::Error::Conflict { found, .. } if found == "a project default" => is_default(),
        cinder_db::Error::Conflict { .. } => {
            ApiError::bad_request("Target volume type is still in use.")
        }
        cinder_db::Error::NotFound { .. } => not_found(&id),
        e => ApiError::from_db(e),
    })?;
    Ok(StatusCode::ACCEPTED.into_response())
}

/// `GET /types/{id}/extra_specs`.
pub(crate) async fn specs_index(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let t = visible(&state, &r, &id).await?;
    let v = view(&r, &t);
    Ok(Json(json!({ "extra_specs": v["extra_specs"] })).into_response())
}

/// `POST /types/{id}/extra_specs` (admin).
pub(crate) async fn specs_create(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    r.ctx.require_admin("volume_extension:types_manage")?;
    EXTRA_SPECS.check(&body)?;
    let t = visible(&state, &r, &id).await?;
    let specs: BTreeMap<String, String> = schema::string_map(body.get("extra_specs"));
    state
        .db
        .set_extra_specs(&t.row.id, &specs)
        .await
        .map_err(ApiError::from_db)?;
    Ok(Json(json!({ "extra_specs": specs })).into_response())
}

/// `GET /types/{id}/extra_specs/{key}`.
pub(crate) async fn spec_show(
    State(state): State<AppState>,
    r: Req,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let t = visible(&state, &r, &id).await?;
    match t.extra_specs.get(&key) {
        Some(v) if r.ctx.is_admin || USER_VISIBLE.contains(&key.as_str()) => {
            Ok(Json(json!({ key: v })).into_response())
        }
        _ => Err(ApiError::not_found(format!(
            "Volume Type {id} has no extra specs with key {key}."
        ))),
    }
}

/// `PUT /types/{id}/extra_specs/{key}` (admin): the body's one key must be `key`.
pub(crate) async fn spec_set(
    State(state): State<AppState>,
    r: Req,
    Path((id, key)): Path<(String, String)>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    r.ctx.require_admin("volume_extension:types_manage")?;
    let obj = body.as_object().cloned().unwrap_or_default();
    if obj.len() != 1 {
        return Err(ApiError::bad_request(
            "Request body contains too many items",
        ));
    }
    let Some(val) = obj.get(&key) else {
        return Err(ApiError::bad_request("Request body and URI mismatch"));
    };
    let Some(val) = val.as_str().filter(|v| v.len() <= 255) else {
        return Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute {key}. Value: {val}. It must be a string of at most 255 characters."
        )));
    };
    let t = visible(&state, &r, &id).await?;
    let specs = BTreeMap::from([(key.clone(), val.to_string())]);
    state
        .db
        .set_extra_specs(&t.row.id, &specs)
        .await
        .map_err(ApiError::from_db)?;
    Ok(Json(json!({ key: val })).into_response())
}

/// `DELETE /types/{id}/extra_specs/{key}` (admin).
pub(crate) async fn spec_delete(
    State(state): State<AppState>,
    r: Req,
    Path((id, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    r.ctx.require_admin("volume_extension:types_manage")?;
    let t = visible(&state, &r, &id).await?;
    match state.db.delete_extra_spec(&t.row.id, &key).await {
        Ok(()) => Ok(StatusCode::ACCEPTED.into_response()),
        Err(cinder_db::Error::NotFound { .. }) => Err(ApiError::not_found(format!(
            "Volume Type {id} has no extra specs with key {key}."
        ))),
        Err(e) => Err(ApiError::from_db(e)),
    }
}

/// `POST /types/{id}/action`: `addProjectAccess`, `removeProjectAccess` (admin).
pub(crate) async fn action(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    r.ctx
        .require_admin("volume_extension:volume_type_access:addProjectAccess")?;
    ACCESS.check(&body)?;
    let t = state.db.type_record(&id).await.map_err(|e| match e {
        cinder_db::Error::NotFound { .. } => not_found(&id),
        e => ApiError::from_db(e),
    })?;
    if t.row.is_public {
        return Err(ApiError::bad_request(
            "Invalid volume type: Type access modification is not applicable to public volume type.",
        ));
    }
    let (grant, project) = match (
        body.get("addProjectAccess"),
        body.get("removeProjectAccess"),
    ) {
        (Some(a), None) => (true, a["project"].as_str().unwrap_or_default()),
        (None, Some(a)) => (false, a["project"].as_str().unwrap_or_default()),
        _ => return Err(ApiError::bad_request("Exactly one action is expected.")),
    };
    match state.db.set_type_access(&id, project, grant).await {
        Ok(()) => Ok(StatusCode::ACCEPTED.into_response()),
        Err(cinder_db::Error::Conflict { .. }) if grant => Err(ApiError::conflict(format!(
            "Volume type access for {id} / {project} combination already exists."
        ))),
        Err(cinder_db::Error::Conflict { .. }) => Err(ApiError::not_found(format!(
            "Volume type access not found for {id} / {project} combination."
        ))),
        Err(e) => Err(ApiError::from_db(e)),
    }
}

/// `GET /types/{id}/os-volume-type-access` (admin).
pub(crate) async fn access_list(
    State(state): State<AppState>,
    r: Req,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    r.ctx.require_admin("volume_extension:volume_type_access")?;
    let t = state.db.type_record(&id).await.map_err(|e| match e {
        cinder_db::Error::NotFound { .. } => not_found(&id),
        e => ApiError::from_db(e),
    })?;
    if t.row.is_public {
        return Err(ApiError::not_found(
            "Access list not available for public volume types.",
        ));
    }
    let projects = state
        .db
        .type_projects(&id)
        .await
        .map_err(ApiError::from_db)?;
    let docs: Vec<Value> = projects
        .iter()
        .map(|p| json!({"volume_type_id": id, "project_id": p}))
        .collect();
    Ok(Json(json!({ "volume_type_access": docs })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_schema_compiles() {
        for s in [&*CREATE, &*UPDATE, &*EXTRA_SPECS, &*ACCESS] {
            let _ = s.check(&json!({}));
        }
        assert!(CREATE.check(&json!({"volume_type": {"name": "t"}})).is_ok());
        assert!(CREATE.check(&json!({"volume_type": {"name": ""}})).is_err());
        assert!(ACCESS
            .check(&json!({"addProjectAccess": {"project": "p"}, "removeProjectAccess": {"project": "p"}}))
            .is_err());
    }
}

/// The type (name or id) a volume of `project` gets when nothing names one: the
/// project's own default (3.62), else `default_volume_type`.
pub(crate) async fn default_of(state: &AppState, project: &str) -> Result<String, ApiError> {
    Ok(project_default_or_conf(state, project).await?.0)
}

/// [`default_of`], and whether it is the project's own (`false`: the configured one).
pub(crate) async fn project_default_or_conf(
    state: &AppState,
    project: &str,
) -> Result<(String, bool), ApiError> {
    Ok(
        match state
            .db
            .project_default_type(project)
            .await
            .map_err(ApiError::from_db)?
        {
            Some(t) => (t, true),
            None => (state.default_volume_type.clone(), false),
        },
    )
}

/// `{"default_type": {"project_id", "volume_type_id"}}`.
fn default_view(project: &str, type_id: &str) -> Value {
    json!({ "project_id": project, "volume_type_id": type_id })
}

schema!(
    DEFAULT_TYPE_SET,
    json!({
        "type": "object",
        "properties": {"default_type": {
            "type": "object",
            "properties": {"volume_type": {"type": "string", "minLength": 1, "maxLength": 255}},
            "required": ["volume_type"],
            "additionalProperties": false,
        }},
        "required": ["default_type"],
    })
);

/// `PUT /default-types/{project}` (3.62, admin): `{"default_type": {"volume_type": name
/// or id}}`; 400 for an unknown type.
pub(crate) async fn default_set(
    State(state): State<AppState>,
    r: Req,
    Path(project): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    r.since(62)?;
    r.ctx
        .require_admin("volume_extension:default_set_or_update")?;
    DEFAULT_TYPE_SET.check(&body)?;
    let asked = body["default_type"]["volume_type"]
        .as_str()
        .unwrap_or_default();
    let t = match state.db.volume_type_by_name_or_id(asked).await {
        Ok(t) => t,
        Err(cinder_db::Error::NotFound { .. }) => {
            return Err(ApiError::bad_request(format!(
                "Volume type with name {asked} could not be found."
            )))
        }
        Err(e) => return Err(ApiError::from_db(e)),
    };
    let usable = state
        .db
        .type_accessible(&t.id, &project)
        .await
        .map_err(ApiError::from_db)?;
    if !usable {
        return Err(ApiError::bad_request(format!(
            "Volume type {} is private and project {project} has no access to it.",
            t.id
        )));
    }
    state
        .db
        .set_project_default_type(&project, &t.id)
        .await
        .map_err(ApiError::from_db)?;
    Ok(Json(json!({ "default_type": default_view(&project, &t.id) })).into_response())
}

/// `GET /default-types/{project}` (3.62, admin); 404 when the project has none.
pub(crate) async fn default_show(
    State(state): State<AppState>,
    r: Req,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    r.since(62)?;
    r.ctx.require_admin("volume_extension:default_get")?;
    match state
        .db
        .project_default_type(&project)
        .await
        .map_err(ApiError::from_db)?
    {
        Some(t) => Ok(Json(json!({ "default_type": default_view(&project, &t) })).into_response()),
        None => Err(ApiError::not_found(format!(
            "Default type for project {project} not found."
        ))),
    }
}

/// `GET /default-types` (3.62, admin).
pub(crate) async fn default_index(
    State(state): State<AppState>,
    r: Req,
) -> Result<Response, ApiError> {
    r.since(62)?;
    r.ctx.require_admin("volume_extension:default_get_all")?;
    let all = state
        .db
        .project_default_types()
        .await
        .map_err(ApiError::from_db)?;
    let docs: Vec<Value> = all
        .iter()
        .map(|d| default_view(&d.project_id, &d.volume_type_id))
        .collect();
    Ok(Json(json!({ "default_types": docs })).into_response())
}

/// `DELETE /default-types/{project}` (3.62, admin): 204, also when none was set.
pub(crate) async fn default_unset(
    State(state): State<AppState>,
    r: Req,
    Path(project): Path<String>,
) -> Result<Response, ApiError> {
    r.since(62)?;
    r.ctx.require_admin("volume_extension:default_unset")?;
    state
        .db
        .unset_project_default_type(&project)
        .await
        .map_err(ApiError::from_db)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
