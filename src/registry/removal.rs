//! Taking back a file that a run deployed itself, when the run fails after its uploads began
//! (uploads that overlap the download). Only a file that still holds the content the run sent
//! and every property it was deployed with is deleted: a file anyone else put at that path, or
//! changed since, is left alone.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::registry::paths::{encode_path, encode_segment};
use crate::registry::{AccessToken, RegistryClient, RegistryError};
use crate::secret::ExposeSecret;

/// What became of a file to be taken back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// It was deleted.
    Deleted,
    /// Nothing is at the path any more.
    Gone,
    /// The path holds other content or properties now; it was kept.
    NotOurs,
}

/// What the run deployed, to check before deleting.
#[derive(Debug, Clone, Copy)]
pub struct Deployed<'a> {
    pub repo: &'a str,
    pub path: &'a str,
    pub sha256: &'a str,
    pub properties: &'a BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
struct ItemProperties {
    #[serde(default)]
    properties: BTreeMap<String, Vec<String>>,
}

impl RegistryClient {
    /// Deletes `deployed` if the path still holds exactly what was deployed there
    /// (Artifactory's Delete Item; the registry's trash can, when it keeps one, holds it).
    pub async fn take_back(
        &self,
        token: &AccessToken,
        deployed: Deployed<'_>,
    ) -> Result<Removal, RegistryError> {
        let Some(existing) = self.file_info(token, deployed.repo, deployed.path).await? else {
            return Ok(Removal::Gone);
        };
        if existing.is_folder || existing.sha256.as_deref() != Some(deployed.sha256) {
            return Ok(Removal::NotOurs);
        }
        let stored = self
            .item_properties(token, deployed.repo, deployed.path)
            .await?;
        let unchanged = deployed
            .properties
            .iter()
            .all(|(key, values)| stored.get(key) == Some(values));
        if !unchanged {
            return Ok(Removal::NotOurs);
        }
        self.delete_item(token, deployed.repo, deployed.path).await
    }

    /// Every property of `repo`/`path` (empty when it has none).
    async fn item_properties(
        &self,
        token: &AccessToken,
        repo: &str,
        path: &str,
    ) -> Result<BTreeMap<String, Vec<String>>, RegistryError> {
        let url = self.url(&format!(
            "artifactory/api/storage/{}/{}?properties",
            encode_segment(repo),
            encode_path(path)
        ));
        // Artifactory answers 404 for an item without properties, as for a missing one.
        let Some(response) = self
            .get_if_found("item properties", &url, token, None)
            .await?
        else {
            return Ok(BTreeMap::new());
        };
        let found: ItemProperties =
            response
                .json()
                .await
                .map_err(|error| RegistryError::InvalidResponse {
                    operation: "item properties",
                    url,
                    message: error.without_url().to_string(),
                })?;
        Ok(found.properties)
    }

    async fn delete_item(
        &self,
        token: &AccessToken,
        repo: &str,
        path: &str,
    ) -> Result<Removal, RegistryError> {
        let url = self.artifact_url(repo, path);
        let response = self
            .send_with_retries("delete", &url, || async {
                Ok(self
                    .http()
                    .delete(&url)
                    .bearer_auth(token.token.expose_secret()))
            })
            .await?;
        match response.status() {
            status if status.is_success() => Ok(Removal::Deleted),
            reqwest::StatusCode::NOT_FOUND => Ok(Removal::Gone),
            _ => Err(RegistryError::from_response("delete", response).await),
        }
    }
}
