//! Pipeline view tests: jobs ended through the real `aws-sdk-codepipeline` client, the page
//! fetched over HTTP as a browser would, links and escaping checked in the HTML.

use std::collections::BTreeMap;

use aws_sdk_codepipeline::types::{ExecutionDetails, FailureType};

use super::tests::{claim, failure, start};
use super::*;

const HOST: &str = "http://127.0.0.1:8081";

fn configuration(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect()
}

async fn page(running: &RunningSandbox, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("{}{path}", running.endpoint_url))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn succeeded_and_failed_actions_show_status_details_and_template_links() {
    let (running, client) = start().await;
    let sandbox = &running.sandbox;
    let mut published = JobSpec::new("nestbox-firmware");
    published.configuration = configuration(&[
        ("ArtifactoryHost", HOST),
        ("RepoKey", "firmware-releases"),
        ("UserName", "ci"),
        ("Password", "hunter2-never-shown"),
    ]);
    let published_id = sandbox.queue_job(published);
    let mut broken = JobSpec::new("nestbox-firmware");
    broken.configuration = configuration(&[("ArtifactoryHost", "ftp://registry.example")]);
    let broken_id = sandbox.queue_job(broken);
    let waiting_id = sandbox.queue_job(JobSpec::new("nestbox-camera"));

    let job = claim(&client).await;
    assert_eq!(job, published_id);
    let mut output_variables = std::collections::HashMap::new();
    output_variables.insert("FirmwareSha256".to_owned(), "15303".to_owned());
    client
        .put_job_success_result()
        .job_id(&job)
        .execution_details(
            ExecutionDetails::builder()
                .summary("Published 3 files to firmware-releases/nestbox-cam/9c1e5a2/")
                .external_execution_id(
                    "fw/42/1700000000000/published?buildRepo=artifactory-build-info",
                )
                .build(),
        )
        .set_output_variables(Some(output_variables))
        .send()
        .await
        .unwrap();
    let job = claim(&client).await;
    assert_eq!(job, broken_id);
    client
        .put_job_failure_result()
        .job_id(&job)
        .failure_details(failure(
            FailureType::ConfigurationError,
            "RepoKey: is required but missing",
        ))
        .send()
        .await
        .unwrap();

    let (status, html) = page(&running, PIPELINES_PATH).await;
    assert_eq!(status, 200);
    let card = |id: &str| {
        let start = html.find(&format!("data-job-id=\"{id}\"")).unwrap();
        let end = html[start..].find("</article>").unwrap();
        html[start..start + end].to_owned()
    };

    let published = card(&published_id);
    assert!(published.contains("<span class=\"status\">Succeeded</span>"));
    assert!(published.contains(&format!(
        "<a class=\"entity-link\" href=\"{HOST}/ui/repos/tree/General/firmware-releases\">Artifactory</a>"
    )));
    assert!(published.contains(&format!(
        "<a class=\"execution-link\" href=\"{HOST}/ui/builds/fw/42/1700000000000/published?buildRepo=artifactory-build-info\">Details</a>"
    )));
    assert!(published.contains("Published 3 files to firmware-releases/nestbox-cam/9c1e5a2/"));
    assert!(published.contains("<code>FirmwareSha256</code></td><td>15303</td>"));
    assert!(published.contains("<th>Password</th><td><code>****</code></td>"));
    assert!(
        !html.contains("hunter2-never-shown"),
        "a secret reached the page"
    );

    let failed = card(&broken_id);
    assert!(failed.contains("<span class=\"status\">Failed</span>"));
    assert!(failed.contains("<code>ConfigurationError</code>"));
    assert!(failed.contains("RepoKey: is required but missing"));
    // No RepoKey: no entity link; no externalExecutionId: no execution link.
    assert!(failed.contains("<span class=\"entity-link no-link\">Artifactory</span>"));
    assert!(failed.contains("none: the action&#39;s configuration has no RepoKey"));
    assert!(failed.contains("none: the action reported no externalExecutionId"));

    let waiting = card(&waiting_id);
    assert!(waiting.contains("<span class=\"status\">Queued</span>"));
    assert!(
        html.contains("http-equiv=\"refresh\""),
        "a page with a queued job refreshes itself"
    );

    let (status, one) = page(&running, &format!("{PIPELINES_PATH}/nestbox-camera/view")).await;
    assert_eq!(status, 200);
    assert!(one.contains(&waiting_id) && !one.contains(&published_id));
    let (status, _) = page(&running, "/codesuite/codepipeline/nothing-here").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn values_from_pipelines_are_shown_as_text_and_hostile_links_are_not_followed() {
    let (running, client) = start().await;
    let mut spec = JobSpec::new("<script>alert('name')</script>");
    spec.stage_name = "<b>Deploy</b>".to_owned();
    spec.configuration = configuration(&[
        ("ArtifactoryHost", "javascript:alert(1)//"),
        ("RepoKey", "\"><img src=x onerror=alert(2)>"),
    ]);
    let job_id = running.sandbox.queue_job(spec);
    let job = claim(&client).await;
    assert_eq!(job, job_id);
    let mut output_variables = std::collections::HashMap::new();
    output_variables.insert(
        "Note".to_owned(),
        "</td></tr><script>x()</script>".to_owned(),
    );
    client
        .put_job_success_result()
        .job_id(&job)
        .execution_details(
            ExecutionDetails::builder()
                .summary("<iframe src=//evil>")
                .external_execution_id("\" onmouseover=\"alert(3)")
                .build(),
        )
        .set_output_variables(Some(output_variables))
        .send()
        .await
        .unwrap();

    let (_, html) = page(&running, PIPELINES_PATH).await;
    for raw in [
        "<script>",
        "<b>Deploy",
        "<img",
        "<iframe",
        "\" onmouseover=\"",
        "</td></tr><script>",
    ] {
        assert!(
            !html.contains(raw),
            "{raw} reached the page unescaped:\n{html}"
        );
    }
    assert!(html.contains("&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;"));
    assert!(html.contains("&lt;iframe src=//evil&gt;"));
    assert!(
        !html.contains("href=\"javascript:"),
        "a javascript: link is followable"
    );
    assert!(html.contains("<span class=\"entity-link no-link\">Artifactory</span>"));
    // The pipeline's section id and link use its name percent-encoded.
    assert!(html.contains("id=\"pipeline-%3Cscript%3Ealert%28%27name%27%29%3C%2Fscript%3E\""));
}

#[tokio::test]
async fn list_action_types_answers_with_the_registered_settings_and_properties() {
    let (_running, client) = start().await;
    let output = client.list_action_types().send().await.unwrap();
    // Versions 1 and 2 of pipeline-publisher's action type are registered from the start.
    let [action_type, version_2] = output.action_types() else {
        panic!("two action types expected: {:?}", output.action_types())
    };
    assert_eq!(version_2.id().unwrap().version(), "2");
    let authentication = version_2
        .action_configuration_properties()
        .iter()
        .find(|property| property.name() == "Authentication")
        .unwrap();
    assert!(!authentication.required() && !authentication.secret());
    let settings = action_type.settings().unwrap();
    assert_eq!(
        settings.entity_url_template(),
        Some("{Config:ArtifactoryHost}/ui/repos/tree/General/{Config:RepoKey}")
    );
    assert_eq!(
        settings.execution_url_template(),
        Some("{Config:ArtifactoryHost}/ui/builds/{ExternalExecutionId}")
    );
    let password = action_type
        .action_configuration_properties()
        .iter()
        .find(|property| property.name() == "Password")
        .unwrap();
    assert!(password.secret() && password.required());
    assert_eq!(
        action_type
            .output_artifact_details()
            .unwrap()
            .maximum_count(),
        1
    );
}
