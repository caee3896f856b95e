//! SCIM PATCH (RFC 7644 §3.5.2) applied to a resource's JSON, including the
//! forms real identity providers send: Okta's path-less `replace` of
//! `{"active": false}`, Entra ID's capitalised `Replace` and `"False"` strings.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{AttrPath, Filter, get_ci};

pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[derive(Deserialize)]
pub struct PatchRequest {
    #[serde(default)]
    pub schemas: Vec<String>,
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<PatchOperation>,
}

#[derive(Deserialize)]
pub struct PatchOperation {
    pub op: String,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub value: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
    Replace,
}

/// A PATCH target: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`.
struct Target {
    attr: String,
    filter: Option<Filter>,
    sub: Option<String>,
}

fn parse_target(raw: &str) -> Result<Target, ScimError> {
    let invalid = || ScimError::invalid_path(format!("invalid path {raw:?}"));
    let Some(open) = raw.find('[') else {
        let path = AttrPath::parse(raw.trim()).ok_or_else(invalid)?;
        return Ok(Target {
            attr: path.attr,
            filter: None,
            sub: path.sub,
        });
    };
    let close = raw.rfind(']').ok_or_else(invalid)?;
    let head = AttrPath::parse(raw[..open].trim()).ok_or_else(invalid)?;
    if head.sub.is_some() || close < open {
        return Err(invalid());
    }
    let filter = Filter::parse(&raw[open + 1..close])
        .map_err(|e| ScimError::invalid_path(format!("invalid filter in path {raw:?}: {e}")))?;
    let rest = raw[close + 1..].trim();
    let sub = match rest.strip_prefix('.') {
        Some(sub) if AttrPath::parse(sub).is_some_and(|p| p.sub.is_none()) => Some(sub.to_string()),
        None if rest.is_empty() => None,
        _ => return Err(invalid()),
    };
    Ok(Target {
        attr: head.attr,
        filter: Some(filter),
        sub,
    })
}

/// The key under which `name` lives in `object`, whatever its case.
fn key_of(object: &Map<String, Value>, name: &str) -> String {
    object
        .keys()
        .find(|k| k.eq_ignore_ascii_case(name))
        .cloned()
        .unwrap_or_else(|| name.to_string())
}

/// Booleans sent as strings (`"False"`), as Entra ID does, become booleans.
pub fn loosen_booleans(value: Value) -> Value {
    match value {
        Value::String(s) if s.eq_ignore_ascii_case("true") => Value::Bool(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Value::Bool(false),
        other => other,
    }
}

/// Applies every operation in order; any failure leaves `resource` as it was
/// (the caller works on a copy).
pub fn apply(
    resource: &mut Value,
    request: PatchRequest,
    boolean_attrs: &[&str],
) -> Result<(), ScimError> {
    if !request.schemas.is_empty() && !request.schemas.iter().any(|s| s == PATCH_SCHEMA) {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must contain {PATCH_SCHEMA}"
        )));
    }
    if request.operations.is_empty() {
        return Err(ScimError::invalid_syntax("Operations must not be empty"));
    }
    for operation in request.operations {
        let op = match operation.op.to_ascii_lowercase().as_str() {
            "add" => Op::Add,
            "remove" => Op::Remove,
            "replace" => Op::Replace,
            other => {
                return Err(ScimError::invalid_syntax(format!(
                    "unknown op {other:?}; use add, remove or replace"
                )));
            }
        };
        let value = operation.value.map(|v| normalize(v, boolean_attrs));
        match operation
            .path
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            None => apply_pathless(resource, op, value)?,
            Some(path) => {
                let target = parse_target(path)?;
                let leaf = target.sub.as_deref().unwrap_or(&target.attr);
                let value = if boolean_attrs.iter().any(|b| b.eq_ignore_ascii_case(leaf)) {
                    value.map(loosen_booleans)
                } else {
                    value
                };
                apply_path(resource, op, &target, value)?
            }
        }
    }
    Ok(())
}

/// Converts string booleans in the named attributes (and in their elements).
fn normalize(value: Value, boolean_attrs: &[&str]) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = if boolean_attrs.iter().any(|b| b.eq_ignore_ascii_case(&k)) {
                        loosen_booleans(v)
                    } else {
                        normalize(v, boolean_attrs)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| normalize(v, boolean_attrs))
                .collect(),
        ),
        other => other,
    }
}

fn apply_pathless(resource: &mut Value, op: Op, value: Option<Value>) -> Result<(), ScimError> {
    if op == Op::Remove {
        return Err(ScimError::no_target("remove needs a path"));
    }
    let Some(Value::Object(changes)) = value else {
        return Err(ScimError::invalid_value(
            "an operation without a path needs an object value",
        ));
    };
    for (name, value) in changes {
        // A URN-qualified extension key carries its own attributes.
        let target = Target {
            attr: name,
            filter: None,
            sub: None,
        };
        apply_path(resource, op, &target, Some(value))?;
    }
    Ok(())
}

fn apply_path(
    resource: &mut Value,
    op: Op,
    target: &Target,
    value: Option<Value>,
) -> Result<(), ScimError> {
    let Some(object) = resource.as_object_mut() else {
        return Err(ScimError::Internal("resource is not an object".into()));
    };
    let key = key_of(object, &target.attr);
    if op != Op::Remove && value.is_none() {
        return Err(ScimError::invalid_value(format!("{op:?} needs a value")));
    }
    match (&target.filter, &target.sub) {
        (None, None) => {
            match op {
                // Entra ID removes members by sending them as the value.
                Op::Remove => match (object.get_mut(&key), value) {
                    (Some(Value::Array(existing)), Some(Value::Array(gone))) => {
                        let gone_values: Vec<&Value> = gone
                            .iter()
                            .map(|g| get_ci(g, "value").unwrap_or(g))
                            .collect();
                        existing.retain(|item| {
                            !gone_values.contains(&get_ci(item, "value").unwrap_or(item))
                        });
                    }
                    _ => {
                        object.remove(&key);
                    }
                },
                Op::Replace => {
                    object.insert(key, value.unwrap_or(Value::Null));
                }
                Op::Add => {
                    let value = value.unwrap_or(Value::Null);
                    match (object.get_mut(&key), value) {
                        (Some(Value::Array(existing)), Value::Array(more)) => {
                            for item in more {
                                if !existing.contains(&item) {
                                    existing.push(item);
                                }
                            }
                        }
                        (Some(Value::Object(existing)), Value::Object(more)) => {
                            existing.extend(more)
                        }
                        (_, value) => {
                            object.insert(key, value);
                        }
                    }
                }
            }
            Ok(())
        }
        (None, Some(sub)) => {
            let entry = object
                .entry(key)
                .or_insert_with(|| Value::Object(Map::new()));
            let targets: Vec<&mut Value> = match entry {
                Value::Array(items) => items.iter_mut().collect(),
                other => vec![other],
            };
            for element in targets {
                set_sub(element, sub, op, value.clone())?;
            }
            Ok(())
        }
        (Some(filter), sub) => {
            let Some(Value::Array(items)) = object.get_mut(&key) else {
                return Err(ScimError::no_target(format!(
                    "{} has no values to filter",
                    target.attr
                )));
            };
            let matching: Vec<usize> = (0..items.len())
                .filter(|&i| filter.matches(&items[i], &[]))
                .collect();
            if matching.is_empty() {
                return Err(ScimError::no_target(format!(
                    "no value of {} matches the filter",
                    target.attr
                )));
            }
            match (op, sub) {
                (Op::Remove, None) => {
                    let mut index = 0;
                    items.retain(|_| {
                        let keep = !matching.contains(&index);
                        index += 1;
                        keep
                    });
                }
                (_, Some(sub)) => {
                    for &i in &matching {
                        set_sub(&mut items[i], sub, op, value.clone())?;
                    }
                }
                (_, None) => {
                    for &i in &matching {
                        match (&mut items[i], value.clone()) {
                            (Value::Object(existing), Some(Value::Object(more))) => {
                                existing.extend(more)
                            }
                            (slot, Some(value)) => *slot = value,
                            (_, None) => {}
                        }
                    }
                }
            }
            Ok(())
        }
    }
}

fn set_sub(element: &mut Value, sub: &str, op: Op, value: Option<Value>) -> Result<(), ScimError> {
    let Value::Object(map) = element else {
        return Err(ScimError::invalid_path(format!(
            "{sub} is not a sub-attribute here"
        )));
    };
    let key = key_of(map, sub);
    match (op, value) {
        (Op::Remove, _) => {
            map.remove(&key);
        }
        (_, Some(value)) => {
            map.insert(key, value);
        }
        (_, None) => return Err(ScimError::invalid_value("a value is required")),
    }
    Ok(())
}

/// The value of `attr` in a resource, ignoring case.
pub fn attribute<'a>(resource: &'a Value, attr: &str) -> Option<&'a Value> {
    get_ci(resource, attr)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patch(resource: Value, ops: Value) -> Result<Value, ScimError> {
        let mut resource = resource;
        let request: PatchRequest =
            serde_json::from_value(json!({"schemas": [PATCH_SCHEMA], "Operations": ops}))
                .unwrap_or_else(|e| panic!("{e}"));
        apply(&mut resource, request, &["active", "primary"]).map(|()| resource)
    }

    fn user() -> Value {
        json!({"userName": "a@example.com", "active": true, "name": {"givenName": "A"},
               "emails": [{"value": "a@example.com", "type": "work", "primary": true}, {"value": "a@home.org", "type": "home"}]})
    }

    #[test]
    fn okta_and_entra_forms() {
        let okta = patch(
            user(),
            json!([{"op": "replace", "value": {"active": false}}]),
        )
        .unwrap_or_default();
        assert_eq!(okta["active"], false);
        let entra = patch(
            user(),
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
        )
        .unwrap_or_default();
        assert_eq!(entra["active"], false);
    }

    #[test]
    fn value_filters_and_sub_attributes() {
        let changed = patch(user(), json!([
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@example.com"},
            {"op": "remove", "path": "emails[type eq \"home\"]"},
            {"op": "add", "path": "name.familyName", "value": "B"},
            {"op": "add", "path": "emails", "value": [{"value": "x@y.z", "type": "other"}]}
        ])).unwrap_or_default();
        assert_eq!(changed["emails"][0]["value"], "new@example.com");
        assert_eq!(changed["emails"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            changed["name"],
            json!({"givenName": "A", "familyName": "B"})
        );
    }

    #[test]
    fn entra_removes_members_by_value() {
        let group = json!({"displayName": "g", "members": [{"value": "a"}, {"value": "b"}, {"value": "c"}]});
        let changed = patch(
            group,
            json!([{"op": "Remove", "path": "members", "value": [{"value": "b"}]}]),
        )
        .unwrap_or_default();
        assert_eq!(changed["members"], json!([{"value": "a"}, {"value": "c"}]));
    }

    #[test]
    fn failures_name_the_problem() {
        let no_target = patch(
            user(),
            json!([{"op": "remove", "path": "emails[type eq \"fax\"]"}]),
        );
        assert!(matches!(
            no_target,
            Err(ScimError::BadRequest {
                scim_type: "noTarget",
                ..
            })
        ));
        let bad_path = patch(
            user(),
            json!([{"op": "replace", "path": "emails[type eq", "value": 1}]),
        );
        assert!(matches!(
            bad_path,
            Err(ScimError::BadRequest {
                scim_type: "invalidPath",
                ..
            })
        ));
        let bad_op = patch(
            user(),
            json!([{"op": "merge", "path": "active", "value": true}]),
        );
        assert!(matches!(
            bad_op,
            Err(ScimError::BadRequest {
                scim_type: "invalidSyntax",
                ..
            })
        ));
        let pathless_remove = patch(user(), json!([{"op": "remove"}]));
        assert!(matches!(
            pathless_remove,
            Err(ScimError::BadRequest {
                scim_type: "noTarget",
                ..
            })
        ));
    }
}
