//! What a SCIM listing asks (`filter`, `startIndex`, `count`, `sortBy`,
//! `sortOrder`, `attributes`), and how much of it SQL can answer.
//!
//! A filter is turned into a [`ScimCondition`] term by term: `eq` and `ne`
//! on a string of an attribute the store keeps a key for (`id`,
//! `externalId`, `userName`, `displayName`, `emails.value` and
//! `groups.value` of users, `members.value` of groups), and `and`, `or` and
//! `not` of those, are exact; a comparison on an attribute the resource type
//! does not have matches nothing, also exactly. Any other term is left to
//! the in-memory filter: in an `and` the exact terms still narrow what it
//! reads; a value filter such as `emails[type eq "work"].value eq "x"` is
//! narrowed by its `value eq` term.

use serde::Deserialize;
use serde_json::Value;

use super::error::ScimError;
use super::filter::{AttrPath, CompareOp, Filter};
use super::projection::Projection;
use super::{MAX_COUNT, schema};
use crate::store::scim_listing::{ScimCondition, ScimKind, ScimOrder};

/// A `GET` listing's query.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    filter: Option<String>,
    start_index: Option<String>,
    count: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    #[serde(flatten)]
    projection: Projection,
}

/// A `POST …/.search` body (RFC 7644 §3.4.3).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest {
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    start_index: Option<i64>,
    #[serde(default)]
    count: Option<i64>,
    #[serde(default)]
    sort_by: Option<String>,
    #[serde(default)]
    sort_order: Option<String>,
    #[serde(default)]
    attributes: Vec<String>,
    #[serde(default)]
    excluded_attributes: Vec<String>,
}

impl From<SearchRequest> for ListQuery {
    fn from(search: SearchRequest) -> Self {
        let joined = |names: Vec<String>| (!names.is_empty()).then(|| names.join(","));
        ListQuery {
            filter: search.filter,
            start_index: search.start_index.map(|n| n.to_string()),
            count: search.count.map(|n| n.to_string()),
            sort_by: search.sort_by,
            sort_order: search.sort_order,
            projection: Projection {
                attributes: joined(search.attributes),
                excluded_attributes: joined(search.excluded_attributes),
            },
        }
    }
}

pub struct Sort {
    pub path: AttrPath,
    pub descending: bool,
}

/// A listing request, checked.
pub struct ListRequest {
    pub filter: Option<Filter>,
    /// 1-based.
    pub start: u64,
    pub count: u64,
    pub sort: Option<Sort>,
    pub projection: Projection,
}

fn number(raw: Option<&str>, name: &str) -> Result<Option<i64>, ScimError> {
    raw.map(|v| {
        v.trim()
            .parse::<i64>()
            .map_err(|_| ScimError::invalid_value(format!("{name} must be an integer")))
    })
    .transpose()
}

impl ListQuery {
    /// The `startIndex` asked for, at least 1.
    pub fn start(&self) -> Result<u64, ScimError> {
        Ok(number(self.start_index.as_deref(), "startIndex")?
            .unwrap_or(1)
            .max(1) as u64)
    }
}

impl TryFrom<ListQuery> for ListRequest {
    type Error = ScimError;

    fn try_from(query: ListQuery) -> Result<Self, ScimError> {
        let filter = match query
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            Some(raw) => Some(Filter::parse(raw).map_err(|e| ScimError::invalid_filter(e.0))?),
            None => None,
        };
        let start = query.start()?;
        let count = number(query.count.as_deref(), "count")?
            .map_or(100, |c| c.clamp(0, MAX_COUNT as i64) as u64);
        let sort = match query.sort_by.as_deref() {
            Some(sort_by) => Some(Sort {
                path: AttrPath::parse(sort_by).ok_or_else(|| {
                    ScimError::invalid_value(format!("sortBy {sort_by:?} is not an attribute"))
                })?,
                descending: query
                    .sort_order
                    .as_deref()
                    .is_some_and(|o| o.eq_ignore_ascii_case("descending")),
            }),
            None => None,
        };
        Ok(ListRequest {
            filter,
            start,
            count,
            sort,
            projection: query.projection,
        })
    }
}

/// How the store answers a filter over one kind of resource.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    /// Every match meets it.
    pub condition: ScimCondition,
    /// Whether everything that meets it matches: the in-memory filter is
    /// then not needed.
    pub exact: bool,
}

pub fn plan(filter: Option<&Filter>, kind: ScimKind) -> Plan {
    let Some(filter) = filter else {
        return Plan {
            condition: ScimCondition::always(),
            exact: true,
        };
    };
    let found = translate(filter, kind);
    Plan {
        condition: found.condition.unwrap_or_else(ScimCondition::always),
        exact: found.exact,
    }
}

/// The order the store keeps for `sort` over `kind`, if it keeps one.
pub fn store_order(sort: Option<&Sort>, kind: ScimKind) -> Option<ScimOrder> {
    let Some(sort) = sort else {
        return Some(ScimOrder::Created);
    };
    let name = match kind {
        ScimKind::Users => "userName",
        ScimKind::Groups => "displayName",
    };
    (sort.path.sub.is_none() && sort.path.attr.eq_ignore_ascii_case(name)).then_some(
        ScimOrder::Name {
            descending: sort.descending,
        },
    )
}

/// A condition every match meets (`None`: no narrowing), and whether it is
/// met by matches only.
struct Translated {
    condition: Option<ScimCondition>,
    exact: bool,
}

impl Translated {
    fn exact(condition: ScimCondition) -> Self {
        Translated {
            condition: Some(condition),
            exact: true,
        }
    }

    fn memory_only() -> Self {
        Translated {
            condition: None,
            exact: false,
        }
    }
}

fn translate(filter: &Filter, kind: ScimKind) -> Translated {
    match filter {
        Filter::Compare {
            path,
            op: op @ (CompareOp::Eq | CompareOp::Ne),
            value: Value::String(text),
        } => match keyed(path, kind, text) {
            Some(equal) if *op == CompareOp::Eq => Translated::exact(equal),
            // `ne` is "no value equals", whatever the attribute holds.
            Some(equal) => Translated::exact(ScimCondition::Not(Box::new(equal))),
            None => Translated::memory_only(),
        },
        Filter::Compare { .. } | Filter::Present(_) => Translated::memory_only(),
        Filter::And(all) => {
            let parts: Vec<Translated> = all.iter().map(|f| translate(f, kind)).collect();
            let exact = parts.iter().all(|p| p.exact);
            let conditions: Vec<ScimCondition> =
                parts.into_iter().filter_map(|p| p.condition).collect();
            Translated {
                condition: (!conditions.is_empty()).then_some(ScimCondition::All(conditions)),
                exact,
            }
        }
        Filter::Or(any) => {
            let parts: Vec<Translated> = any.iter().map(|f| translate(f, kind)).collect();
            let exact = parts.iter().all(|p| p.exact);
            // One side the store cannot narrow leaves the whole `or` unnarrowed.
            let conditions: Option<Vec<ScimCondition>> =
                parts.into_iter().map(|p| p.condition).collect();
            match conditions {
                Some(conditions) => Translated {
                    condition: Some(ScimCondition::Any(conditions)),
                    exact,
                },
                None => Translated::memory_only(),
            }
        }
        Filter::Not(inner) => match translate(inner, kind) {
            Translated {
                condition,
                exact: true,
            } => Translated::exact(ScimCondition::Not(Box::new(
                condition.unwrap_or_else(ScimCondition::always),
            ))),
            _ => Translated::memory_only(),
        },
        Filter::ValuePath { path, filter } => value_path(path, filter, kind),
    }
}

/// `attr[filter]`: exact when the filter is just `value eq "…"`; narrowed
/// by such a term of an `and` (the same element must hold the value).
fn value_path(path: &AttrPath, inner: &Filter, kind: ScimKind) -> Translated {
    let value_of = |filter: &Filter| match filter {
        Filter::Compare {
            path: sub,
            op: CompareOp::Eq,
            value: Value::String(text),
        } if sub.sub.is_none() && sub.attr.eq_ignore_ascii_case("value") => {
            let full = AttrPath {
                attr: path.attr.clone(),
                sub: Some("value".into()),
            };
            keyed(&full, kind, text)
        }
        _ => None,
    };
    if let Some(equal) = value_of(inner) {
        return Translated::exact(equal);
    }
    let narrowing: Vec<ScimCondition> = match inner {
        Filter::And(all) => all.iter().filter_map(value_of).collect(),
        _ => Vec::new(),
    };
    Translated {
        condition: (!narrowing.is_empty()).then_some(ScimCondition::All(narrowing)),
        exact: false,
    }
}

/// `path eq text` as a condition on a kept key, folding case where the
/// attribute ignores it (as the in-memory filter does); `None` when the
/// store keeps no key for it.
fn keyed(path: &AttrPath, kind: ScimKind, text: &str) -> Option<ScimCondition> {
    let attr = path.attr.to_ascii_lowercase();
    let sub = path.sub.as_deref().map(str::to_ascii_lowercase);
    let value_or_bare = matches!(sub.as_deref(), None | Some("value"));
    match (kind, attr.as_str(), sub.as_deref()) {
        (_, "id", None) => Some(ScimCondition::Id(text.to_string())),
        (_, "externalid", None) => Some(ScimCondition::ExternalId(text.to_string())),
        (_, "displayname", None) => Some(ScimCondition::DisplayName(text.to_lowercase())),
        (ScimKind::Users, "username", None) => Some(ScimCondition::UserName(text.to_lowercase())),
        (ScimKind::Users, "emails", _) if value_or_bare => {
            Some(ScimCondition::Email(text.to_lowercase()))
        }
        (ScimKind::Users, "groups", _) if value_or_bare => {
            Some(ScimCondition::InGroup(text.to_string()))
        }
        (ScimKind::Groups, "members", _) if value_or_bare => {
            Some(ScimCondition::HasMember(text.to_string()))
        }
        _ if !has_attribute(kind, &attr) => Some(ScimCondition::never()),
        _ => None,
    }
}

/// Whether resources of `kind` can hold `attr` (lower case).
fn has_attribute(kind: ScimKind, attr: &str) -> bool {
    let declared = match kind {
        ScimKind::Users => &schema::USER,
        ScimKind::Groups => &schema::GROUP,
    };
    matches!(attr, "id" | "meta" | "schemas") || declared.attribute(attr).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(filter: &str, kind: ScimKind) -> Plan {
        let parsed = Filter::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
        plan(Some(&parsed), kind)
    }

    fn exact(condition: ScimCondition) -> Plan {
        Plan {
            condition,
            exact: true,
        }
    }

    use ScimCondition::*;

    #[test]
    fn indexed_equalities_are_exact() {
        assert_eq!(
            planned(r#"userName eq "Ann@Example.com""#, ScimKind::Users),
            exact(UserName("ann@example.com".into()))
        );
        assert_eq!(
            planned(
                r#"urn:ietf:params:scim:schemas:core:2.0:User:externalId eq "X1""#,
                ScimKind::Users
            ),
            exact(ExternalId("X1".into()))
        );
        for filter in [
            r#"emails.value eq "A@B.c""#,
            r#"emails eq "A@B.c""#,
            r#"emails[value eq "A@B.c"]"#,
        ] {
            assert_eq!(
                planned(filter, ScimKind::Users),
                exact(Email("a@b.c".into())),
                "{filter}"
            );
        }
        assert_eq!(
            planned(r#"members[value eq "U-1"]"#, ScimKind::Groups),
            exact(HasMember("U-1".into()))
        );
        assert_eq!(
            planned(r#"members.value eq "U-1""#, ScimKind::Groups),
            exact(HasMember("U-1".into()))
        );
        assert_eq!(
            planned(r#"displayName eq "Eng""#, ScimKind::Groups),
            exact(DisplayName("eng".into()))
        );
    }

    #[test]
    fn boolean_structure_of_exact_terms_stays_exact() {
        assert_eq!(
            planned(
                r#"userName eq "a" or not (externalId ne "x")"#,
                ScimKind::Users
            ),
            exact(Any(vec![
                UserName("a".into()),
                Not(Box::new(Not(Box::new(ExternalId("x".into())))))
            ]))
        );
        assert_eq!(
            planned(r#"userName eq "a""#, ScimKind::Groups),
            exact(ScimCondition::never()),
            "groups have no userName"
        );
    }

    #[test]
    fn other_terms_are_left_to_memory_but_narrowed_where_possible() {
        assert_eq!(
            planned(r#"userName eq "a" and title co "x""#, ScimKind::Users),
            Plan {
                condition: All(vec![UserName("a".into())]),
                exact: false
            }
        );
        assert_eq!(
            planned(
                r#"emails[type eq "work"].value eq "A@b.c""#,
                ScimKind::Users
            ),
            Plan {
                condition: All(vec![Email("a@b.c".into())]),
                exact: false
            }
        );
        for filter in [
            r#"userName eq "a" or title co "x""#,
            r#"not (title pr)"#,
            r#"userName sw "a""#,
            "active eq true",
        ] {
            assert_eq!(
                planned(filter, ScimKind::Users),
                Plan {
                    condition: ScimCondition::always(),
                    exact: false
                },
                "{filter}"
            );
        }
    }

    #[test]
    fn the_store_orders_by_name_or_creation_only() {
        let sort = |attr: &str| Sort {
            path: AttrPath::parse(attr).unwrap_or_else(|| panic!("{attr}")),
            descending: true,
        };
        assert_eq!(
            store_order(Some(&sort("USERNAME")), ScimKind::Users),
            Some(ScimOrder::Name { descending: true })
        );
        assert_eq!(store_order(Some(&sort("title")), ScimKind::Users), None);
        assert_eq!(store_order(Some(&sort("userName")), ScimKind::Groups), None);
        assert_eq!(
            store_order(None, ScimKind::Groups),
            Some(ScimOrder::Created)
        );
    }
}
