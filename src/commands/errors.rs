//! Errors at the command-line edge: the chain (`error: …` then `Caused by: …`) through the one
//! renderer, then a hint for each cause whose type carries one. The edge is the one place that
//! knows every error type with a hint, so the lookup lives here; each hint is written beside
//! its type.

use std::borrow::Cow;

use crate::app::MissingRegion;
use crate::error::{Cause, Hint, render_chain};
use crate::pipeline::config::ConfigError;

/// Renders an `anyhow` error from a command: its context layers and causes, then hints.
pub fn render(error: &anyhow::Error) -> String {
    let chain: &(dyn std::error::Error + 'static) = error.as_ref();
    render_chain(chain, hint_of)
}

/// Renders a typed error the same way.
pub fn render_error(error: &(dyn std::error::Error + 'static)) -> String {
    render_chain(error, hint_of)
}

/// The hint of one cause, by its type.
pub fn hint_of(cause: Cause<'_>) -> Option<Cow<'static, str>> {
    if let Some(error) = cause.downcast_ref::<ConfigError>() {
        return error.hint();
    }
    if let Some(error) = cause.downcast_ref::<MissingRegion>() {
        return error.hint();
    }
    if let Some(error) = cause.downcast_ref::<reqwest::Error>()
        && error.is_connect()
    {
        return Some(UNREACHABLE.into());
    }
    None
}

const UNREACHABLE: &str = "the endpoint could not be reached: check the URL, DNS, proxy settings \
                           and that the network allows the connection";

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn hints_come_from_the_types_in_the_chain_and_repeated_messages_are_said_once() {
        let error = Err::<(), _>(MissingRegion)
            .context("could not start the worker")
            .unwrap_err();
        assert_eq!(
            render(&error),
            "error: could not start the worker\nCaused by: no AWS region is configured; set \
             AWS_REGION to the region of your pipelines (CodePipeline hands out jobs per region)\n\
             hint: set AWS_REGION (or a region in the AWS_PROFILE's config)"
        );
        // The same words in another type's message earn no hint: hints follow types, not text.
        let lookalike = anyhow::anyhow!("no AWS region is configured");
        assert!(!render(&lookalike).contains("hint:"));
    }
}
