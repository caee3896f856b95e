//! The attributes this service keeps, in one place: `/Schemas` shows them,
//! what a provider sends is reduced to them, PATCH paths are checked against
//! them and responses carry nothing else.
//!
//! Attributes a provider sends that are not declared here (and attributes of
//! schemas this service does not declare) are dropped without an error, as
//! RFC 7644 §3.3 allows, and so are complex values left empty by that.
//! `password` is accepted and never stored.
//!
//! What is kept is bounded, so that listing and filtering every resource of
//! a provider stays cheap: see the `MAX_` limits below.

use serde_json::{Map, Value, json};

use super::error::ScimError;
use super::patch::loosen_booleans;
use super::{GROUP_SCHEMA, USER_SCHEMA};

/// The most characters a string attribute may hold.
pub const MAX_STRING_CHARS: usize = 1024;
/// The most values a multi-valued attribute (`emails`, `phoneNumbers`,
/// `addresses`) may hold.
pub const MAX_VALUES: usize = 100;
/// The most bytes a User or a Group (members aside) may take as kept JSON.
pub const MAX_RESOURCE_BYTES: usize = 16 * 1024;
/// The most members a Group may have.
pub const MAX_MEMBERS: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    String,
    Boolean,
    Complex,
    Reference,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutability {
    ReadWrite,
    ReadOnly,
    Immutable,
    /// Accepted, never stored, never returned (`password`).
    WriteOnly,
}

pub struct Attribute {
    pub name: &'static str,
    pub kind: Kind,
    pub multi: bool,
    pub required: bool,
    pub case_exact: bool,
    pub mutability: Mutability,
    pub server_unique: bool,
    pub subs: &'static [Attribute],
    pub reference_types: &'static [&'static str],
    pub canonical: &'static [&'static str],
}

const fn string(name: &'static str) -> Attribute {
    Attribute {
        name,
        kind: Kind::String,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        server_unique: false,
        subs: &[],
        reference_types: &[],
        canonical: &[],
    }
}

const fn boolean(name: &'static str) -> Attribute {
    Attribute {
        kind: Kind::Boolean,
        ..string(name)
    }
}

const fn complex(name: &'static str, subs: &'static [Attribute]) -> Attribute {
    Attribute {
        kind: Kind::Complex,
        subs,
        ..string(name)
    }
}

const fn multi(name: &'static str, subs: &'static [Attribute]) -> Attribute {
    Attribute {
        multi: true,
        ..complex(name, subs)
    }
}

const fn read_only(attribute: Attribute) -> Attribute {
    Attribute {
        mutability: Mutability::ReadOnly,
        ..attribute
    }
}

const fn case_exact(attribute: Attribute) -> Attribute {
    Attribute {
        case_exact: true,
        ..attribute
    }
}

const fn immutable(attribute: Attribute) -> Attribute {
    Attribute {
        mutability: Mutability::Immutable,
        ..attribute
    }
}

const fn reference(name: &'static str, to: &'static [&'static str]) -> Attribute {
    Attribute {
        kind: Kind::Reference,
        case_exact: true,
        reference_types: to,
        ..string(name)
    }
}

/// `value`, `type`, `primary`, `display`: the shape of emails and phone numbers.
const TYPED_VALUE: &[Attribute] = &[
    string("value"),
    string("type"),
    boolean("primary"),
    string("display"),
];

const USER_ATTRIBUTES: &[Attribute] = &[
    Attribute {
        required: true,
        server_unique: true,
        ..string("userName")
    },
    complex(
        "name",
        &[
            string("formatted"),
            string("familyName"),
            string("givenName"),
            string("middleName"),
            string("honorificPrefix"),
            string("honorificSuffix"),
        ],
    ),
    string("displayName"),
    string("nickName"),
    string("title"),
    string("userType"),
    string("preferredLanguage"),
    string("locale"),
    string("timezone"),
    boolean("active"),
    Attribute {
        mutability: Mutability::WriteOnly,
        ..string("password")
    },
    multi("emails", TYPED_VALUE),
    multi("phoneNumbers", TYPED_VALUE),
    multi(
        "addresses",
        &[
            string("formatted"),
            string("streetAddress"),
            string("locality"),
            string("region"),
            string("postalCode"),
            string("country"),
            string("type"),
            boolean("primary"),
        ],
    ),
    case_exact(string("externalId")),
    read_only(multi(
        "groups",
        &[
            read_only(case_exact(string("value"))),
            read_only(reference("$ref", &["Group"])),
            read_only(string("display")),
        ],
    )),
];

const GROUP_ATTRIBUTES: &[Attribute] = &[
    Attribute {
        required: true,
        server_unique: true,
        ..string("displayName")
    },
    multi(
        "members",
        &[
            immutable(case_exact(string("value"))),
            immutable(reference("$ref", &["User"])),
            read_only(string("display")),
            Attribute {
                canonical: &["User"],
                ..immutable(string("type"))
            },
        ],
    ),
    case_exact(string("externalId")),
];

pub struct Schema {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub attributes: &'static [Attribute],
}

pub const USER: Schema = Schema {
    id: USER_SCHEMA,
    name: "User",
    description: "User Account",
    attributes: USER_ATTRIBUTES,
};

pub const GROUP: Schema = Schema {
    id: GROUP_SCHEMA,
    name: "Group",
    description: "Group",
    attributes: GROUP_ATTRIBUTES,
};

fn find<'a>(attributes: &'a [Attribute], name: &str) -> Option<&'a Attribute> {
    attributes
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case(name))
}

impl Attribute {
    pub fn sub(&self, name: &str) -> Option<&Attribute> {
        find(self.subs, name)
    }

    fn to_json(&self) -> Value {
        let mutability = match self.mutability {
            Mutability::ReadWrite => "readWrite",
            Mutability::ReadOnly => "readOnly",
            Mutability::Immutable => "immutable",
            Mutability::WriteOnly => "writeOnly",
        };
        let kind = match self.kind {
            Kind::String => "string",
            Kind::Boolean => "boolean",
            Kind::Complex => "complex",
            Kind::Reference => "reference",
        };
        let mut out = json!({
            "name": self.name, "type": kind, "multiValued": self.multi,
            "required": self.required, "caseExact": self.case_exact,
            "mutability": mutability,
            "returned": if self.mutability == Mutability::WriteOnly { "never" } else { "default" },
            "uniqueness": if self.server_unique { "server" } else { "none" },
            "description": self.name,
        });
        if !self.subs.is_empty() {
            out["subAttributes"] = self.subs.iter().map(Attribute::to_json).collect();
        }
        if !self.reference_types.is_empty() {
            out["referenceTypes"] = json!(self.reference_types);
        }
        if !self.canonical.is_empty() {
            out["canonicalValues"] = json!(self.canonical);
        }
        out
    }

    /// The value as it is kept: declared members only, under their declared
    /// names, empty complex values dropped; with `strict`, a value of the
    /// wrong type or past a limit is an error, else it is dropped (`None`).
    /// `path` names the attribute in errors (`emails.value`).
    fn keep(&self, value: Value, strict: bool, path: &str) -> Result<Option<Value>, ScimError> {
        if self.mutability == Mutability::WriteOnly || value.is_null() {
            return Ok(None);
        }
        if self.multi {
            let items = match value {
                Value::Array(items) => items,
                single @ Value::Object(_) => vec![single],
                _ if strict => {
                    return Err(ScimError::invalid_value(format!("{path} must be a list")));
                }
                _ => return Ok(None),
            };
            if strict && items.len() > MAX_VALUES {
                return Err(ScimError::invalid_value(format!(
                    "{path} has more than {MAX_VALUES} values"
                )));
            }
            let mut kept = Vec::with_capacity(items.len());
            for item in items {
                if let Some(item) = self.keep_single(item, strict, path)? {
                    kept.push(item);
                }
            }
            return Ok(Some(Value::Array(kept)));
        }
        self.keep_single(value, strict, path)
    }

    fn keep_single(
        &self,
        value: Value,
        strict: bool,
        path: &str,
    ) -> Result<Option<Value>, ScimError> {
        let kept = match (self.kind, value) {
            (Kind::Complex, Value::Object(members)) => {
                let kept = keep_declared(self.subs, members, strict, Some(path))?;
                // Nothing declared was sent (`{"weird": 1}`): nothing to keep.
                if kept.is_empty() {
                    return Ok(None);
                }
                Some(Value::Object(kept))
            }
            (Kind::Boolean, value) => match loosen_booleans(value) {
                Value::Bool(on) => Some(Value::Bool(on)),
                _ => None,
            },
            (Kind::String | Kind::Reference, Value::String(text)) => {
                if strict && text.chars().nth(MAX_STRING_CHARS).is_some() {
                    return Err(ScimError::invalid_value(format!(
                        "{path} is longer than {MAX_STRING_CHARS} characters"
                    )));
                }
                Some(Value::String(text))
            }
            _ => None,
        };
        if kept.is_none() && strict {
            return Err(ScimError::invalid_value(format!(
                "{path} has a value of the wrong type"
            )));
        }
        Ok(kept)
    }
}

/// The declared members of `input`, renamed to their declared names;
/// `parent` is the complex attribute they belong to, if any.
fn keep_declared(
    attributes: &[Attribute],
    input: Map<String, Value>,
    strict: bool,
    parent: Option<&str>,
) -> Result<Map<String, Value>, ScimError> {
    let mut kept = Map::new();
    for (key, value) in input {
        let Some(attribute) = find(attributes, &key) else {
            continue;
        };
        let path = match parent {
            Some(parent) => format!("{parent}.{}", attribute.name),
            None => attribute.name.to_string(),
        };
        if let Some(value) = attribute.keep(value, strict, &path)? {
            kept.insert(attribute.name.to_string(), value);
        }
    }
    Ok(kept)
}

impl Schema {
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        find(self.attributes, name)
    }

    /// What a provider sent, reduced to what is kept: read-only attributes,
    /// `password` and undeclared attributes are dropped; a declared attribute
    /// of the wrong type, or past a limit, is an `invalidValue` error.
    pub fn accept(&self, input: Map<String, Value>) -> Result<Map<String, Value>, ScimError> {
        let writable: Map<String, Value> = input
            .into_iter()
            .filter(|(key, _)| {
                self.attribute(key)
                    .is_some_and(|a| a.mutability != Mutability::ReadOnly)
            })
            .collect();
        let kept = keep_declared(self.attributes, writable, true, None)?;
        let size = serde_json::to_vec(&kept).map_or(usize::MAX, |json| json.len());
        if size > MAX_RESOURCE_BYTES {
            return Err(ScimError::invalid_value(format!(
                "a {} may take at most {MAX_RESOURCE_BYTES} bytes of JSON; this one takes {size}",
                self.name
            )));
        }
        Ok(kept)
    }

    /// A stored resource as it may be shown: declared attributes only.
    pub fn shown(&self, stored: &Value) -> Map<String, Value> {
        let Value::Object(members) = stored.clone() else {
            return Map::new();
        };
        keep_declared(self.attributes, members, false, None).unwrap_or_default()
    }

    /// Attributes compared with case in filters, lower case, as `attr` or
    /// `attr.sub`: `id` (RFC 7643 §3.1) and those declared `caseExact`. A
    /// multi-valued attribute compared bare (`members eq "…"`) compares its
    /// `value`, so it is named bare too when its `value` is case-exact.
    pub fn case_exact_names(&self) -> Vec<String> {
        let mut names = vec!["id".to_string()];
        for attribute in self.attributes {
            let attr = attribute.name.to_ascii_lowercase();
            if attribute.case_exact || attribute.sub("value").is_some_and(|v| v.case_exact) {
                names.push(attr.clone());
            }
            for sub in attribute.subs.iter().filter(|s| s.case_exact) {
                names.push(format!("{attr}.{}", sub.name.to_ascii_lowercase()));
            }
        }
        names
    }

    /// Names of the boolean attributes and sub-attributes (`active`, `primary`).
    pub fn booleans(&self) -> Vec<&'static str> {
        self.attributes
            .iter()
            .flat_map(|a| std::iter::once(a).chain(a.subs.iter()))
            .filter(|a| a.kind == Kind::Boolean)
            .map(|a| a.name)
            .collect()
    }

    pub fn to_json(&self, location: String) -> Value {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
            "id": self.id, "name": self.name, "description": self.description,
            "attributes": self.attributes.iter().map(Attribute::to_json).collect::<Vec<_>>(),
            "meta": {"resourceType": "Schema", "location": location}
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_declared_attributes_are_kept() {
        let sent = json!({
            "USERNAME": "a@example.com", "password": "secret", "noSuchAttribute": 1,
            "locale": "en-US", "id": "x", "groups": [{"value": "g"}],
            "name": {"givenName": "A", "nickname": "no"},
            "emails": [{"value": "a@example.com", "primary": "True", "extra": 1}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
        });
        let Value::Object(sent) = sent else {
            panic!("an object")
        };
        let kept = USER.accept(sent).unwrap_or_default();
        assert_eq!(
            Value::Object(kept),
            json!({"userName": "a@example.com", "locale": "en-US", "name": {"givenName": "A"},
                   "emails": [{"value": "a@example.com", "primary": true}]})
        );
    }

    #[test]
    fn wrong_types_are_refused() {
        for sent in [
            json!({"userName": 7}),
            json!({"userName": "a", "active": "maybe"}),
            json!({"userName": "a", "emails": "a@example.com"}),
            json!({"userName": "a", "name": "A"}),
        ] {
            let Value::Object(sent) = sent else {
                panic!("an object")
            };
            assert!(USER.accept(sent).is_err());
        }
    }

    fn user_with(extra: Value) -> Result<Map<String, Value>, ScimError> {
        let mut sent = Map::new();
        sent.insert("userName".into(), json!("a@example.com"));
        if let Value::Object(extra) = extra {
            sent.extend(extra);
        }
        USER.accept(sent)
    }

    #[test]
    fn limits_hold_exactly() {
        let chars = |n: usize| "é".repeat(n);
        assert!(user_with(json!({"title": chars(MAX_STRING_CHARS)})).is_ok());
        assert!(user_with(json!({"title": chars(MAX_STRING_CHARS + 1)})).is_err());
        assert!(user_with(json!({"name": {"givenName": chars(MAX_STRING_CHARS + 1)}})).is_err());
        let emails =
            |n: usize| -> Value { (0..n).map(|i| json!({"value": format!("{i}@x")})).collect() };
        assert!(user_with(json!({"emails": emails(MAX_VALUES)})).is_ok());
        assert!(user_with(json!({"emails": emails(MAX_VALUES + 1)})).is_err());
        // Within every attribute's limit, but not the resource's 16 KiB.
        let addresses = |n: usize| -> Value {
            (0..n)
                .map(|_| json!({"formatted": "f".repeat(1000)}))
                .collect()
        };
        assert!(user_with(json!({"addresses": addresses(15)})).is_ok());
        assert!(user_with(json!({"addresses": addresses(17)})).is_err());
    }

    #[test]
    fn case_exact_names_follow_the_declarations() {
        assert_eq!(
            USER.case_exact_names(),
            ["id", "externalid", "groups", "groups.value", "groups.$ref"]
        );
        assert_eq!(
            GROUP.case_exact_names(),
            [
                "id",
                "members",
                "members.value",
                "members.$ref",
                "externalid"
            ]
        );
    }

    #[test]
    fn empty_complex_values_are_dropped() {
        let kept = user_with(json!({"addresses": [{"weird": 1}, {"country": "FR"}], "name": {}}))
            .unwrap_or_default();
        assert_eq!(kept.get("addresses"), Some(&json!([{"country": "FR"}])));
        assert!(kept.get("name").is_none());
    }
}
