//! SCIM PATCH (RFC 7644 §3.5.2) applied to a resource's JSON, including the
//! forms real identity providers send: Okta's path-less `replace` of
//! `{"active": false}`, Entra ID's capitalised `Replace` and `"False"` strings.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::ScimError;
use super::filter::{AttrPath, Filter, MAX_FILTER_LENGTH, get_ci};
use super::schema::{Mutability, Schema};

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

/// Parses a path and checks it against the schema. `None`: the path names
/// an attribute of a schema this service does not declare, which is
/// dropped like such attributes are at create.
fn parse_target(raw: &str, schema: &Schema) -> Result<Option<Target>, ScimError> {
    if raw.len() > MAX_FILTER_LENGTH {
        return Err(ScimError::invalid_path(format!(
            "the path is longer than {MAX_FILTER_LENGTH} characters"
        )));
    }
    let invalid = || ScimError::invalid_path(format!("invalid path {raw:?}"));
    let (head, bracketed) = match raw.find('[') {
        Some(open) => (raw[..open].trim(), Some(&raw[open..])),
        None => (raw.trim(), None),
    };
    let head = match head.rfind(':') {
        Some(at) if head.to_ascii_lowercase().starts_with("urn:") => {
            if !head[..at].eq_ignore_ascii_case(schema.id) {
                return Ok(None);
            }
            &head[at + 1..]
        }
        Some(_) => return Err(invalid()),
        None => head,
    };
    let path = AttrPath::parse(head).ok_or_else(invalid)?;
    let (filter, sub) = match bracketed {
        None => (None, path.sub),
        Some(bracketed) => {
            let close = bracketed.rfind(']').ok_or_else(invalid)?;
            if path.sub.is_some() {
                return Err(invalid());
            }
            // Parsed as `attr[filter]` so the brackets count as a level of nesting.
            let parsed =
                Filter::parse(&format!("{head}{}", &bracketed[..=close])).map_err(|e| {
                    ScimError::invalid_path(format!("invalid filter in path {raw:?}: {e}"))
                })?;
            let Filter::ValuePath { filter, .. } = parsed else {
                return Err(invalid());
            };
            let filter = *filter;
            let rest = bracketed[close + 1..].trim();
            let sub = match rest.strip_prefix('.') {
                Some(sub) if AttrPath::parse(sub).is_some_and(|p| p.sub.is_none()) => {
                    Some(sub.to_string())
                }
                None if rest.is_empty() => None,
                _ => return Err(invalid()),
            };
            (Some(filter), sub)
        }
    };
    check_target(&path.attr, filter.is_some(), sub.as_deref(), schema)?;
    Ok(Some(Target {
        attr: path.attr,
        filter,
        sub,
    }))
}

/// `id`, `meta` and `schemas`: never changed by a PATCH.
fn is_reserved(attr: &str) -> bool {
    ["id", "meta", "schemas"]
        .iter()
        .any(|r| r.eq_ignore_ascii_case(attr))
}

/// The path must name a declared attribute the client may change.
fn check_target(
    attr: &str,
    filtered: bool,
    sub: Option<&str>,
    schema: &Schema,
) -> Result<(), ScimError> {
    if is_reserved(attr) {
        return Err(ScimError::mutability(format!("{attr} is read-only")));
    }
    let Some(attribute) = schema.attribute(attr) else {
        return Err(ScimError::invalid_path(format!(
            "{attr} is not an attribute of {}",
            schema.name
        )));
    };
    if attribute.mutability == Mutability::ReadOnly {
        return Err(ScimError::mutability(format!("{attr} is read-only")));
    }
    if filtered && !attribute.multi {
        return Err(ScimError::invalid_path(format!(
            "{attr} is not multi-valued: it cannot take a [filter]"
        )));
    }
    if let Some(sub) = sub
        && attribute.sub(sub).is_none()
    {
        return Err(ScimError::invalid_path(format!(
            "{sub} is not a sub-attribute of {attr}"
        )));
    }
    Ok(())
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

/// Operations one PATCH may carry.
pub const MAX_OPERATIONS: usize = 1_000;

/// [`apply`] on a blocking thread: a PATCH against a large group compares
/// many values, and the async workers keep answering meanwhile.
pub async fn apply_off_workers(
    mut resource: Value,
    request: PatchRequest,
    schema: &'static Schema,
) -> Result<Value, ScimError> {
    tokio::task::spawn_blocking(move || apply(&mut resource, request, schema).map(|()| resource))
        .await
        .map_err(|err| ScimError::Internal(format!("patch failed: {err}")))?
}

/// Applies every operation in order to `resource`, a copy: the caller saves
/// it once all succeeded, so a failing operation leaves nothing changed.
pub fn apply(
    resource: &mut Value,
    request: PatchRequest,
    schema: &Schema,
) -> Result<(), ScimError> {
    let booleans = schema.booleans();
    let boolean_attrs = booleans.as_slice();
    let case_exact = schema.case_exact_names();
    if !request.schemas.is_empty() && !request.schemas.iter().any(|s| s == PATCH_SCHEMA) {
        return Err(ScimError::invalid_syntax(format!(
            "schemas must contain {PATCH_SCHEMA}"
        )));
    }
    if request.operations.is_empty() {
        return Err(ScimError::invalid_syntax("Operations must not be empty"));
    }
    if request.operations.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_value(format!(
            "a PATCH may carry at most {MAX_OPERATIONS} Operations"
        )));
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
            None => apply_pathless(resource, op, value, schema, &case_exact)?,
            Some(path) => {
                let Some(target) = parse_target(path, schema)? else {
                    continue;
                };
                let leaf = target.sub.as_deref().unwrap_or(&target.attr);
                let value = if boolean_attrs.iter().any(|b| b.eq_ignore_ascii_case(leaf)) {
                    value.map(loosen_booleans)
                } else {
                    value
                };
                apply_path(resource, op, &target, value, &case_exact)?
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

fn apply_pathless(
    resource: &mut Value,
    op: Op,
    value: Option<Value>,
    schema: &Schema,
    case_exact: &[String],
) -> Result<(), ScimError> {
    if op == Op::Remove {
        return Err(ScimError::no_target("remove needs a path"));
    }
    let Some(Value::Object(changes)) = value else {
        return Err(ScimError::invalid_value(
            "an operation without a path needs an object value",
        ));
    };
    for (name, value) in changes {
        if name.eq_ignore_ascii_case("schemas") {
            // A resource-shaped value may name its schemas; they are not changed.
            continue;
        }
        if name.eq_ignore_ascii_case(schema.id) {
            // The core schema's URN as a key holds core attributes.
            apply_pathless(resource, op, Some(value), schema, case_exact)?;
            continue;
        }
        // Undeclared attributes in a value are dropped, as at create.
        if !declared(&name, schema) {
            continue;
        }
        // Each key is checked as a path; a key such as `name.givenName`
        // sets a sub-attribute, an undeclared extension's URN is dropped.
        if let Some(target) = parse_target(&name, schema)? {
            apply_path(resource, op, &target, Some(value), case_exact)?;
        }
    }
    Ok(())
}

/// Whether a key of a path-less value names a declared attribute (or
/// sub-attribute), or is something `parse_target` must judge: a filtered
/// or malformed path, or one of the read-only `id`, `meta`, `schemas`.
fn declared(key: &str, schema: &Schema) -> bool {
    if key.contains('[') {
        return true;
    }
    let Some(path) = AttrPath::parse(key) else {
        return true;
    };
    if is_reserved(&path.attr) {
        return true;
    }
    match (schema.attribute(&path.attr), path.sub) {
        (None, _) => false,
        (Some(attribute), Some(sub)) => attribute.sub(&sub).is_some(),
        (Some(_), None) => true,
    }
}

fn apply_path(
    resource: &mut Value,
    op: Op,
    target: &Target,
    value: Option<Value>,
    case_exact: &[String],
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
                .filter(|&i| filter.matches_element(&items[i], &key, case_exact))
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
    use crate::scim::schema::{GROUP, USER};

    fn patch_as(schema: &Schema, resource: Value, ops: Value) -> Result<Value, ScimError> {
        let mut resource = resource;
        let request: PatchRequest =
            serde_json::from_value(json!({"schemas": [PATCH_SCHEMA], "Operations": ops}))
                .unwrap_or_else(|e| panic!("{e}"));
        apply(&mut resource, request, schema).map(|()| resource)
    }

    fn patch(resource: Value, ops: Value) -> Result<Value, ScimError> {
        patch_as(&USER, resource, ops)
    }

    fn scim_type(result: Result<Value, ScimError>) -> &'static str {
        match result {
            Err(ScimError::BadRequest { scim_type, .. }) => scim_type,
            _ => "none",
        }
    }

    fn user() -> Value {
        json!({"userName": "a@example.com", "active": true, "name": {"givenName": "A"},
               "emails": [{"value": "a@example.com", "type": "work", "primary": true}, {"value": "a@home.org", "type": "home"}]})
    }

    #[test]
    fn operations_are_capped() {
        let op = json!({"op": "replace", "path": "displayName", "value": "x"});
        let at_limit = Value::Array(vec![op.clone(); MAX_OPERATIONS]);
        assert!(patch(user(), at_limit).is_ok());
        let over = Value::Array(vec![op; MAX_OPERATIONS + 1]);
        assert_eq!(scim_type(patch(user(), over)), "invalidValue");
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
        let changed = patch_as(
            &GROUP,
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

    #[test]
    fn paths_must_name_declared_writable_attributes() {
        let op = |path: &str| json!([{"op": "replace", "path": path, "value": "x"}]);
        assert_eq!(
            scim_type(patch(user(), op("noSuchAttribute"))),
            "invalidPath"
        );
        assert_eq!(scim_type(patch(user(), op("name.nickname"))), "invalidPath");
        assert_eq!(
            scim_type(patch(user(), op("userName[value eq \"a\"]"))),
            "invalidPath"
        );
        assert_eq!(scim_type(patch(user(), op("id"))), "mutability");
        assert_eq!(scim_type(patch(user(), op("meta.created"))), "mutability");
        assert_eq!(scim_type(patch(user(), op("groups"))), "mutability");
        assert_eq!(
            scim_type(patch(
                user(),
                json!([{"op": "replace", "value": {"id": "other"}}])
            )),
            "mutability"
        );
        // In a path-less value, undeclared attributes are dropped, as at create.
        let before = user();
        let dropped = patch(
            user(),
            json!([{"op": "add", "value": {"noSuchAttribute": 1, "name.nickname": "n"}}]),
        );
        assert!(matches!(dropped, Ok(after) if after == before));
        let qualified = patch(
            user(),
            json!([
                {"op": "replace", "path": "urn:ietf:params:scim:schemas:core:2.0:User:name.givenName", "value": "Q"},
                {"op": "replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D"},
                {"op": "add", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}}}
            ]),
        )
        .unwrap_or_default();
        assert_eq!(qualified["name"]["givenName"], "Q");
        assert!(
            qualified.get("department").is_none()
                && qualified.as_object().is_some_and(|o| o.len() == 4)
        );
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::json;

        use super::super::*;
        use crate::scim::schema::USER;

        fn pieces() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof![
                    prop::sample::select(
                        &[
                            "emails",
                            "[",
                            "]",
                            ".",
                            "value",
                            "type eq \"work\"",
                            " ",
                            "name",
                            "givenName",
                            "urn:ietf:params:scim:schemas:core:2.0:User:",
                            ":",
                            "(",
                            ")",
                            " and ",
                            "\"",
                        ][..]
                    )
                    .prop_map(str::to_string),
                    any::<char>().prop_map(String::from),
                ],
                0..120,
            )
            .prop_map(|p| p.concat())
        }

        fn try_path(path: &str) -> Result<Value, ScimError> {
            let mut resource = json!({"userName": "a", "emails": [{"value": "a@b.c", "type": "work"}], "name": {"givenName": "A"}});
            let request: PatchRequest = serde_json::from_value(json!({"Operations": [
                {"op": "replace", "path": path, "value": "x"}, {"op": "remove", "path": path}]}))
            .map_err(|e| ScimError::invalid_syntax(e.to_string()))?;
            apply(&mut resource, request, &USER).map(|()| resource)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn any_path_is_applied_or_refused_cleanly(path in pieces()) {
                if let Err(e) = try_path(&path) {
                    prop_assert!(matches!(e, ScimError::BadRequest { .. }), "{path:?}: {e:?}");
                }
            }

            #[test]
            fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
                let _ = try_path(&String::from_utf8_lossy(&bytes));
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn deep_value_filters_are_refused_past_the_limit(
                depth in prop_oneof![1usize..4000, 28usize..36],
            ) {
                let path = format!("{}value eq \"a\"{}", "emails[".repeat(depth), "]".repeat(depth));
                let parsed = try_path(&path);
                if depth > crate::scim::filter::MAX_FILTER_DEPTH {
                    let refused = matches!(parsed, Err(ScimError::BadRequest { scim_type: "invalidPath", .. }));
                    prop_assert!(refused, "depth {}", depth);
                }
                let parens = format!("emails[{}type pr{}].value", "(".repeat(depth), ")".repeat(depth));
                let parsed = try_path(&parens);
                prop_assert_eq!(parsed.is_ok(), depth < crate::scim::filter::MAX_FILTER_DEPTH, "depth {}", depth);
            }

            #[test]
            fn long_chains_in_paths_are_refused_past_the_limit(terms in 1usize..20_000) {
                let path = format!("emails[{}].value", vec!["type pr"; terms].join(" or "));
                let parsed = try_path(&path);
                prop_assert_eq!(parsed.is_ok(), terms <= crate::scim::filter::MAX_FILTER_TERMS);
            }
        }
    }
}
