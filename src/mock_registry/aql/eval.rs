//! Running a parsed query over the store: every file (and, when the query names `type`, every
//! folder) becomes an AQL item; criteria filter them, then sort, offset, limit and the included
//! fields shape the answer.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::parse::{Criteria, Direction, ITEM_FIELDS, Operator, Query};
use crate::mock_registry::Shared;
use crate::mock_registry::clock::{artifactory_timestamp, from_unix_millis};
use crate::mock_registry::paths::Properties;

/// The fields an item has when the query includes none.
const DEFAULT_FIELDS: [&str; 10] = [
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
];

/// One file or folder as AQL sees it.
#[derive(Debug, Clone)]
struct Item {
    fields: Map<String, Value>,
    properties: Properties,
}

impl Item {
    fn field(&self, name: &str) -> &Value {
        self.fields.get(name).unwrap_or(&Value::Null)
    }
}

fn timestamp(millis: i64) -> Value {
    from_unix_millis(millis)
        .map(artifactory_timestamp)
        .map_or(Value::Null, Value::String)
}

/// `(path, name)` the way AQL splits a full path: `.` is the repository root.
fn split(full_path: &str) -> (String, String) {
    match full_path.rsplit_once('/') {
        Some((path, name)) => (path.to_owned(), name.to_owned()),
        None => (".".to_owned(), full_path.to_owned()),
    }
}

fn items(shared: &Shared, with_folders: bool) -> Vec<Item> {
    let mut items = Vec::new();
    for repo in shared.store.repository_keys() {
        // Folder path → (earliest created, latest modified, creator of the earliest file).
        let mut folders: BTreeMap<String, (i64, i64, String)> = BTreeMap::new();
        for (full_path, record) in shared.store.records_in(&repo) {
            let (path, name) = split(&full_path);
            let mut fields = Map::new();
            fields.insert("repo".into(), json!(repo));
            fields.insert("path".into(), json!(path));
            fields.insert("name".into(), json!(name));
            fields.insert("type".into(), json!("file"));
            fields.insert("size".into(), json!(record.size));
            fields.insert("created".into(), timestamp(record.created_millis));
            fields.insert("created_by".into(), json!(record.created_by));
            fields.insert("modified".into(), timestamp(record.modified_millis));
            fields.insert("modified_by".into(), json!(record.created_by));
            fields.insert("updated".into(), timestamp(record.modified_millis));
            fields.insert("depth".into(), json!(full_path.split('/').count()));
            fields.insert("actual_md5".into(), json!(record.md5));
            fields.insert("actual_sha1".into(), json!(record.sha1));
            fields.insert("sha256".into(), json!(record.sha256));
            let original = |kind: &str, actual: &str| {
                record
                    .original_checksums
                    .get(kind)
                    .cloned()
                    .unwrap_or_else(|| actual.to_owned())
            };
            fields.insert("original_md5".into(), json!(original("md5", &record.md5)));
            fields.insert(
                "original_sha1".into(),
                json!(original("sha1", &record.sha1)),
            );
            if with_folders {
                let segments: Vec<&str> = full_path.split('/').collect();
                for end in 1..segments.len() {
                    let folder = segments[..end].join("/");
                    let entry = folders.entry(folder).or_insert((
                        record.created_millis,
                        record.modified_millis,
                        record.created_by.clone(),
                    ));
                    if record.created_millis < entry.0 {
                        entry.0 = record.created_millis;
                        entry.2 = record.created_by.clone();
                    }
                    entry.1 = entry.1.max(record.modified_millis);
                }
            }
            items.push(Item {
                fields,
                properties: record.properties,
            });
        }
        for (folder, (created, modified, creator)) in folders {
            let (path, name) = split(&folder);
            let mut fields = Map::new();
            fields.insert("repo".into(), json!(repo));
            fields.insert("path".into(), json!(path));
            fields.insert("name".into(), json!(name));
            fields.insert("type".into(), json!("folder"));
            fields.insert("size".into(), json!(0));
            fields.insert("created".into(), timestamp(created));
            fields.insert("created_by".into(), json!(creator));
            fields.insert("modified".into(), timestamp(modified));
            fields.insert("modified_by".into(), json!(creator));
            fields.insert("updated".into(), timestamp(modified));
            fields.insert("depth".into(), json!(folder.split('/').count()));
            items.push(Item {
                fields,
                properties: Properties::new(),
            });
        }
    }
    items
}

/// Glob matching as AQL's `$match` does it: `*` any run of characters, `?` exactly one.
pub(super) fn wildcard_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p, t));
            p += 1;
        } else if let Some((star, matched)) = backtrack {
            p = star + 1;
            t = matched + 1;
            backtrack = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|character| *character == '*')
}

/// Orders two values: numbers as numbers, everything else as text.
fn compare(left: &Value, right: &Value) -> Ordering {
    match (left.as_f64(), right.as_f64()) {
        (Some(left), Some(right)) => left.partial_cmp(&right).unwrap_or(Ordering::Equal),
        _ => text(left).cmp(&text(right)),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `actual` compared with the query's `operand`; a number in the query compares with a number
/// field as a number, and with text (`"size": "20"`) as the same number.
fn holds(actual: &Value, operator: Operator, operand: &Value) -> bool {
    let actual = match (actual, operand) {
        (Value::Number(_), Value::String(text)) if text.parse::<f64>().is_ok() => actual.clone(),
        (Value::String(text), Value::Number(_)) => text
            .parse::<f64>()
            .map_or(actual.clone(), |number| json!(number)),
        _ => actual.clone(),
    };
    let operand = match (&actual, operand) {
        (Value::Number(_), Value::String(text)) => {
            text.parse::<f64>().map_or(operand.clone(), |n| json!(n))
        }
        _ => operand.clone(),
    };
    let ordering = compare(&actual, &operand);
    match operator {
        Operator::Eq => ordering == Ordering::Equal,
        Operator::Ne => ordering != Ordering::Equal,
        Operator::Gt => ordering == Ordering::Greater,
        Operator::Gte => ordering != Ordering::Less,
        Operator::Lt => ordering == Ordering::Less,
        Operator::Lte => ordering != Ordering::Greater,
        Operator::Match => wildcard_match(&text(&operand), &text(&actual)),
        Operator::NotMatch => !wildcard_match(&text(&operand), &text(&actual)),
    }
}

fn satisfies(item: &Item, criteria: &Criteria) -> bool {
    match criteria {
        Criteria::All(parts) => parts.iter().all(|part| satisfies(item, part)),
        Criteria::Any(parts) => parts.iter().any(|part| satisfies(item, part)),
        Criteria::Field {
            field,
            operator,
            value,
        } => {
            if field == "type" && value.as_str() == Some("any") {
                return *operator == Operator::Eq;
            }
            holds(item.field(field), *operator, value)
        }
        Criteria::Property {
            key,
            operator,
            value,
        } => {
            let values = item.properties.get(key).map(Vec::as_slice).unwrap_or(&[]);
            // A negative comparison holds when no value of the key is equal (or matching):
            // an item without the key is not `"v"`.
            match operator {
                Operator::Ne => !values
                    .iter()
                    .any(|actual| holds(&json!(actual), Operator::Eq, value)),
                Operator::NotMatch => !values
                    .iter()
                    .any(|actual| holds(&json!(actual), Operator::Match, value)),
                _ => values
                    .iter()
                    .any(|actual| holds(&json!(actual), *operator, value)),
            }
        }
    }
}

/// Which item fields and which properties the answer carries.
struct Shape {
    fields: Vec<String>,
    /// `None`: no properties; `Some(None)`: all; `Some(Some(keys))`: only these keys.
    properties: Option<Option<Vec<String>>>,
}

fn shape(include: &[String]) -> Shape {
    let mut fields = Vec::new();
    let mut all_properties = false;
    let mut property_keys = Vec::new();
    for name in include {
        match name.as_str() {
            "*" => fields.extend(ITEM_FIELDS.iter().map(|field| (*field).to_owned())),
            "property" | "property.*" | "property.key" | "property.value" => all_properties = true,
            _ if name.starts_with('@') => property_keys.push(name[1..].to_owned()),
            _ => fields.push(name.clone()),
        }
    }
    if fields.is_empty() {
        fields = DEFAULT_FIELDS
            .iter()
            .map(|field| (*field).to_owned())
            .collect();
    }
    let properties = if all_properties {
        Some(None)
    } else if !property_keys.is_empty() {
        Some(Some(property_keys))
    } else {
        None
    };
    Shape { fields, properties }
}

/// Runs `query` and builds the answer: `{"results": [...], "range": {...}}`.
pub(super) fn run(shared: &Shared, query: &Query) -> Value {
    let names_type = query.criteria.mentions("type");
    let mut found: Vec<Item> = items(shared, names_type)
        .into_iter()
        .filter(|item| names_type || item.field("type") == "file")
        .filter(|item| satisfies(item, &query.criteria))
        .collect();
    if let Some((direction, fields)) = &query.sort {
        found.sort_by(|left, right| {
            let ordering = fields
                .iter()
                .map(|field| compare(left.field(field), right.field(field)))
                .find(|ordering| *ordering != Ordering::Equal)
                .unwrap_or(Ordering::Equal);
            match direction {
                Direction::Ascending => ordering,
                Direction::Descending => ordering.reverse(),
            }
        });
    }
    let shape = shape(&query.include);
    let page: Vec<Value> = found
        .into_iter()
        .skip(query.offset)
        .take(query.limit.unwrap_or(usize::MAX))
        .map(|item| {
            let mut result = Map::new();
            for field in &shape.fields {
                if let Some(value) = item.fields.get(field) {
                    result.insert(field.clone(), value.clone());
                }
            }
            if let Some(keys) = &shape.properties {
                let properties: Vec<Value> = item
                    .properties
                    .iter()
                    .filter(|(key, _)| keys.as_ref().is_none_or(|keys| keys.contains(key)))
                    .flat_map(|(key, values)| {
                        values
                            .iter()
                            .map(move |value| json!({ "key": key, "value": value }))
                    })
                    .collect();
                if !properties.is_empty() {
                    result.insert("properties".into(), Value::Array(properties));
                }
            }
            Value::Object(result)
        })
        .collect();
    let mut range = json!({
        "start_pos": query.offset,
        "end_pos": query.offset + page.len(),
        "total": page.len(),
    });
    if let Some(limit) = query.limit {
        range["limit"] = json!(limit);
    }
    json!({ "results": page, "range": range })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.img", "nestbox-cam-2.4.1.img"));
        assert!(wildcard_match(
            "nestbox-cam-?.?.?.img",
            "nestbox-cam-2.4.1.img"
        ));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("*.img", "manifest.json"));
        assert!(!wildcard_match("?", ""));
    }
}
