//! AQL's text syntax, by hand: `items.find({criteria}).include("a","b").sort({"$asc":["a"]})
//! .offset(n).limit(n)`. The argument of each call is found by matching parentheses (outside
//! JSON strings) and read with `serde_json`; the criteria object becomes a [`Criteria`] tree.

use serde_json::{Map, Value};

use crate::mock_registry::error::ApiError;

/// The item fields a query may name (criteria, include, sort).
pub(super) const ITEM_FIELDS: [&str; 16] = [
    "repo",
    "path",
    "name",
    "type",
    "size",
    "created",
    "created_by",
    "modified",
    "modified_by",
    "updated",
    "depth",
    "actual_md5",
    "actual_sha1",
    "original_md5",
    "original_sha1",
    "sha256",
];

/// The comparison operators of a criterion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operator {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Match,
    NotMatch,
}

impl Operator {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "$eq" => Self::Eq,
            "$ne" => Self::Ne,
            "$gt" => Self::Gt,
            "$gte" => Self::Gte,
            "$lt" => Self::Lt,
            "$lte" => Self::Lte,
            "$match" => Self::Match,
            "$nmatch" => Self::NotMatch,
            _ => return None,
        })
    }
}

/// What an item must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Criteria {
    /// Every one (`$and`, or several keys in one object).
    All(Vec<Criteria>),
    /// At least one (`$or`).
    Any(Vec<Criteria>),
    /// An item field compared with a value.
    Field {
        field: String,
        operator: Operator,
        value: Value,
    },
    /// A property (`@key`) compared with a value.
    Property {
        key: String,
        operator: Operator,
        value: Value,
    },
}

impl Criteria {
    /// Whether any criterion names `field` (a query naming `type` chooses files or folders).
    pub(super) fn mentions(&self, wanted: &str) -> bool {
        match self {
            Self::All(parts) | Self::Any(parts) => parts.iter().any(|part| part.mentions(wanted)),
            Self::Field { field, .. } => field == wanted,
            Self::Property { .. } => false,
        }
    }
}

/// Sort order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Ascending,
    Descending,
}

/// A parsed `items.find(...)` query.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Query {
    pub(super) criteria: Criteria,
    /// Fields named by `.include(...)`; empty = the default fields.
    pub(super) include: Vec<String>,
    pub(super) sort: Option<(Direction, Vec<String>)>,
    pub(super) offset: usize,
    pub(super) limit: Option<usize>,
}

/// The 400 Artifactory answers a query it cannot parse with.
fn syntax_error(query: &str, near: &str) -> ApiError {
    ApiError::bad_request(format!(
        "Failed to parse query: {}, it looks like there is syntax error near the following sub-query: {}",
        query.trim(),
        near.trim()
    ))
}

/// Splits `name(argument)rest` at the parenthesis matching the first `(`, skipping JSON strings.
fn call(text: &str) -> Option<(&str, &str, &str)> {
    let open = text.find('(')?;
    let name = text[..open].trim();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (index, character) in text[open..].char_indices() {
        if in_string {
            match (escaped, character) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match character {
            '"' => in_string = true,
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    let close = open + index;
                    return Some((name, &text[open + 1..close], &text[close + 1..]));
                }
            }
            _ => {}
        }
    }
    None
}

fn criterion_for(key: &str, operator: Operator, value: Value) -> Criteria {
    match key.strip_prefix('@') {
        Some(property) => Criteria::Property {
            key: property.to_owned(),
            operator,
            value,
        },
        None => Criteria::Field {
            field: key.to_owned(),
            operator,
            value,
        },
    }
}

/// A field of the items domain, as a query names it (`name`, `repo`, `size`, …).
type FieldName = String;

/// What is wrong with one part of a query, for the 400 that quotes it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Problem(String);

impl Problem {
    fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }
}

/// `format!` into a [`Problem`].
macro_rules! problem {
    ($($argument:tt)*) => {
        Problem(format!($($argument)*))
    };
}

fn parse_object(object: &Map<String, Value>) -> Result<Criteria, Problem> {
    let mut parts = Vec::new();
    for (key, value) in object {
        match key.as_str() {
            "$and" | "$or" => {
                let Value::Array(items) = value else {
                    return Err(problem!("{key} takes an array of criteria"));
                };
                let parsed = items
                    .iter()
                    .map(|item| match item {
                        Value::Object(inner) => parse_object(inner),
                        other => Err(problem!("{key}: {other} is not a criteria object")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                parts.push(if key == "$and" {
                    Criteria::All(parsed)
                } else {
                    Criteria::Any(parsed)
                });
            }
            _ if key.starts_with('@') && key.len() > 1 => parts.push(parse_value(key, value)?),
            _ if ITEM_FIELDS.contains(&key.as_str()) => parts.push(parse_value(key, value)?),
            _ => return Err(problem!("unknown field '{key}' of the items domain")),
        }
    }
    Ok(Criteria::All(parts))
}

fn parse_value(key: &str, value: &Value) -> Result<Criteria, Problem> {
    match value {
        Value::Object(comparisons) => {
            if comparisons.is_empty() {
                return Err(problem!("'{key}' has an empty comparison"));
            }
            let mut parts = Vec::new();
            for (name, operand) in comparisons {
                let operator = Operator::from_name(name)
                    .ok_or_else(|| problem!("unknown comparison operator '{name}'"))?;
                parts.push(criterion_for(key, operator, operand.clone()));
            }
            Ok(if parts.len() == 1 {
                parts.remove(0)
            } else {
                Criteria::All(parts)
            })
        }
        Value::String(_) | Value::Number(_) => Ok(criterion_for(key, Operator::Eq, value.clone())),
        other => Err(problem!("'{key}' cannot be compared with {other}")),
    }
}

fn parse_strings(argument: &str) -> Result<Vec<FieldName>, Problem> {
    let list: Vec<Value> = serde_json::from_str(&format!("[{argument}]"))
        .map_err(|error| problem!("expected quoted field names: {error}"))?;
    list.into_iter()
        .map(|value| match value {
            Value::String(text) => Ok(text),
            other => Err(problem!("{other} is not a quoted field name")),
        })
        .collect()
}

fn parse_sort(argument: &str) -> Result<(Direction, Vec<FieldName>), Problem> {
    let object: Map<String, Value> = serde_json::from_str(argument)
        .map_err(|error| problem!("sort takes {{\"$asc\": [fields]}}: {error}"))?;
    let (direction, fields) = match object.iter().next() {
        Some((name, fields)) if object.len() == 1 && name == "$asc" => {
            (Direction::Ascending, fields)
        }
        Some((name, fields)) if object.len() == 1 && name == "$desc" => {
            (Direction::Descending, fields)
        }
        _ => return Err(Problem::new("sort takes exactly one of $asc or $desc")),
    };
    let fields: Vec<String> = fields
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if fields.is_empty() {
        return Err(Problem::new("sort needs a non-empty array of field names"));
    }
    if let Some(unknown) = fields
        .iter()
        .find(|field| !ITEM_FIELDS.contains(&field.as_str()))
    {
        return Err(problem!("cannot sort by unknown field '{unknown}'"));
    }
    Ok((direction, fields))
}

fn parse_count(argument: &str) -> Result<usize, Problem> {
    argument
        .trim()
        .parse()
        .map_err(|_| problem!("'{}' is not a whole number", argument.trim()))
}

/// Parses a whole query; anything unexpected is Artifactory's 400.
pub(super) fn parse(text: &str) -> Result<Query, ApiError> {
    let trimmed = text.trim();
    let Some((head, argument, mut rest)) = call(trimmed) else {
        return Err(syntax_error(text, trimmed));
    };
    let Some((domain, function)) = head.split_once('.') else {
        return Err(syntax_error(text, head));
    };
    if domain.trim() != "items" {
        return Err(ApiError::bad_request(format!(
            "Failed to parse query: {}: the domain '{}' is not supported here; this registry \
             answers items.find(...) only",
            trimmed,
            domain.trim()
        )));
    }
    if function.trim() != "find" {
        return Err(syntax_error(text, function));
    }
    let criteria = if argument.trim().is_empty() {
        Criteria::All(Vec::new())
    } else {
        let object: Map<String, Value> = serde_json::from_str(argument)
            .map_err(|error| syntax_error(text, &format!("{argument} ({error})")))?;
        parse_object(&object).map_err(|problem| syntax_error(text, &problem.0))?
    };
    let mut query = Query {
        criteria,
        include: Vec::new(),
        sort: None,
        offset: 0,
        limit: None,
    };
    while !rest.trim().is_empty() {
        let Some(after_dot) = rest.trim_start().strip_prefix('.') else {
            return Err(syntax_error(text, rest));
        };
        let Some((name, argument, remaining)) = call(after_dot) else {
            return Err(syntax_error(text, rest));
        };
        let applied = match name {
            "include" => parse_strings(argument).map(|fields| query.include = fields),
            "sort" => parse_sort(argument).map(|sort| query.sort = Some(sort)),
            "offset" => parse_count(argument).map(|offset| query.offset = offset),
            "limit" => parse_count(argument).map(|limit| query.limit = Some(limit)),
            "distinct" => Ok(()),
            _ => Err(problem!("unknown function '{name}'")),
        };
        applied.map_err(|problem| syntax_error(text, &format!("{rest} ({problem})")))?;
        rest = remaining;
    }
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_query_parses() {
        let query = parse(
            r#" items.find({"repo": "r", "$or": [{"name": {"$match": "*.img"}}, {"@k": "v (x)"}]})
                .include("name", "repo", "property").sort({"$desc": ["name"]}).offset(1).limit(10) "#,
        )
        .expect("parses");
        assert_eq!(query.include, ["name", "repo", "property"]);
        assert_eq!(
            query.sort,
            Some((Direction::Descending, vec!["name".to_owned()]))
        );
        assert_eq!((query.offset, query.limit), (1, Some(10)));
        let Criteria::All(parts) = &query.criteria else {
            panic!("{:?}", query.criteria)
        };
        assert_eq!(parts.len(), 2);
        assert!(
            parts
                .iter()
                .any(|part| matches!(part, Criteria::Any(alternatives) if alternatives.len() == 2)),
            "{parts:?}"
        );
        assert_eq!(
            parse("items.find()").expect("empty").criteria,
            Criteria::All(vec![])
        );
    }

    #[test]
    fn bad_queries_are_400() {
        for bad in [
            "builds.find({})",
            "items.fnd({})",
            "items.find({\"nme\": \"x\"})",
            "items.find({\"name\": {\"$like\": \"x\"}})",
            "items.find({\"name\": \"x\"}",
            "items.find({name: x})",
            "items.find({}).limit(ten)",
            "items.find({}).sort({\"$up\": [\"name\"]})",
            "items.find({}).frobnicate()",
            "items.find({}) trailing",
        ] {
            assert_eq!(parse(bad).expect_err(bad).status, 400, "{bad}");
        }
    }
}
