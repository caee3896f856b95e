//! SCIM filters (RFC 7644 §3.4.2.2): parsing and evaluation against a
//! resource in its JSON form.
//!
//! Precedence is `not` over `and` over `or`; parentheses group; a value path
//! (`emails[type eq "work"]`) filters the elements of a multi-valued
//! attribute. Attribute names never depend on case; string comparison does
//! not either, except for the attributes the schema marks case-exact.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::rc::Rc;

use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub enum Filter {
    Present(AttrPath),
    Compare {
        path: AttrPath,
        op: CompareOp,
        value: Value,
    },
    /// `attr[filter]`: some element of `attr` matches `filter`.
    ValuePath {
        path: AttrPath,
        filter: Box<Filter>,
    },
    /// Every one of two or more filters; a chain `a and b and c` is one node,
    /// so a long chain never builds a deep tree.
    And(Vec<Filter>),
    /// Any one of two or more filters.
    Or(Vec<Filter>),
    Not(Box<Filter>),
}

/// The most characters a filter (or a PATCH path) may have.
pub const MAX_FILTER_LENGTH: usize = 4096;
/// The most levels of `( )`, `not ( )` and `[ ]` a filter may nest.
pub const MAX_FILTER_DEPTH: usize = 32;
/// The most comparisons and presence tests one filter may hold.
pub const MAX_FILTER_TERMS: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// `[urn:…:]attribute[.subAttribute]`, names kept as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrPath {
    pub attr: String,
    pub sub: Option<String>,
}

impl AttrPath {
    /// Parses `name`, `name.sub` or a URN-qualified form.
    pub fn parse(raw: &str) -> Option<Self> {
        let unqualified = match raw.rfind(':') {
            Some(at) if raw.to_ascii_lowercase().starts_with("urn:") => &raw[at + 1..],
            Some(_) => return None,
            None => raw,
        };
        let (attr, sub) = match unqualified.split_once('.') {
            Some((a, s)) => (a, Some(s)),
            None => (unqualified, None),
        };
        let valid = |name: &str| {
            name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '$')
        };
        (valid(attr) && sub.is_none_or(valid)).then(|| AttrPath {
            attr: attr.to_string(),
            sub: sub.map(str::to_string),
        })
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
    OpenBracket,
    CloseBracket,
}

fn tokenize(input: &str) -> Result<Vec<Token>, FilterError> {
    let mut tokens = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '[' => {
                chars.next();
                tokens.push(Token::OpenBracket);
            }
            ']' => {
                chars.next();
                tokens.push(Token::CloseBracket);
            }
            '"' => {
                chars.next();
                let mut raw = String::from("\"");
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    raw.push(c);
                    if c == '\\' {
                        if let Some((_, escaped)) = chars.next() {
                            raw.push(escaped);
                        }
                    } else if c == '"' {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return Err(FilterError(format!(
                        "unterminated string starting at position {at}"
                    )));
                }
                let text: String = serde_json::from_str(&raw)
                    .map_err(|_| FilterError(format!("invalid string at position {at}")))?;
                tokens.push(Token::Str(text));
            }
            _ => {
                let mut word = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '"') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Levels of grouping open at the current token.
    depth: usize,
    /// Comparisons and presence tests read so far.
    terms: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn keyword(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    /// Enters one level of grouping; the limit keeps the recursion shallow.
    fn descend(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(FilterError(format!(
                "the filter nests deeper than {MAX_FILTER_DEPTH} levels"
            )));
        }
        Ok(())
    }

    fn count_term(&mut self) -> Result<(), FilterError> {
        self.terms += 1;
        if self.terms > MAX_FILTER_TERMS {
            return Err(FilterError(format!(
                "the filter has more than {MAX_FILTER_TERMS} comparisons"
            )));
        }
        Ok(())
    }

    fn or_expr(&mut self) -> Result<Filter, FilterError> {
        let mut any = vec![self.and_expr()?];
        while self.keyword("or") {
            self.next();
            any.push(self.and_expr()?);
        }
        Ok(if any.len() == 1 {
            any.remove(0)
        } else {
            Filter::Or(any)
        })
    }

    fn and_expr(&mut self) -> Result<Filter, FilterError> {
        let mut all = vec![self.unary()?];
        while self.keyword("and") {
            self.next();
            all.push(self.unary()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Filter::And(all)
        })
    }

    /// `( filter )` after the opening token was read.
    fn group(&mut self, close: Token, missing: &str) -> Result<Filter, FilterError> {
        self.descend()?;
        let inner = self.or_expr()?;
        self.expect(close, missing)?;
        self.depth -= 1;
        Ok(inner)
    }

    fn unary(&mut self) -> Result<Filter, FilterError> {
        if self.keyword("not") {
            self.next();
            if self.next() != Some(Token::Open) {
                return Err(FilterError(
                    "\"not\" must be followed by a parenthesised filter".into(),
                ));
            }
            let inner = self.group(Token::Close, "missing \")\"")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.next();
            return self.group(Token::Close, "missing \")\"");
        }
        self.attribute_expr()
    }

    fn expect(&mut self, token: Token, message: &str) -> Result<(), FilterError> {
        if self.next() == Some(token) {
            Ok(())
        } else {
            Err(FilterError(message.to_string()))
        }
    }

    fn attribute_expr(&mut self) -> Result<Filter, FilterError> {
        let Some(Token::Word(name)) = self.next() else {
            return Err(FilterError("expected an attribute name".into()));
        };
        let path = AttrPath::parse(&name)
            .ok_or_else(|| FilterError(format!("invalid attribute path {name:?}")))?;
        if self.peek() == Some(&Token::OpenBracket) {
            if path.sub.is_some() {
                return Err(FilterError(format!(
                    "{name:?} is a sub-attribute: it cannot take a [filter]"
                )));
            }
            self.next();
            let inner = self.group(Token::CloseBracket, "missing \"]\"")?;
            // Entra ID's `emails[type eq "work"].value eq "x"`: the element
            // must match the filter and the comparison on its sub-attribute.
            let filter = match self.peek() {
                Some(Token::Word(word)) if word.starts_with('.') => {
                    let sub = word[1..].to_string();
                    self.next();
                    let sub_path = AttrPath::parse(&sub)
                        .filter(|p| p.sub.is_none())
                        .ok_or_else(|| {
                            FilterError(format!("invalid sub-attribute {sub:?} after \"]\""))
                        })?;
                    let comparison = self.comparison(sub_path, &sub)?;
                    Filter::And(vec![inner, comparison])
                }
                _ => inner,
            };
            return Ok(Filter::ValuePath {
                path,
                filter: Box::new(filter),
            });
        }
        self.comparison(path, &name)
    }

    /// `op value` or `pr` after an attribute path.
    fn comparison(&mut self, path: AttrPath, name: &str) -> Result<Filter, FilterError> {
        self.count_term()?;
        let Some(Token::Word(op)) = self.next() else {
            return Err(FilterError(format!("expected an operator after {name:?}")));
        };
        let op = match op.to_ascii_lowercase().as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            other => return Err(FilterError(format!("unknown operator {other:?}"))),
        };
        let value = match self.next() {
            Some(Token::Str(text)) => Value::String(text),
            Some(Token::Word(word)) => match word.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => serde_json::from_str::<serde_json::Number>(&word)
                    .map(Value::Number)
                    .map_err(|_| FilterError(format!("invalid value {word:?}: quote strings")))?,
            },
            _ => return Err(FilterError(format!("expected a value after {name:?}"))),
        };
        Ok(Filter::Compare { path, op, value })
    }
}

impl Filter {
    /// Parses a filter within the limits above; anything beyond them is an
    /// error that names the limit, never a deep recursion.
    pub fn parse(input: &str) -> Result<Self, FilterError> {
        if input.len() > MAX_FILTER_LENGTH {
            return Err(FilterError(format!(
                "the filter is longer than {MAX_FILTER_LENGTH} characters"
            )));
        }
        let mut parser = Parser {
            tokens: tokenize(input)?,
            at: 0,
            depth: 0,
            terms: 0,
        };
        if parser.tokens.is_empty() {
            return Err(FilterError("the filter is empty".into()));
        }
        let filter = parser.or_expr()?;
        if parser.at < parser.tokens.len() {
            return Err(FilterError(format!(
                "unexpected {:?} after the filter",
                parser.tokens[parser.at]
            )));
        }
        Ok(filter)
    }

    /// Whether `resource` matches; `case_exact` names attributes compared
    /// with case (as `attr` or `attr.sub`, lower case). The recursion is as
    /// deep as the filter nests, which `parse` bounds.
    pub fn matches<S: AsRef<str>>(&self, resource: &Value, case_exact: &[S]) -> bool {
        self.matches_folding(resource, case_exact, None, &mut Folded::default())
    }

    /// Whether `element`, a value of the multi-valued attribute `parent`,
    /// matches: attribute names are read as sub-attributes of `parent`.
    pub fn matches_element<S: AsRef<str>>(
        &self,
        element: &Value,
        parent: &str,
        case_exact: &[S],
    ) -> bool {
        self.matches_folding(element, case_exact, Some(parent), &mut Folded::default())
    }

    /// Whether some part of the filter reads `attr` (at the top level).
    pub fn mentions(&self, attr: &str) -> bool {
        match self {
            Filter::And(all) | Filter::Or(all) => all.iter().any(|f| f.mentions(attr)),
            Filter::Not(inner) => inner.mentions(attr),
            Filter::Present(path)
            | Filter::Compare { path, .. }
            | Filter::ValuePath { path, .. } => path.attr.eq_ignore_ascii_case(attr),
        }
    }

    fn matches_folding<S: AsRef<str>>(
        &self,
        resource: &Value,
        case_exact: &[S],
        parent: Option<&str>,
        folded: &mut Folded,
    ) -> bool {
        match self {
            Filter::And(all) => all
                .iter()
                .all(|f| f.matches_folding(resource, case_exact, parent, folded)),
            Filter::Or(any) => any
                .iter()
                .any(|f| f.matches_folding(resource, case_exact, parent, folded)),
            Filter::Not(inner) => !inner.matches_folding(resource, case_exact, parent, folded),
            Filter::Present(path) => values_at(resource, path).iter().any(|v| is_present(v)),
            Filter::Compare { path, op, value } => {
                let exact = is_case_exact(path, parent, case_exact);
                let found = values_at(resource, path);
                let mut compare = |v: &Value, op| compare(v, op, value, exact, folded);
                if *op == CompareOp::Ne {
                    return !found.iter().any(|v| compare(v, CompareOp::Eq));
                }
                if found.is_empty() {
                    return *op == CompareOp::Eq && value.is_null();
                }
                found.iter().any(|v| compare(v, *op))
            }
            Filter::ValuePath { path, filter } => {
                let Some(field) = get_ci(resource, &path.attr) else {
                    return false;
                };
                let elements: Vec<&Value> = match field {
                    Value::Array(items) => items.iter().collect(),
                    other => vec![other],
                };
                elements.into_iter().any(|element| {
                    filter.matches_folding(element, case_exact, Some(&path.attr), folded)
                })
            }
        }
    }
}

/// The lower-cased form of the strings one evaluation compares, each
/// computed once however many terms of the filter compare it. Keyed by
/// where the text lives, which stays put while the resource and the filter
/// are borrowed (two live strings at one address and length are the same).
#[derive(Default)]
struct Folded(HashMap<(usize, usize), Rc<str>>);

impl Folded {
    fn of(&mut self, text: &str) -> Rc<str> {
        let key = (text.as_ptr() as usize, text.len());
        Rc::clone(
            self.0
                .entry(key)
                .or_insert_with(|| Rc::from(text.to_lowercase())),
        )
    }
}

/// Whether `path` (inside `parent`'s value filter, if any) compares with case.
fn is_case_exact<S: AsRef<str>>(path: &AttrPath, parent: Option<&str>, case_exact: &[S]) -> bool {
    let mut full = String::new();
    for part in [parent, Some(path.attr.as_str()), path.sub.as_deref()]
        .into_iter()
        .flatten()
    {
        if !full.is_empty() {
            full.push('.');
        }
        full.push_str(&part.to_ascii_lowercase());
    }
    case_exact.iter().any(|name| name.as_ref() == full)
}

fn is_present(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// A member of an object by name, whatever its case.
pub fn get_ci<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Every value the path reaches; multi-valued attributes give one per element.
fn values_at<'a>(resource: &'a Value, path: &AttrPath) -> Vec<&'a Value> {
    let Some(field) = get_ci(resource, &path.attr) else {
        return Vec::new();
    };
    let elements: Vec<&Value> = match field {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    match &path.sub {
        None => elements
            .into_iter()
            .map(|element| match element {
                // A bare multi-valued attribute compares by its `value`.
                Value::Object(_) => get_ci(element, "value").unwrap_or(element),
                other => other,
            })
            .collect(),
        Some(sub) => elements
            .into_iter()
            .filter_map(|element| get_ci(element, sub))
            .collect(),
    }
}

fn compare(
    found: &Value,
    op: CompareOp,
    wanted: &Value,
    case_exact: bool,
    folded: &mut Folded,
) -> bool {
    match (found, wanted) {
        (Value::String(a), Value::String(b)) => {
            let lowered;
            let (a, b): (&str, &str) = if case_exact {
                (a, b)
            } else {
                lowered = (folded.of(a), folded.of(b));
                (&lowered.0, &lowered.1)
            };
            match op {
                CompareOp::Eq => a == b,
                CompareOp::Ne => a != b,
                CompareOp::Co => a.contains(b),
                CompareOp::Sw => a.starts_with(b),
                CompareOp::Ew => a.ends_with(b),
                CompareOp::Gt => a > b,
                CompareOp::Ge => a >= b,
                CompareOp::Lt => a < b,
                CompareOp::Le => a <= b,
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let ordering = a
                .as_f64()
                .zip(b.as_f64())
                .and_then(|(a, b)| a.partial_cmp(&b));
            ordered(op, ordering)
        }
        (Value::Bool(a), Value::Bool(b)) => match op {
            CompareOp::Eq => a == b,
            CompareOp::Ne => a != b,
            _ => false,
        },
        (Value::Null, Value::Null) => op == CompareOp::Eq,
        _ => op == CompareOp::Ne,
    }
}

fn ordered(op: CompareOp, ordering: Option<Ordering>) -> bool {
    let Some(ordering) = ordering else {
        return false;
    };
    match op {
        CompareOp::Eq => ordering == Ordering::Equal,
        CompareOp::Ne => ordering != Ordering::Equal,
        CompareOp::Gt => ordering == Ordering::Greater,
        CompareOp::Ge => ordering != Ordering::Less,
        CompareOp::Lt => ordering == Ordering::Less,
        CompareOp::Le => ordering != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn user() -> Value {
        json!({
            "id": "2819c223-7f76-453a-919d-413861904646",
            "userName": "Bjensen@Example.com",
            "externalId": "bjensen",
            "active": true,
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "meta": {"lastModified": "2011-05-13T04:42:34Z", "resourceType": "User"},
            "loginCount": 7
        })
    }

    fn check(filter: &str) -> bool {
        Filter::parse(filter)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
            .matches(&user(), &["id", "externalid"])
    }

    #[test]
    fn rfc_examples_match() {
        assert!(
            check(r#"userName eq "bjensen@example.com""#),
            "case-insensitive userName"
        );
        assert!(check(r#"name.familyName co "ens""#));
        assert!(check(r#"userName sw "BJ""#));
        assert!(check(r#"userName ew ".com""#));
        assert!(check("name.givenName pr"));
        assert!(!check("title pr"));
        assert!(!check(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#));
        assert!(check(r#"meta.lastModified ge "2011-05-13T04:42:34Z""#));
        assert!(check(
            r#"emails[type eq "work" and value co "@example.com"]"#
        ));
        assert!(!check(
            r#"emails[type eq "work" and value co "@jensen.org"]"#
        ));
        assert!(
            check(r#"emails co "jensen.org""#),
            "a bare multi-valued attribute compares its values"
        );
        assert!(check(r#"emails.type eq "home""#));
        assert!(check(
            r#"userName eq "nobody" or (active eq true and not (loginCount lt 5))"#
        ));
        assert!(check(
            "loginCount ge 7 and loginCount le 7 and loginCount gt 6.5"
        ));
        assert!(check(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "BJENSEN@example.com""#
        ));
        assert!(
            check(r#"USERNAME EQ "bjensen@example.com""#),
            "operators and names ignore case"
        );
        assert!(
            !check(r#"externalId eq "BJENSEN""#),
            "externalId is case-exact"
        );
        assert!(check(r#"externalId eq "bjensen""#));
        assert!(
            check(r#"title ne "boss""#),
            "ne matches a missing attribute"
        );
        assert!(check(r#"name.givenName eq "Bar\"bara" or active eq true"#));
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        assert!(check(
            r#"active eq false and userName eq "x" or active eq true"#
        ));
        assert!(!check(
            r#"active eq false and (userName eq "x" or active eq true)"#
        ));
    }

    #[test]
    fn malformed_filters_are_refused() {
        for bad in [
            "",
            "userName",
            "userName eq",
            "userName xx \"a\"",
            "userName eq bjensen",
            "(userName pr",
            "userName pr)",
            "not userName pr",
            "emails[type eq \"work\"",
            "userName eq \"open",
            "a..b pr",
            "userName pr and",
            "urn:x userName pr",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn entra_matching_filter_compares_a_sub_attribute_of_filtered_values() {
        assert!(check(
            r#"emails[type eq "work"].value eq "bjensen@example.com""#
        ));
        assert!(!check(
            r#"emails[type eq "home"].value eq "bjensen@example.com""#
        ));
        assert!(check(
            r#"emails[type eq "home"].value ew "jensen.org" and active eq true"#
        ));
        assert!(Filter::parse(r#"emails[type eq "work"].value"#).is_err());
        assert!(Filter::parse(r#"emails[type eq "work"].a.b eq "x""#).is_err());
    }

    #[test]
    fn limits_are_errors_that_name_them() {
        let nested = |n: usize| format!("{}userName pr{}", "(".repeat(n), ")".repeat(n));
        assert!(Filter::parse(&nested(MAX_FILTER_DEPTH)).is_ok());
        let deep = Filter::parse(&nested(MAX_FILTER_DEPTH + 1));
        assert!(deep.is_err_and(|e| e.0.contains("deeper than")));
        let chain = |n: usize| vec!["userName pr"; n].join(" and ");
        let widest = Filter::parse(&chain(MAX_FILTER_TERMS));
        assert!(matches!(widest, Ok(Filter::And(ref all)) if all.len() == MAX_FILTER_TERMS));
        assert!(
            Filter::parse(&chain(MAX_FILTER_TERMS + 1)).is_err_and(|e| e.0.contains("more than"))
        );
        assert!(
            Filter::parse(&format!(
                "userName eq \"{}\"",
                "a".repeat(MAX_FILTER_LENGTH)
            ))
            .is_err_and(|e| e.0.contains("longer than"))
        );
    }

    mod properties {
        use proptest::prelude::*;
        use serde_json::{Value, json};

        use super::super::*;

        const NAMES: &[&str] = &[
            "userName",
            "name.givenName",
            "emails",
            "active",
            "loginCount",
            "meta.created",
        ];
        const OPS: &[(&str, CompareOp)] = &[
            ("eq", CompareOp::Eq),
            ("ne", CompareOp::Ne),
            ("co", CompareOp::Co),
            ("sw", CompareOp::Sw),
            ("ew", CompareOp::Ew),
            ("gt", CompareOp::Gt),
            ("ge", CompareOp::Ge),
            ("lt", CompareOp::Lt),
            ("le", CompareOp::Le),
        ];

        fn value() -> impl Strategy<Value = Value> {
            prop_oneof![
                any::<String>().prop_map(Value::String),
                any::<i32>().prop_map(|n| json!(n)),
                any::<bool>().prop_map(Value::Bool),
                Just(Value::Null),
            ]
        }

        fn path() -> impl Strategy<Value = AttrPath> {
            prop::sample::select(NAMES).prop_map(|n| {
                AttrPath::parse(n).unwrap_or(AttrPath {
                    attr: "userName".into(),
                    sub: None,
                })
            })
        }

        fn leaf() -> impl Strategy<Value = Filter> {
            prop_oneof![
                path().prop_map(Filter::Present),
                (path(), prop::sample::select(OPS), value())
                    .prop_map(|(path, (_, op), value)| Filter::Compare { path, op, value }),
            ]
        }

        /// Well-formed filters, as trees whose shape the parser gives back.
        fn filter() -> impl Strategy<Value = Filter> {
            leaf().prop_recursive(6, 48, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::And),
                    prop::collection::vec(inner.clone(), 2..4).prop_map(Filter::Or),
                    inner.clone().prop_map(|f| Filter::Not(Box::new(f))),
                    (prop::sample::select(&["emails", "members"][..]), inner).prop_map(
                        |(attr, f)| Filter::ValuePath {
                            path: AttrPath {
                                attr: attr.into(),
                                sub: None
                            },
                            filter: Box::new(f),
                        }
                    ),
                ]
            })
        }

        fn render(filter: &Filter) -> String {
            let grouped = |f: &Filter| match f {
                Filter::And(_) | Filter::Or(_) => format!("({})", render(f)),
                _ => render(f),
            };
            let name = |p: &AttrPath| match &p.sub {
                Some(sub) => format!("{}.{sub}", p.attr),
                None => p.attr.clone(),
            };
            match filter {
                Filter::Present(p) => format!("{} pr", name(p)),
                Filter::Compare { path, op, value } => {
                    let op = OPS.iter().find(|(_, o)| o == op).map_or("eq", |(w, _)| *w);
                    format!("{} {op} {value}", name(path))
                }
                Filter::And(all) => all.iter().map(grouped).collect::<Vec<_>>().join(" and "),
                Filter::Or(any) => any.iter().map(grouped).collect::<Vec<_>>().join(" or "),
                Filter::Not(inner) => format!("not ({})", render(inner)),
                Filter::ValuePath { path, filter } => format!("{}[{}]", path.attr, render(filter)),
            }
        }

        fn resource() -> Value {
            json!({"userName": "a@b.c", "active": true, "loginCount": 3,
                   "name": {"givenName": "A"}, "emails": [{"value": "a@b.c", "type": "work"}]})
        }

        /// Pieces filters are made of, and characters that have no place there.
        fn filter_text() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof![
                    prop::sample::select(
                        &[
                            "(", ")", "[", "]", "\"", "\\", " ", ".", ":", "userName", " eq ",
                            " and ", " or ", "not ", " pr", "\"x\"", "emails", "].value", "7",
                            "true",
                        ][..]
                    )
                    .prop_map(str::to_string),
                    any::<char>().prop_map(String::from),
                ],
                0..200,
            )
            .prop_map(|pieces| pieces.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn generated_filters_round_trip(original in filter()) {
                let text = render(&original);
                let parsed = Filter::parse(&text);
                prop_assert_eq!(parsed.as_ref().ok(), Some(&original), "{}", text);
                // Evaluation always answers.
                let _ = original.matches(&resource(), &["id"]);
            }

            #[test]
            fn any_text_parses_or_is_refused(text in filter_text()) {
                if let Ok(filter) = Filter::parse(&text) {
                    let _ = filter.matches(&resource(), &["id"]);
                }
            }

            #[test]
            fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                let text = String::from_utf8_lossy(&bytes);
                let _ = Filter::parse(&text);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn deep_nesting_is_refused_past_the_limit(
                depth in 0usize..6000,
                opener in prop::sample::select(&["(", "not (", "emails["][..]),
            ) {
                let closer = if opener == "emails[" { "]" } else { ")" };
                let text = format!("{}userName pr{}", opener.repeat(depth), closer.repeat(depth));
                let parsed = Filter::parse(&text);
                if depth <= MAX_FILTER_DEPTH && text.len() <= MAX_FILTER_LENGTH {
                    prop_assert!(parsed.is_ok(), "{}", text);
                } else {
                    prop_assert!(parsed.is_err());
                }
            }

            #[test]
            fn long_chains_stay_flat(terms in 1usize..25_000, joiner in prop::sample::select(&[" and ", " or "][..])) {
                let text = vec!["userName pr"; terms].join(joiner);
                match Filter::parse(&text) {
                    Ok(Filter::And(all) | Filter::Or(all)) => prop_assert_eq!(all.len(), terms),
                    Ok(single) => prop_assert_eq!((terms, single), (1, Filter::Present(AttrPath { attr: "userName".into(), sub: None }))),
                    Err(e) => prop_assert!(terms > MAX_FILTER_TERMS || text.len() > MAX_FILTER_LENGTH, "{}", e),
                }
            }

            #[test]
            fn unbalanced_nesting_is_refused(depth in 1usize..5000) {
                prop_assert!(Filter::parse(&"(".repeat(depth)).is_err());
                let closing = format!("userName pr{}", ")".repeat(depth));
                prop_assert!(Filter::parse(&closing).is_err());
                prop_assert!(Filter::parse(&"emails[".repeat(depth)).is_err());
            }
        }
    }
}
