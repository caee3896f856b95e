//! Access groups: a named set of rules that policies and other groups name
//! with `{"group": {"id": …}}`. A group matches whoever its own include,
//! exclude and require match.
//!
//! Nothing here recurses: nesting is walked with explicit stacks, so no
//! stored graph (however deep, or cyclic after racing writes) can exhaust
//! the stack. Writes are refused past [`MAX_NESTING`] levels and on cycles.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::policy::{Requester, Rule, Rules};
use super::{AccountId, Timestamp};

/// Groups one chain of `group` rules may pass through, the outermost
/// included: a group naming a group naming … at most this many.
pub const MAX_NESTING: usize = 10;

/// An Access group's id: a UUID, always lower case.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct AccessGroupId(String);

impl AccessGroupId {
    pub fn parse(raw: &str) -> Option<Self> {
        uuid::Uuid::try_parse(raw)
            .ok()
            .filter(|_| raw.len() == 36)
            .map(|u| Self(u.hyphenated().to_string()))
    }

    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccessGroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessGroup {
    pub id: AccessGroupId,
    pub account_id: AccountId,
    pub name: String,
    pub rules: Rules,
    /// Accepted and kept as sent; Cloudflare publishes no meaning for it.
    pub is_default: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The ids `group` rules name, in list order.
pub fn named_ids(rules: &Rules) -> impl Iterator<Item = &str> {
    rules.all().filter_map(|rule| match rule {
        Rule::Group { id } => Some(id.as_str()),
        _ => None,
    })
}

/// An account's Access groups by id: what `group` rules resolve against.
#[derive(Clone, Debug, Default)]
pub struct GroupBook {
    rules: HashMap<AccessGroupId, Rules>,
}

/// Why a group's rules cannot be saved as they are.
#[derive(Debug, PartialEq, Eq)]
pub enum NestingError {
    /// The group would name itself, directly or through other groups.
    Cycle,
    /// A chain through the group would pass more than [`MAX_NESTING`] groups.
    TooDeep(usize),
}

impl fmt::Display for NestingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NestingError::Cycle => f.write_str("the group would include itself through its rules"),
            NestingError::TooDeep(depth) => write!(
                f,
                "groups may nest at most {MAX_NESTING} levels deep; this would make {depth}"
            ),
        }
    }
}

impl GroupBook {
    pub fn new(groups: impl IntoIterator<Item = (AccessGroupId, Rules)>) -> Self {
        Self {
            rules: groups.into_iter().collect(),
        }
    }

    /// The Access group a `group` rule's id names, if it names one.
    pub fn get(&self, id: &str) -> Option<(&AccessGroupId, &Rules)> {
        let id = AccessGroupId::parse(id)?;
        self.rules.get_key_value(&id)
    }

    /// The Access groups `rules` name directly.
    fn children<'a>(&'a self, rules: &'a Rules) -> impl Iterator<Item = &'a AccessGroupId> {
        named_ids(rules).filter_map(|id| self.get(id).map(|(id, _)| id))
    }

    /// Checks that `group`, saved with `rules`, is in no cycle and in no
    /// chain longer than [`MAX_NESTING`]; the book then holds the new rules.
    pub fn replace_checked(
        &mut self,
        group: &AccessGroupId,
        rules: Rules,
    ) -> Result<(), NestingError> {
        self.rules.insert(group.clone(), rules);
        let down: Edges = self
            .rules
            .iter()
            .map(|(id, rules)| (id.clone(), self.children(rules).cloned().collect()))
            .collect();
        let mut up: Edges = HashMap::new();
        for (parent, children) in &down {
            for child in children {
                up.entry(child.clone()).or_default().push(parent.clone());
            }
        }
        let below = longest_chain(group, &down)?;
        let above = longest_chain(group, &up)?;
        // Both chains count `group` itself.
        let depth = below + above - 1;
        if depth > MAX_NESTING {
            return Err(NestingError::TooDeep(depth));
        }
        Ok(())
    }

    fn named_groups(&self, id: &AccessGroupId) -> Vec<AccessGroupId> {
        self.rules
            .get(id)
            .map(|rules| self.children(rules).cloned().collect())
            .unwrap_or_default()
    }

    /// `who` as policies see it: the Access groups the policies' rules
    /// reach (through any nesting) that match `who` are added to its groups,
    /// and an id that names an Access group never counts as a SCIM group.
    /// Each group is decided once, after the groups it names.
    pub fn resolve<'a>(
        &self,
        mut who: Requester,
        roots: impl Iterator<Item = &'a Rules>,
    ) -> Requester {
        who.groups.retain(|id| self.get(id).is_none());
        let mut decided: HashSet<AccessGroupId> = HashSet::new();
        for root in roots {
            for top in self.children(root) {
                if decided.contains(top) {
                    continue;
                }
                decided.insert(top.clone());
                let mut stack = vec![(top.clone(), self.named_groups(top))];
                while let Some((node, pending)) = stack.last_mut() {
                    if let Some(next) = pending.pop() {
                        // A group already decided, or still being decided
                        // (a cycle left by racing writes), is not entered again.
                        if decided.insert(next.clone()) {
                            let neighbours = self.named_groups(&next);
                            stack.push((next, neighbours));
                        }
                        continue;
                    }
                    let node = node.clone();
                    stack.pop();
                    if self
                        .rules
                        .get(&node)
                        .is_some_and(|rules| rules.match_requester(&who))
                    {
                        who.groups.push(node.to_string());
                    }
                }
            }
        }
        who
    }
}

/// Each group's neighbours in one direction (the groups it names, or
/// the groups naming it).
type Edges = HashMap<AccessGroupId, Vec<AccessGroupId>>;

/// The most groups on one chain from `start` (counted) along `edges`.
/// Reaching `start` again is a cycle; a cycle elsewhere (left by racing
/// writes) is cut where it closes.
fn longest_chain(start: &AccessGroupId, edges: &Edges) -> Result<usize, NestingError> {
    let next_of = |id: &AccessGroupId| edges.get(id).cloned().unwrap_or_default();
    let mut length: HashMap<AccessGroupId, usize> = HashMap::new();
    let mut on_path: HashSet<AccessGroupId> = HashSet::from([start.clone()]);
    let mut stack = vec![(start.clone(), next_of(start), 1usize)];
    while let Some((node, pending, best)) = stack.last_mut() {
        let Some(next) = pending.pop() else {
            let (node, best) = (node.clone(), *best);
            on_path.remove(&node);
            length.insert(node, best);
            stack.pop();
            if let Some((_, _, parent_best)) = stack.last_mut() {
                *parent_best = (*parent_best).max(best + 1);
            }
            continue;
        };
        if &next == start {
            return Err(NestingError::Cycle);
        }
        if let Some(known) = length.get(&next) {
            *best = (*best).max(known + 1);
        } else if on_path.insert(next.clone()) {
            let after = next_of(&next);
            stack.push((next, after, 1));
        }
    }
    Ok(length.get(start).copied().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn who(email: &str) -> Requester {
        Requester {
            email: Some(email.to_string()),
            ip: IpAddr::from([10, 0, 0, 1]),
            country: Some("DE".into()),
            idp_id: None,
            groups: vec!["scim-eng".into()],
        }
    }

    fn email(address: &str) -> Rule {
        Rule::Email {
            email: address.into(),
        }
    }

    fn group(id: &AccessGroupId) -> Rule {
        Rule::Group { id: id.to_string() }
    }

    fn include(rules: Vec<Rule>) -> Rules {
        Rules {
            include: rules,
            ..Rules::default()
        }
    }

    fn admits(book: &GroupBook, policy: &Rules, who_: Requester) -> bool {
        let resolved = book.resolve(who_, std::iter::once(policy));
        policy.match_requester(&resolved)
    }

    #[test]
    fn nested_groups_match_through_their_own_rules() {
        let (staff, admins, ops) = (
            AccessGroupId::generate(),
            AccessGroupId::generate(),
            AccessGroupId::generate(),
        );
        let book = GroupBook::new([
            (admins.clone(), include(vec![email("ann@example.com")])),
            (ops.clone(), include(vec![email("bob@example.com")])),
            (
                staff.clone(),
                Rules {
                    include: vec![group(&admins), group(&ops)],
                    exclude: vec![email("bob@example.com")],
                    require: vec![],
                },
            ),
        ]);
        let policy = include(vec![group(&staff)]);
        assert!(admits(&book, &policy, who("ann@example.com")));
        assert!(
            !admits(&book, &policy, who("bob@example.com")),
            "excluded by the outer group"
        );
        assert!(!admits(&book, &policy, who("eve@example.com")));
        let upper = include(vec![Rule::Group {
            id: staff.to_string().to_uppercase(),
        }]);
        assert!(
            admits(&book, &upper, who("ann@example.com")),
            "ids ignore case"
        );
    }

    #[test]
    fn groups_in_require_and_exclude() {
        let germany = AccessGroupId::generate();
        let book = GroupBook::new([(
            germany.clone(),
            include(vec![Rule::Geo {
                country_code: "DE".into(),
            }]),
        )]);
        let required = Rules {
            include: vec![Rule::Everyone {}],
            require: vec![group(&germany)],
            exclude: vec![],
        };
        let excluded = Rules {
            include: vec![Rule::Everyone {}],
            exclude: vec![group(&germany)],
            require: vec![],
        };
        let mut abroad = who("ann@example.com");
        abroad.country = Some("FR".into());
        assert!(admits(&book, &required, who("ann@example.com")));
        assert!(!admits(&book, &required, abroad.clone()));
        assert!(!admits(&book, &excluded, who("ann@example.com")));
        assert!(admits(&book, &excluded, abroad));
    }

    #[test]
    fn scim_groups_still_match_and_access_ids_are_not_scim_groups() {
        let book = GroupBook::new([]);
        let scim = include(vec![Rule::Group {
            id: "scim-eng".into(),
        }]);
        assert!(admits(&book, &scim, who("ann@example.com")));

        let nobody = AccessGroupId::generate();
        let book = GroupBook::new([(nobody.clone(), include(vec![email("x@example.com")]))]);
        let mut claims = who("ann@example.com");
        claims.groups.push(nobody.to_string());
        assert!(
            !admits(&book, &include(vec![group(&nobody)]), claims),
            "an Access group is decided by its rules only"
        );
    }

    fn chain(length: usize) -> (GroupBook, Vec<AccessGroupId>) {
        let ids: Vec<AccessGroupId> = (0..length).map(|_| AccessGroupId::generate()).collect();
        let mut groups = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let rules = match ids.get(i + 1) {
                Some(next) => include(vec![group(next)]),
                None => include(vec![email("ann@example.com")]),
            };
            groups.push((id.clone(), rules));
        }
        (GroupBook::new(groups), ids)
    }

    #[test]
    fn nesting_is_limited_above_and_below() {
        let (mut book, ids) = chain(MAX_NESTING);
        let last = ids[MAX_NESTING - 1].clone();
        let same = book.rules.get(&last).cloned().unwrap_or_default();
        assert_eq!(book.replace_checked(&last, same), Ok(()));
        let extra = AccessGroupId::generate();
        book.rules
            .insert(extra.clone(), include(vec![email("a@example.com")]));
        assert_eq!(
            book.replace_checked(&last, include(vec![group(&extra)])),
            Err(NestingError::TooDeep(MAX_NESTING + 1))
        );
        let (mut fresh, fresh_ids) = chain(MAX_NESTING);
        let above = AccessGroupId::generate();
        assert_eq!(
            fresh.replace_checked(&above, include(vec![group(&fresh_ids[0])])),
            Err(NestingError::TooDeep(MAX_NESTING + 1))
        );
    }

    #[test]
    fn cycles_are_refused() {
        let (a, b) = (AccessGroupId::generate(), AccessGroupId::generate());
        let mut book = GroupBook::new([(b.clone(), include(vec![group(&a)]))]);
        assert_eq!(
            book.replace_checked(&a, include(vec![group(&b)])),
            Err(NestingError::Cycle)
        );
        let mut alone = GroupBook::new([]);
        assert_eq!(
            alone.replace_checked(&a, include(vec![group(&a)])),
            Err(NestingError::Cycle)
        );
    }

    /// Stored data that no write would allow (a cycle, a chain far past the
    /// limit) is still resolved without recursion and without looping.
    #[test]
    fn hostile_stored_graphs_resolve_without_recursion() {
        let (book, ids) = chain(5_000);
        let policy = include(vec![group(&ids[0])]);
        assert!(admits(&book, &policy, who("ann@example.com")));
        assert!(!admits(&book, &policy, who("eve@example.com")));

        let (a, b) = (AccessGroupId::generate(), AccessGroupId::generate());
        let cyclic = GroupBook::new([
            (
                a.clone(),
                include(vec![group(&b), email("ann@example.com")]),
            ),
            (b.clone(), include(vec![group(&a)])),
        ]);
        let policy = include(vec![group(&b)]);
        let resolved = cyclic.resolve(who("ann@example.com"), std::iter::once(&policy));
        assert!(resolved.groups.contains(&a.to_string()));
        assert!(!admits(&cyclic, &policy, who("eve@example.com")));
    }
}
