//! Users and groups as SCIM shows them, from their stored records.

use serde_json::{Map, Value, json};

use super::{GROUP_SCHEMA, USER_SCHEMA, schema};
use crate::store::scim::ScimUserRecord;
use crate::store::scim_groups::ScimGroupRecord;

/// `public_url` is where providers reach this server.
pub fn base_of(public_url: &str, idp: &impl std::fmt::Display) -> String {
    format!("{public_url}/scim/v2/{idp}")
}

/// One of a user's groups, as its read-only `groups` attribute lists it.
pub fn group_of_user(base: &str, id: &str, display: &str) -> Value {
    json!({"value": id, "display": display, "$ref": format!("{base}/Groups/{id}")})
}

/// The user as SCIM shows it; `groups` (read-only) comes from memberships.
pub fn user(base: &str, user: &ScimUserRecord, groups: Vec<Value>) -> Value {
    let mut body = Map::new();
    body.insert("schemas".into(), json!([USER_SCHEMA]));
    body.insert("id".into(), json!(user.id));
    body.extend(schema::USER.shown(&user.resource));
    body.insert("groups".into(), Value::Array(groups));
    body.insert(
        "meta".into(),
        json!({
            "resourceType": "User",
            "created": user.created_at.to_string(),
            "lastModified": user.updated_at.to_string(),
            "location": format!("{base}/Users/{}", user.id),
            "version": format!("W/\"{}\"", user.version),
        }),
    );
    Value::Object(body)
}

/// The group as SCIM shows it, with the members in its record.
pub fn group(base: &str, group: &ScimGroupRecord) -> Value {
    let mut body = Map::new();
    body.insert("schemas".into(), json!([GROUP_SCHEMA]));
    body.insert("id".into(), json!(group.id));
    body.extend(schema::GROUP.shown(&group.resource));
    // `display` is left out: providers compare members with what they sent.
    let members: Vec<Value> = group
        .members
        .iter()
        .map(|id| json!({"value": id, "$ref": format!("{base}/Users/{id}"), "type": "User"}))
        .collect();
    body.insert("members".into(), json!(members));
    body.insert(
        "meta".into(),
        json!({
            "resourceType": "Group",
            "created": group.created_at.to_string(),
            "lastModified": group.updated_at.to_string(),
            "location": format!("{base}/Groups/{}", group.id),
            "version": format!("W/\"{}\"", group.version),
        }),
    );
    Value::Object(body)
}
