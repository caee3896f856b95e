//! The engine behind `GET /Users`, `GET /Groups` and the `.search`
//! endpoints: filter, sort and page, in the database where it can be.
//!
//! When the store answers the filter exactly (see `query`) and keeps the
//! order asked for (creation, or `userName` / `displayName`), the database
//! counts `totalResults` and returns just the page. Otherwise the store
//! narrows what it can, and what is left is read here in chunks and checked
//! by the in-memory filter off the async workers: at most [`MAX_EXAMINED`]
//! resources for one request. A filter or sort that would need more is
//! refused with `tooMany` before anything is read.
//!
//! Only the page's users get their groups read, and only the page's groups
//! their members, at most [`MAX_MEMBERS_SHOWN`] for one page: a page of
//! large groups ends early, and `itemsPerPage` says where.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::error::ScimError;
use super::filter::{AttrPath, Filter, get_ci};
use super::projection::Projection;
use super::query::{self, ListRequest, Plan};
use super::{resources, schema};
use crate::app::AppState;
use crate::domain::IdpId;
use crate::store::scim::ScimUserRecord;
use crate::store::scim_groups::ScimGroupRecord;
use crate::store::scim_listing::{ScimKind, ScimOrder, ScimSelection};
use crate::store::snapshot::ListingSnapshot;

/// The most resources one request reads to filter or sort them in memory.
pub const MAX_EXAMINED: u64 = 10_000;
/// The most group members one page shows, all its groups together; the
/// first group of a page is shown whole whatever its size.
pub const MAX_MEMBERS_SHOWN: u64 = 100_000;
/// Resources read and checked at a time.
const CHUNK: u64 = 500;
/// Groups read at a time when their members are checked too (at most
/// 10,000 members each).
const CHUNK_OF_GROUPS_WITH_MEMBERS: u64 = 20;

/// A page, and how many resources match in all.
pub struct Listed {
    pub resources: Vec<Value>,
    pub total: u64,
}

/// Where a listing reads: one provider's resources, its users as of `snapshot`.
pub struct Source<'a> {
    pub state: &'a AppState,
    pub idp: &'a IdpId,
    pub snapshot: &'a ListingSnapshot,
}

enum Found {
    User(ScimUserRecord),
    Group(ScimGroupRecord),
}

/// The page `request` asks of the resources of `kinds`, listed one kind
/// after the other.
pub async fn list(
    source: &Source<'_>,
    kinds: &[ScimKind],
    request: &ListRequest,
) -> Result<Listed, ScimError> {
    let plans: Vec<(ScimKind, Plan)> = kinds
        .iter()
        .map(|kind| (*kind, query::plan(request.filter.as_ref(), *kind)))
        .collect();
    let order = match kinds {
        [kind] => query::store_order(request.sort.as_ref(), *kind),
        _ if request.sort.is_none() => Some(ScimOrder::Created),
        _ => None,
    };
    match order {
        Some(order) if plans.iter().all(|(_, plan)| plan.exact) => {
            in_store(source, &plans, order, request).await
        }
        _ => in_memory(source, &plans, request).await,
    }
}

/// Counts and pages in the database.
async fn in_store(
    source: &Source<'_>,
    plans: &[(ScimKind, Plan)],
    order: ScimOrder,
    request: &ListRequest,
) -> Result<Listed, ScimError> {
    let store = &source.state.store;
    let mut skip = request.start - 1;
    let mut room = request.count;
    let mut total = 0;
    let mut shown = Vec::new();
    let mut ended_early = false;
    for (kind, plan) in plans {
        let count = store
            .count_scim(*kind, source.idp, source.snapshot, &plan.condition)
            .await?;
        total += count;
        if room > 0 && !ended_early && skip < count {
            let selection = ScimSelection {
                condition: &plan.condition,
                after_seq: 0,
                order,
                offset: skip,
                limit: room,
            };
            let found = select(source, *kind, &selection).await?;
            let asked = found.len();
            let page = render(source, found, &request.projection).await?;
            ended_early = page.len() < asked;
            room = room.saturating_sub(page.len() as u64);
            shown.extend(page);
        }
        skip = skip.saturating_sub(count);
    }
    Ok(Listed {
        resources: shown,
        total,
    })
}

async fn select(
    source: &Source<'_>,
    kind: ScimKind,
    selection: &ScimSelection<'_>,
) -> Result<Vec<(i64, Found)>, ScimError> {
    let store = &source.state.store;
    Ok(match kind {
        ScimKind::Users => store
            .select_scim_users(source.idp, source.snapshot, selection)
            .await?
            .into_iter()
            .map(|(seq, user)| (seq, Found::User(user)))
            .collect(),
        ScimKind::Groups => store
            .select_scim_groups(source.idp, selection)
            .await?
            .into_iter()
            .map(|(seq, group)| (seq, Found::Group(group)))
            .collect(),
    })
}

/// A match of the in-memory filter: where it is, and its sort key.
struct Match {
    kind: ScimKind,
    seq: i64,
    key: Option<String>,
}

/// Reads what the store narrowed down, at most [`MAX_EXAMINED`], and
/// filters, sorts and pages it here.
async fn in_memory(
    source: &Source<'_>,
    plans: &[(ScimKind, Plan)],
    request: &ListRequest,
) -> Result<Listed, ScimError> {
    let store = &source.state.store;
    let mut candidates = 0;
    for (kind, plan) in plans {
        candidates += store
            .count_scim(*kind, source.idp, source.snapshot, &plan.condition)
            .await?;
    }
    if candidates > MAX_EXAMINED {
        return Err(too_many(candidates));
    }
    let filter = request.filter.clone().map(Arc::new);
    let sort_path = request.sort.as_ref().map(|s| s.path.clone());
    let mut matches: Vec<Match> = Vec::new();
    let mut examined = 0;
    for (kind, plan) in plans {
        let (needed, case_exact) = match kind {
            ScimKind::Users => ("groups", schema::USER.case_exact_names()),
            ScimKind::Groups => ("members", schema::GROUP.case_exact_names()),
        };
        let needs_relations = filter.as_ref().is_some_and(|f| f.mentions(needed))
            || sort_path
                .as_ref()
                .is_some_and(|p| p.attr.eq_ignore_ascii_case(needed));
        let chunk = if needs_relations && *kind == ScimKind::Groups {
            CHUNK_OF_GROUPS_WITH_MEMBERS
        } else {
            CHUNK
        };
        let case_exact = Arc::new(case_exact);
        let mut after_seq = 0;
        loop {
            let selection = ScimSelection {
                condition: &plan.condition,
                after_seq,
                order: ScimOrder::Created,
                offset: 0,
                limit: chunk,
            };
            let found = select(source, *kind, &selection).await?;
            let Some((last, _)) = found.last() else {
                break;
            };
            after_seq = *last;
            let read = found.len() as u64;
            examined += read;
            // Rows created while reading can only add to what was counted.
            if examined > MAX_EXAMINED {
                return Err(too_many(examined));
            }
            let shown = represent(source, found, needs_relations).await?;
            let checked = check(
                shown,
                filter.clone(),
                Arc::clone(&case_exact),
                sort_path.clone(),
            )
            .await?;
            matches.extend(checked.into_iter().map(|(seq, key)| Match {
                kind: *kind,
                seq,
                key,
            }));
            if read < chunk {
                break;
            }
        }
    }
    if let Some(sort) = &request.sort {
        // Stable: equals keep their kind and creation order. Resources
        // without the attribute go last, whatever the order.
        matches.sort_by(|a, b| match (&a.key, &b.key) {
            (Some(x), Some(y)) if sort.descending => y.cmp(x),
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
    let total = matches.len() as u64;
    let window: Vec<&Match> = matches
        .iter()
        .skip(usize::try_from(request.start - 1).unwrap_or(usize::MAX))
        .take(usize::try_from(request.count).unwrap_or(usize::MAX))
        .collect();
    let page = load(source, &window).await?;
    Ok(Listed {
        resources: render(source, page, &request.projection).await?,
        total,
    })
}

fn too_many(examined: u64) -> ScimError {
    ScimError::too_many(format!(
        "this filter or sortBy needs {examined} resources checked one by one, more than the \
         {MAX_EXAMINED} read for one request; filter with eq on id, externalId, userName, \
         displayName, emails.value, groups.value or members.value (alone or joined with and), \
         and sort by userName (Users) or displayName (Groups)"
    ))
}

/// Runs the filter over `shown` on a blocking thread; the `seq` and sort
/// key of each match.
async fn check(
    shown: Vec<(i64, Value)>,
    filter: Option<Arc<Filter>>,
    case_exact: Arc<Vec<String>>,
    sort_path: Option<AttrPath>,
) -> Result<Vec<(i64, Option<String>)>, ScimError> {
    tokio::task::spawn_blocking(move || {
        shown
            .into_iter()
            .filter(|(_, resource)| {
                filter
                    .as_ref()
                    .is_none_or(|f| f.matches(resource, &case_exact))
            })
            .map(|(seq, resource)| {
                let key = sort_path.as_ref().and_then(|p| sort_key(&resource, p));
                (seq, key)
            })
            .collect()
    })
    .await
    .map_err(|err| ScimError::Internal(format!("filtering failed: {err}")))
}

fn sort_key(resource: &Value, path: &AttrPath) -> Option<String> {
    let field = get_ci(resource, &path.attr)?;
    let value = match (&path.sub, field) {
        (Some(sub), Value::Array(items)) => items.first().and_then(|i| get_ci(i, sub)),
        (Some(sub), other) => get_ci(other, sub),
        (None, Value::Array(items)) => items.first().map(|i| get_ci(i, "value").unwrap_or(i)),
        (None, other) => Some(other),
    }?;
    Some(match value {
        Value::String(s) => s.to_lowercase(),
        other => other.to_string(),
    })
}

/// The resources of `window`, read again by `seq`, in its order.
async fn load(source: &Source<'_>, window: &[&Match]) -> Result<Vec<(i64, Found)>, ScimError> {
    let seqs_of = |kind: ScimKind| -> Vec<i64> {
        window
            .iter()
            .filter(|m| m.kind == kind)
            .map(|m| m.seq)
            .collect()
    };
    let (mut users, mut groups) = source
        .state
        .store
        .scim_resources_by_seq(
            source.idp,
            &seqs_of(ScimKind::Users),
            &seqs_of(ScimKind::Groups),
        )
        .await?;
    Ok(window
        .iter()
        .filter_map(|m| {
            let found = match m.kind {
                ScimKind::Users => users.remove(&m.seq).map(Found::User),
                ScimKind::Groups => groups.remove(&m.seq).map(Found::Group),
            };
            found.map(|f| (m.seq, f))
        })
        .collect())
}

/// The page as SCIM shows it, projected; it may end before `found` does
/// when its groups' members would pass [`MAX_MEMBERS_SHOWN`].
async fn render(
    source: &Source<'_>,
    found: Vec<(i64, Found)>,
    projection: &Projection,
) -> Result<Vec<Value>, ScimError> {
    let found = within_member_budget(source, found, projection).await?;
    let with_relations = projection.shows("groups") || projection.shows("members");
    Ok(represent(source, found, with_relations)
        .await?
        .into_iter()
        .map(|(_, resource)| projection.apply(resource))
        .collect())
}

/// The first resources of `found` whose groups hold at most
/// [`MAX_MEMBERS_SHOWN`] members together (always the first).
async fn within_member_budget(
    source: &Source<'_>,
    mut found: Vec<(i64, Found)>,
    projection: &Projection,
) -> Result<Vec<(i64, Found)>, ScimError> {
    if !projection.shows("members") {
        return Ok(found);
    }
    let groups: Vec<String> = found
        .iter()
        .filter_map(|(_, f)| match f {
            Found::Group(group) => Some(group.id.clone()),
            Found::User(_) => None,
        })
        .collect();
    let counts = source.state.store.scim_member_counts(&groups).await?;
    let mut members = 0;
    let keep = found
        .iter()
        .position(|(_, f)| {
            if let Found::Group(group) = f {
                members += counts.get(&group.id).copied().unwrap_or(0);
            }
            members > MAX_MEMBERS_SHOWN
        })
        .map_or(found.len(), |past| past.max(1));
    found.truncate(keep);
    Ok(found)
}

/// `found` as SCIM shows it; users' groups and groups' members are read
/// when `with_relations`, else shown empty.
async fn represent(
    source: &Source<'_>,
    found: Vec<(i64, Found)>,
    with_relations: bool,
) -> Result<Vec<(i64, Value)>, ScimError> {
    let base = resources::base_of(&source.state.public_url, source.idp);
    let mut groups_of: HashMap<String, Vec<Value>> = HashMap::new();
    let mut members_of: HashMap<String, Vec<String>> = HashMap::new();
    if with_relations {
        let (mut users, mut groups) = (Vec::new(), Vec::new());
        for (_, f) in &found {
            match f {
                Found::User(user) => users.push(user.id.clone()),
                Found::Group(group) => groups.push(group.id.clone()),
            }
        }
        let store = &source.state.store;
        for (user, group, display) in store.scim_groups_of_users(&users).await? {
            groups_of
                .entry(user)
                .or_default()
                .push(resources::group_of_user(&base, &group, &display));
        }
        for (group, user) in store.scim_members_of_groups(&groups).await? {
            members_of.entry(group).or_default().push(user);
        }
    }
    Ok(found
        .into_iter()
        .map(|(seq, f)| {
            let shown = match f {
                Found::User(user) => {
                    let groups = groups_of.remove(&user.id).unwrap_or_default();
                    resources::user(&base, &user, groups)
                }
                Found::Group(mut group) => {
                    group.members = members_of.remove(&group.id).unwrap_or_default();
                    resources::group(&base, &group)
                }
            };
            (seq, shown)
        })
        .collect())
}
