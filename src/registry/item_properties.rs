//! Finding a file the registry stored under its own layout (npm, PyPI) by checksum, and
//! attaching properties to it afterwards — the npm and PyPI APIs carry no properties.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::registry::paths::{encode_path, encode_segment};
use crate::registry::{AccessToken, RegistryClient, RegistryError, RepoPath};
use crate::secret::ExposeSecret;

#[derive(Deserialize)]
struct ChecksumSearch {
    results: Vec<SearchResult>,
}

#[derive(Deserialize)]
struct SearchResult {
    uri: String,
}

impl RegistryClient {
    /// Where in `repo` the registry keeps content with this sha256, if anywhere.
    pub async fn find_by_sha256(
        &self,
        token: &AccessToken,
        repo: &str,
        sha256: &str,
    ) -> Result<Option<RepoPath>, RegistryError> {
        let url = self.url("artifactory/api/search/checksum");
        let response = self
            .send_with_retries("checksum search", &url, || async {
                Ok(self
                    .http()
                    .get(&url)
                    .query(&[("sha256", sha256), ("repos", repo)])
                    .bearer_auth(token.token.expose_secret()))
            })
            .await?;
        if !response.status().is_success() {
            return Err(RegistryError::from_response("checksum search", response).await);
        }
        let found: ChecksumSearch =
            response
                .json()
                .await
                .map_err(|error| RegistryError::InvalidResponse {
                    operation: "checksum search",
                    url,
                    message: error.without_url().to_string(),
                })?;
        let marker = format!("/api/storage/{}/", encode_segment(repo));
        Ok(found.results.iter().find_map(|result| {
            let (_, path) = result.uri.split_once(&marker)?;
            Some(
                percent_encoding::percent_decode_str(path)
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        }))
    }

    /// Sets `properties` on `repo`/`path` (Artifactory's Set Item Properties).
    pub async fn set_properties(
        &self,
        token: &AccessToken,
        repo: &str,
        path: &str,
        properties: &BTreeMap<String, Vec<String>>,
    ) -> Result<(), RegistryError> {
        let url = self.url(&format!(
            "artifactory/api/storage/{}/{}",
            encode_segment(repo),
            encode_path(path)
        ));
        let query = properties_query(properties);
        let response = self
            .send_with_retries("set properties", &url, || async {
                Ok(self
                    .http()
                    .put(&url)
                    .query(&[("properties", query.as_str()), ("recursive", "0")])
                    .bearer_auth(token.token.expose_secret()))
            })
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(RegistryError::from_response("set properties", response).await)
        }
    }
}

/// `k=v1,v2;k2=v` with Artifactory's backslash escapes for the separators inside values.
fn properties_query(properties: &BTreeMap<String, Vec<String>>) -> String {
    let escape = |text: &str| {
        let mut escaped = String::with_capacity(text.len());
        for c in text.chars() {
            if matches!(c, '\\' | ',' | ';' | '=' | '|') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        escaped
    };
    properties
        .iter()
        .map(|(key, values)| {
            let values: Vec<String> = values.iter().map(|value| escape(value)).collect();
            format!("{}={}", escape(key), values.join(","))
        })
        .collect::<Vec<_>>()
        .join(";")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_inside_values_are_escaped() {
        let mut properties = BTreeMap::new();
        properties.insert("build.name".to_owned(), vec!["nestbox".to_owned()]);
        properties.insert("note".to_owned(), vec!["a;b=c".to_owned(), "d".to_owned()]);
        assert_eq!(
            properties_query(&properties),
            "build.name=nestbox;note=a\\;b\\=c,d"
        );
    }
}
