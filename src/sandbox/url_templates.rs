//! CodePipeline's substitution in an action type's URL templates: `{Config:Name}` becomes the
//! action's value of a configuration property that is required and not secret (the only ones
//! CodePipeline allows in templates), and `{ExternalExecutionId}` the id the job worker
//! reported with its result. Any other text, braces included, is kept as written.

use std::collections::BTreeMap;

use super::action_types::ActionTypeDefinition;

/// Why a template could not be turned into a link.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "`{{Config:{0}}}` names a property the action type does not declare; declare it in the \
         action definition or fix the template"
    )]
    UnknownProperty(String),
    #[error("`{{Config:{0}}}` is a secret property; CodePipeline never puts secrets in links")]
    SecretProperty(String),
    #[error(
        "`{{Config:{0}}}` is an optional property; CodePipeline substitutes only required ones, \
         so make it required or leave it out of the template"
    )]
    OptionalProperty(String),
    #[error("the action's configuration has no {0}")]
    MissingValue(String),
    #[error("the action reported no externalExecutionId")]
    NoExternalExecutionId,
}

/// What a template is filled from.
pub struct TemplateInputs<'a> {
    pub definition: &'a ActionTypeDefinition,
    /// The action's configuration as the pipeline declares it.
    pub configuration: &'a BTreeMap<String, String>,
    /// `externalExecutionId` of the job's result, if it reported one.
    pub external_execution_id: Option<&'a str>,
}

/// Fills `template` the way CodePipeline does for the console.
pub fn render(template: &str, inputs: &TemplateInputs<'_>) -> Result<String, TemplateError> {
    let mut rendered = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        rendered.push_str(&rest[..open]);
        let after_open = &rest[open + 1..];
        let Some(close) = after_open.find('}') else {
            rendered.push_str(&rest[open..]);
            return Ok(rendered);
        };
        let placeholder = &after_open[..close];
        match substitute(placeholder, inputs)? {
            Some(value) => rendered.push_str(value),
            None => {
                rendered.push('{');
                rendered.push_str(placeholder);
                rendered.push('}');
            }
        }
        rest = &after_open[close + 1..];
    }
    rendered.push_str(rest);
    Ok(rendered)
}

/// The value of one placeholder, `None` when it is not one CodePipeline knows.
fn substitute<'a>(
    placeholder: &str,
    inputs: &TemplateInputs<'a>,
) -> Result<Option<&'a str>, TemplateError> {
    if placeholder == "ExternalExecutionId" {
        return inputs
            .external_execution_id
            .map(Some)
            .ok_or(TemplateError::NoExternalExecutionId);
    }
    let Some(name) = placeholder.strip_prefix("Config:") else {
        return Ok(None);
    };
    let property = inputs
        .definition
        .property(name)
        .ok_or_else(|| TemplateError::UnknownProperty(name.to_owned()))?;
    if property.secret {
        return Err(TemplateError::SecretProperty(name.to_owned()));
    }
    if !property.required {
        return Err(TemplateError::OptionalProperty(name.to_owned()));
    }
    match inputs.configuration.get(name) {
        Some(value) if !value.is_empty() => Ok(Some(value.as_str())),
        _ => Err(TemplateError::MissingValue(name.to_owned())),
    }
}

/// `url` when a browser may follow it from the console: absolute http(s) only, so a pipeline's
/// configuration cannot turn a link into `javascript:` or a local file.
pub fn followable(url: &str) -> Option<&str> {
    let parsed = url::Url::parse(url).ok()?;
    matches!(parsed.scheme(), "http" | "https").then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configuration(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn render_with(
        template: &str,
        pairs: &[(&str, &str)],
        external: Option<&str>,
    ) -> Result<String, TemplateError> {
        let definition = ActionTypeDefinition::pipeline_publisher().unwrap();
        let configuration = configuration(pairs);
        render(
            template,
            &TemplateInputs {
                definition: &definition,
                configuration: &configuration,
                external_execution_id: external,
            },
        )
    }

    #[test]
    fn config_properties_and_the_external_execution_id_are_substituted() {
        let host = ("ArtifactoryHost", "http://127.0.0.1:8081");
        assert_eq!(
            render_with(
                "{Config:ArtifactoryHost}/ui/repos/tree/General/{Config:RepoKey}",
                &[host, ("RepoKey", "firmware-releases")],
                None
            ),
            Ok("http://127.0.0.1:8081/ui/repos/tree/General/firmware-releases".to_owned())
        );
        assert_eq!(
            render_with(
                "{Config:ArtifactoryHost}/ui/builds/{ExternalExecutionId}",
                &[host],
                Some("fw/42/1700000000000/published?buildRepo=artifactory-build-info")
            ),
            Ok("http://127.0.0.1:8081/ui/builds/fw/42/1700000000000/published?buildRepo=artifactory-build-info".to_owned())
        );
    }

    #[test]
    fn secrets_optional_and_unknown_properties_and_missing_values_give_no_link() {
        let host = ("ArtifactoryHost", "http://h");
        assert_eq!(
            render_with(
                "{Config:ArtifactoryHost}?p={Config:Password}",
                &[host, ("Password", "pw")],
                None
            ),
            Err(TemplateError::SecretProperty("Password".into()))
        );
        assert_eq!(
            render_with("{Config:TargetPath}", &[("TargetPath", "a")], None),
            Err(TemplateError::OptionalProperty("TargetPath".into()))
        );
        assert_eq!(
            render_with("{Config:Nope}", &[], None),
            Err(TemplateError::UnknownProperty("Nope".into()))
        );
        assert_eq!(
            render_with("{Config:RepoKey}", &[host], None),
            Err(TemplateError::MissingValue("RepoKey".into()))
        );
        assert_eq!(
            render_with(
                "{Config:ArtifactoryHost}/{ExternalExecutionId}",
                &[host],
                None
            ),
            Err(TemplateError::NoExternalExecutionId)
        );
    }

    #[test]
    fn other_braces_are_kept_as_written() {
        assert_eq!(
            render_with("x/{Revision}/{unterminated", &[], None),
            Ok("x/{Revision}/{unterminated".to_owned())
        );
    }

    #[test]
    fn only_http_and_https_urls_are_followable() {
        assert!(followable("https://acme.jfrog.io/ui/").is_some());
        assert!(followable("http://127.0.0.1:1/ui/").is_some());
        for refused in [
            "javascript:alert(1)//x",
            "ftp://registry.example/ui/",
            "file:///etc/passwd",
            "/ui/relative",
            "data:text/html,<b>x</b>",
        ] {
            assert_eq!(followable(refused), None, "{refused}");
        }
    }
}
