//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5), down to
//! sub-attributes: `attributes=name.givenName` returns `name` with only
//! `givenName`. `id` and `schemas` are always returned.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::filter::AttrPath;

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Projection {
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

/// One name of a list, lower case: `attr` or `attr.sub`.
type Name = (String, Option<String>);

fn names(raw: &Option<String>) -> Vec<Name> {
    raw.as_deref()
        .unwrap_or_default()
        .split(',')
        .filter_map(|n| AttrPath::parse(n.trim()))
        .map(|p| {
            (
                p.attr.to_ascii_lowercase(),
                p.sub.map(|s| s.to_ascii_lowercase()),
            )
        })
        .collect()
}

/// Keeps (or, with `keep` false, drops) the named sub-attributes of a
/// complex value or of each element of a multi-valued one.
fn select_subs(value: Value, subs: &[&str], keep: bool) -> Value {
    let pick = |object: Map<String, Value>| -> Map<String, Value> {
        object
            .into_iter()
            .filter(|(k, _)| subs.contains(&k.to_ascii_lowercase().as_str()) == keep)
            .collect()
    };
    match value {
        Value::Object(object) => Value::Object(pick(object)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|item| match item {
                    Value::Object(object) => Value::Object(pick(object)),
                    other => other,
                })
                .collect(),
        ),
        other => other,
    }
}

/// The sub-attributes named under `attr`, and whether `attr` is named whole.
fn named_under<'a>(list: &'a [Name], attr: &str) -> (bool, Vec<&'a str>) {
    let whole = list.iter().any(|(a, s)| a == attr && s.is_none());
    let subs = list
        .iter()
        .filter(|(a, _)| a == attr)
        .filter_map(|(_, s)| s.as_deref())
        .collect();
    (whole, subs)
}

impl Projection {
    /// Whether the top-level attribute `attr` is returned at all, whole or in part.
    pub fn shows(&self, attr: &str) -> bool {
        let attr = attr.to_ascii_lowercase();
        let (wanted, excluded) = (names(&self.attributes), names(&self.excluded_attributes));
        let asked = wanted.is_empty() || wanted.iter().any(|(a, _)| *a == attr);
        asked && !named_under(&excluded, &attr).0
    }

    pub fn apply(&self, resource: Value) -> Value {
        let Value::Object(map) = resource else {
            return resource;
        };
        let (wanted, excluded) = (names(&self.attributes), names(&self.excluded_attributes));
        let mut shown = Map::new();
        for (key, value) in map {
            let attr = key.to_ascii_lowercase();
            if attr == "id" || attr == "schemas" {
                shown.insert(key, value);
                continue;
            }
            let value = if wanted.is_empty() {
                value
            } else {
                match named_under(&wanted, &attr) {
                    (true, _) => value,
                    (false, subs) if !subs.is_empty() => select_subs(value, &subs, true),
                    (false, _) => continue,
                }
            };
            let value = match named_under(&excluded, &attr) {
                (true, _) => continue,
                (false, subs) if !subs.is_empty() => select_subs(value, &subs, false),
                (false, _) => value,
            };
            shown.insert(key, value);
        }
        Value::Object(shown)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn project(attributes: Option<&str>, excluded: Option<&str>) -> Value {
        Projection {
            attributes: attributes.map(str::to_string),
            excluded_attributes: excluded.map(str::to_string),
        }
        .apply(json!({"id": "1", "schemas": ["s"], "userName": "u",
                      "name": {"givenName": "G", "familyName": "F"},
                      "emails": [{"value": "a@b.c", "type": "work"}]}))
    }

    #[test]
    fn shown_attributes_are_known_before_reading_them() {
        let projection = |attributes: Option<&str>, excluded: Option<&str>| Projection {
            attributes: attributes.map(str::to_string),
            excluded_attributes: excluded.map(str::to_string),
        };
        assert!(projection(None, None).shows("members"));
        assert!(!projection(None, Some("Members")).shows("members"));
        assert!(projection(None, Some("members.display")).shows("members"));
        assert!(!projection(Some("displayName"), None).shows("members"));
        assert!(projection(Some("members.value"), None).shows("members"));
    }

    #[test]
    fn sub_attributes_are_projected() {
        assert_eq!(
            project(Some("name.givenName"), None),
            json!({"id": "1", "schemas": ["s"], "name": {"givenName": "G"}})
        );
        assert_eq!(
            project(Some("emails.value,userName"), None),
            json!({"id": "1", "schemas": ["s"], "userName": "u", "emails": [{"value": "a@b.c"}]})
        );
        assert_eq!(
            project(None, Some("name.familyName,emails,id")),
            json!({"id": "1", "schemas": ["s"], "userName": "u", "name": {"givenName": "G"}})
        );
    }
}
