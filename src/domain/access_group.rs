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

pub use super::ids::AccessGroupId;

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

    /// `who` as policies see it: the Access groups the policies' rules name
    /// and whose own rules match `who` (through any nesting) are added to
    /// its groups, and an id that names an Access group never counts as a
    /// SCIM group. Each reachable group is decided once, after the groups
    /// it names, with set lookups: the work grows with the rules read, not
    /// with their product.
    pub fn resolve<'a>(
        &self,
        mut who: Requester,
        roots: impl Iterator<Item = &'a Rules>,
    ) -> Requester {
        who.groups.retain(|id| self.get(id).is_none());
        let scim: HashSet<String> = who.groups.iter().map(|g| g.to_ascii_lowercase()).collect();
        let mut members: HashSet<AccessGroupId> = HashSet::new();
        let mut decided: HashSet<AccessGroupId> = HashSet::new();
        let mut named_by_policies: Vec<AccessGroupId> = Vec::new();
        for root in roots {
            for top in self.children(root) {
                named_by_policies.push(top.clone());
                if !decided.insert(top.clone()) {
                    continue;
                }
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
                    let admitted = self
                        .rules
                        .get(&node)
                        .is_some_and(|rules| self.group_matches(rules, &who, &scim, &members));
                    if admitted {
                        members.insert(node);
                    }
                }
            }
        }
        named_by_policies.sort_unstable();
        named_by_policies.dedup();
        who.groups.extend(
            named_by_policies
                .into_iter()
                .filter(|id| members.contains(id))
                .map(|id| id.to_string()),
        );
        who
    }

    /// [`Rules::match_requester`] for a group's own rules, with `group`
    /// rules looked up in the groups decided so far and the SCIM groups.
    fn group_matches(
        &self,
        rules: &Rules,
        who: &Requester,
        scim: &HashSet<String>,
        members: &HashSet<AccessGroupId>,
    ) -> bool {
        let matches = |rule: &Rule| match rule {
            Rule::Group { id } => match self.get(id) {
                Some((group, _)) => members.contains(group),
                None => scim.contains(&id.to_ascii_lowercase()),
            },
            other => other.matches(who),
        };
        rules.include.iter().any(matches)
            && rules.require.iter().all(matches)
            && !rules.exclude.iter().any(matches)
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
            service_token: None,
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

        let engineers = AccessGroupId::generate();
        let book = GroupBook::new([(engineers.clone(), scim.clone())]);
        let through = include(vec![group(&engineers)]);
        assert!(
            admits(&book, &through, who("ann@example.com")),
            "a group naming a SCIM group"
        );
        let mut outsider = who("ann@example.com");
        outsider.groups.clear();
        assert!(!admits(&book, &through, outsider));

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

    /// Many groups, each naming hundreds of others: every rule is read once.
    #[test]
    fn wide_graphs_resolve_in_one_pass() {
        let ids: Vec<AccessGroupId> = (0..1_000).map(|_| AccessGroupId::generate()).collect();
        let groups = ids.iter().enumerate().map(|(i, id)| {
            let below = ids[i + 1..].iter().take(500).map(group);
            let mut rules: Vec<Rule> = below.collect();
            rules.push(email("ann@example.com"));
            (id.clone(), include(rules))
        });
        let book = GroupBook::new(groups);
        let policy = Rules {
            include: ids.iter().map(group).collect(),
            require: vec![group(&ids[0])],
            exclude: vec![],
        };
        assert!(admits(&book, &policy, who("ann@example.com")));
        assert!(!admits(&book, &policy, who("eve@example.com")));
    }

    /// Stored data that no write would allow (a cycle, a chain far past the
    /// limit) is still resolved without recursion and without looping.
    #[test]
    fn hostile_stored_graphs_resolve_without_recursion() {
        let (book, ids) = chain(100_000);
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
        let policy = include(vec![group(&a)]);
        assert!(admits(&cyclic, &policy, who("ann@example.com")));
        assert!(!admits(&cyclic, &policy, who("eve@example.com")));
    }

    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// Three rule lists, each rule a kind (0 ann, 1 bob, 2 a group) and
        /// a number that picks the group.
        type Lists = Vec<Vec<(u8, usize)>>;

        fn lists() -> impl Strategy<Value = Lists> {
            prop::collection::vec(prop::collection::vec((0u8..3, any::<usize>()), 0..4), 3)
        }

        /// The rules of the group at `at` (the policy when `at` is None):
        /// a group rule names a later group, so the graph has no cycle.
        fn to_rules(lists: &Lists, ids: &[AccessGroupId], at: Option<usize>) -> Rules {
            let first = at.map_or(0, |i| i + 1);
            let convert = |list: &Vec<(u8, usize)>| -> Vec<Rule> {
                list.iter()
                    .map(|(kind, pick)| match (kind, ids.len().checked_sub(first)) {
                        (2, Some(later)) if later > 0 => group(&ids[first + pick % later]),
                        (1, _) => email("bob@example.com"),
                        _ => email("ann@example.com"),
                    })
                    .collect()
            };
            Rules {
                include: convert(&lists[0]),
                exclude: convert(&lists[1]),
                require: convert(&lists[2]),
            }
        }

        /// The definition, recursively: a group matches when its own
        /// include, exclude and require do.
        fn naive(rules: &Rules, book: &GroupBook, who: &Requester) -> bool {
            let matches = |rule: &Rule| match rule {
                Rule::Group { id } => book
                    .get(id)
                    .is_some_and(|(_, inner)| naive(inner, book, who)),
                other => other.matches(who),
            };
            rules.include.iter().any(matches)
                && rules.require.iter().all(matches)
                && !rules.exclude.iter().any(matches)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// Deciding each group once, bottom up, admits exactly whom the
            /// recursive definition admits.
            #[test]
            fn resolution_agrees_with_the_recursive_definition(
                groups in prop::collection::vec(lists(), 1..8),
                policy in lists(),
                bob in any::<bool>(),
            ) {
                let ids: Vec<AccessGroupId> = groups.iter().map(|_| AccessGroupId::generate()).collect();
                let book = GroupBook::new(
                    groups.iter().enumerate().map(|(i, lists)| (ids[i].clone(), to_rules(lists, &ids, Some(i)))),
                );
                let policy = to_rules(&policy, &ids, None);
                let visitor = who(if bob { "bob@example.com" } else { "ann@example.com" });
                prop_assert_eq!(admits(&book, &policy, visitor.clone()), naive(&policy, &book, &visitor));
            }
        }
    }
}
