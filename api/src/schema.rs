//! Request validation by JSON schema, as Cinder validates (`cinder/api/schemas`,
//! `cinder/api/validation/parameter_types.py`): one schema per request body and
//! microversion range, compiled once. A failure is a 400 naming the field, the value
//! and the rule, in Cinder's words.

use serde_json::{json, Value};

use crate::error::ApiError;

/// A compiled schema.
pub struct Schema(jsonschema::Validator);

impl Schema {
    /// Compiles `schema` (a programming error panics at first use, caught by the tests
    /// that compile every schema).
    pub fn new(schema: Value) -> Schema {
        Schema(jsonschema::validator_for(&schema).expect("a valid JSON schema"))
    }

    /// Checks `body`; the first violation is the 400.
    pub fn check(&self, body: &Value) -> Result<(), ApiError> {
        // A missing required field says more than what else is wrong beside it.
        let mut errors: Vec<_> = self.0.iter_errors(body).collect();
        errors.sort_by_key(|e| {
            !matches!(
                e.kind,
                jsonschema::error::ValidationErrorKind::Required { .. }
            )
        });
        match errors.into_iter().next() {
            None => Ok(()),
            Some(e) => {
                let pointer = e.instance_path.to_string();
                let field = pointer.rsplit('/').next().unwrap_or_default();
                Err(ApiError::bad_request(if field.is_empty() {
                    format!("Invalid input for field/attribute. {e}")
                } else {
                    format!(
                        "Invalid input for field/attribute {field}. Value: {}. {e}",
                        e.instance
                    )
                }))
            }
        }
    }
}

/// Declares a lazily compiled schema.
macro_rules! schema {
    ($name:ident, $body:expr) => {
        pub(crate) static $name: std::sync::LazyLock<$crate::schema::Schema> =
            std::sync::LazyLock::new(|| $crate::schema::Schema::new($body));
    };
}
pub(crate) use schema;

/// `parameter_types.name_allow_zero_min_length`: a string or null, at most 255.
pub fn name() -> Value {
    json!({"type": ["string", "null"], "minLength": 0, "maxLength": 255})
}

/// `parameter_types.description`: a string or null, at most 255.
pub fn description() -> Value {
    json!({"type": ["string", "null"], "minLength": 0, "maxLength": 255})
}

/// A size in GiB: a positive integer, or a string of digits (Cinder accepts both).
pub fn size() -> Value {
    json!({"type": ["integer", "string"], "pattern": "^[0-9]+$", "minimum": 1,
           "maximum": 2147483647})
}

/// A size that may be left out (`null`) where the source decides it.
pub fn size_or_null() -> Value {
    json!({"type": ["integer", "string", "null"], "pattern": "^[0-9]+$", "minimum": 1,
           "maximum": 2147483647})
}

/// `parameter_types.boolean`: JSON booleans and oslo's boolean strings.
pub fn boolean() -> Value {
    json!({"type": ["boolean", "string"], "enum": [
        true, "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", "y", "t",
        false, "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no", "n", "f"
    ]})
}

/// An id (`parameter_types.uuid` as Cinder uses it: a string).
pub fn uuid() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 255})
}

/// An id or null.
pub fn uuid_or_null() -> Value {
    json!({"type": ["string", "null"], "minLength": 1, "maxLength": 255})
}

/// `parameter_types.metadata_allows_null`: keys of 1 to 255 characters, string values
/// of at most 255.
pub fn metadata() -> Value {
    json!({"type": ["object", "null"],
           "patternProperties": {"^.{1,255}$": {"type": "string", "maxLength": 255}},
           "additionalProperties": false})
}

/// Metadata that may not be null.
pub fn metadata_required() -> Value {
    json!({"type": "object",
           "patternProperties": {"^.{1,255}$": {"type": "string", "maxLength": 255}},
           "additionalProperties": false})
}

/// An object of strings (metadata, extra specs; after its schema accepted it) as a map;
/// `None` or a non-object is empty.
pub fn string_map(v: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    v.and_then(|m| m.as_object())
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A whole size or a digit string, as a number (after [`size`] accepted it).
pub fn as_size(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A boolean or one of oslo's strings, as a boolean (after [`boolean`] accepted it).
pub fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => cinder_common::strutils::bool_from_string(s),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    schema!(
        T,
        json!({"type": "object", "properties": {"v": {
        "type": "object", "properties": {"size": size(), "name": name(), "meta": metadata()},
        "additionalProperties": false}}, "required": ["v"], "additionalProperties": false})
    );

    fn check(body: Value) -> Result<(), String> {
        T.check(&body).map_err(|e| e.message)
    }

    #[test]
    fn violations_name_the_field_and_the_value() {
        assert!(check(json!({"v": {"size": 1, "name": "a"}})).is_ok());
        assert!(check(json!({"v": {"size": "12"}})).is_ok());
        for (body, field) in [
            (json!({"v": {"size": 0}}), "size"),
            (json!({"v": {"size": -1}}), "size"),
            (json!({"v": {"size": 1.5}}), "size"),
            (json!({"v": {"size": "1.5"}}), "size"),
            (json!({"v": {"size": true}}), "size"),
            (json!({"v": {"name": "x".repeat(256)}}), "name"),
            (json!({"v": {"meta": {"k": 1}}}), "k"),
        ] {
            let e = check(body.clone()).unwrap_err();
            assert!(
                e.starts_with(&format!("Invalid input for field/attribute {field}.")),
                "{body}: {e}"
            );
        }
        assert!(check(json!({"v": {"what": 1}})).is_err());
        assert!(check(json!({}))
            .unwrap_err()
            .contains("\"v\" is a required property"));
    }
}
