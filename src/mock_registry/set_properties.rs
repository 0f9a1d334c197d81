//! `PUT /artifactory/api/storage/{repo}/{path}?properties=k=v1,v2;k2=v` — Set Item Properties.
//!
//! Values may escape `,`, `;`, `=`, `|` and `\` with a backslash, as Artifactory documents.
//! Properties are added to what the item already has (same key: replaced), answer 204.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::Shared;
use super::auth::Caller;
use super::error::ApiError;
use super::paths::Properties;
use super::storage::item_after;

/// Splits `text` at unescaped `separator`s, keeping escapes for the next level.
fn split_unescaped(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for character in text.chars() {
        if escaped {
            if let Some(last) = parts.last_mut() {
                last.push('\\');
                last.push(character);
            }
            escaped = false;
        } else if character == '\\' {
            escaped = true;
        } else if character == separator {
            parts.push(String::new());
        } else if let Some(last) = parts.last_mut() {
            last.push(character);
        }
    }
    parts
}

fn unescape(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut escaped = false;
    for character in text.chars() {
        if escaped || character != '\\' {
            plain.push(character);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    plain
}

/// Parses the `properties` query value.
pub(super) fn parse(value: &str) -> Result<Properties, ApiError> {
    let mut properties = Properties::new();
    for pair in split_unescaped(value, ';')
        .into_iter()
        .filter(|p| !p.is_empty())
    {
        let mut key_and_values = split_unescaped(&pair, '=').into_iter();
        let key = unescape(&key_and_values.next().unwrap_or_default());
        let rest: Vec<String> = key_and_values.collect();
        if key.is_empty() || rest.is_empty() {
            return Err(ApiError::bad_request(format!("Invalid property '{pair}'")));
        }
        let values = split_unescaped(&rest.join("="), ',')
            .iter()
            .map(|value| unescape(value))
            .collect();
        properties.insert(key, values);
    }
    Ok(properties)
}

pub(super) async fn set_item_properties(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
) -> Result<Response, ApiError> {
    caller.require_user()?;
    let item = item_after(&uri, "/artifactory/api/storage/")?;
    let query = uri.query().unwrap_or_default();
    let raw = url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "properties")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| ApiError::bad_request("The 'properties' parameter is required"))?;
    let properties = parse(&raw)?;
    if !shared
        .store
        .add_properties(&item.repo, &item.path, properties)
    {
        return Err(ApiError::not_found("Unable to find item"));
    }
    shared
        .store
        .persist()
        .await
        .map_err(|error| ApiError::internal("could not save metadata", &error))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_separators_stay_in_values() {
        let parsed = parse(r"build.name=nest\;box;tags=a,b\,c;eq=x\=y").unwrap();
        assert_eq!(parsed["build.name"], ["nest;box"]);
        assert_eq!(parsed["tags"], ["a", "b,c"]);
        assert_eq!(parsed["eq"], ["x=y"]);
        assert!(parse("novalue").is_err());
    }
}
