//! Publishing build info (`PUT /artifactory/api/build`), which links a build — for us, one
//! pipeline execution — to every file it published.

use reqwest::header::CONTENT_TYPE;

use crate::registry::{AccessToken, RegistryClient, RegistryError};
use crate::secret::ExposeSecret;

impl RegistryClient {
    /// Publishes `build_info` (the JSON document JFrog's build-info schema describes).
    pub async fn publish_build_info(
        &self,
        token: &AccessToken,
        build_info: &serde_json::Value,
    ) -> Result<(), RegistryError> {
        let url = self.url("artifactory/api/build");
        let response = self
            .send_with_retries("build info", &url, || async {
                Ok(self
                    .http()
                    .put(&url)
                    .bearer_auth(token.token.expose_secret())
                    .header(CONTENT_TYPE, "application/json")
                    .body(build_info.to_string()))
            })
            .await?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(RegistryError::from_response("build info", response).await)
        }
    }
}
