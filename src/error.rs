//! Rendering an error chain, and the hints attached to error types.
//!
//! One renderer serves every place a failure is told: a job's CodePipeline failure message, the
//! log lines and the command line. An error type that knows the usual cause of its failure
//! implements [`Hint`]; the renderer finds hints by walking [`Error::source`] and asking each
//! cause through a [`HintLookup`] (the edge knows which types carry hints), never by searching
//! rendered text.

use std::borrow::Cow;
use std::error::Error;

/// A borrowed error as the chain walker hands it out.
pub type Cause<'a> = &'a (dyn Error + 'static);

/// An error type that can say what usually fixes it.
pub trait Hint {
    fn hint(&self) -> Option<Cow<'static, str>>;
}

/// Finds the hint of one cause, if its type carries one (by downcasting to the known types).
pub type HintLookup = fn(Cause<'_>) -> Option<Cow<'static, str>>;

/// No hints: the rendering of job failures, whose messages carry their hints inline.
pub fn no_hints(_: Cause<'_>) -> Option<Cow<'static, str>> {
    None
}

/// The error and its causes, outermost first.
///
/// `std::io::Error::source` skips the error it wraps (it returns the wrapped error's own
/// source), which would hide e.g. a rustls certificate error inside an I/O error; the walk
/// yields the wrapped error too.
pub fn causes(error: Cause<'_>) -> impl Iterator<Item = Cause<'_>> {
    let mut next = Some(error);
    std::iter::from_fn(move || {
        let current = next?;
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io.get_ref().map(|inner| inner as Cause<'_>),
            None => current.source(),
        };
        Some(current)
    })
}

/// The messages of the chain, each said once: an error that repeats its source's message in
/// its own (as many transport errors do) is not followed by that message again.
fn messages(error: Cause<'_>) -> Vec<String> {
    let mut messages: Vec<String> = Vec::new();
    for cause in causes(error) {
        let text = cause.to_string();
        if text.is_empty() {
            continue;
        }
        if messages.last().is_some_and(|last| last.ends_with(&text)) {
            continue;
        }
        messages.push(text);
    }
    messages
}

/// Renders an error and its causes, one per line (`error: …` then `Caused by: …`), then a
/// `hint: …` line for each cause whose type carries a hint.
pub fn render_chain(error: Cause<'_>, hints: HintLookup) -> String {
    let mut rendered = String::new();
    for (index, message) in messages(error).iter().enumerate() {
        rendered.push_str(if index == 0 {
            "error: "
        } else {
            "\nCaused by: "
        });
        rendered.push_str(message);
    }
    let mut seen: Vec<Cow<'static, str>> = Vec::new();
    for hint in causes(error).filter_map(hints) {
        if !seen.contains(&hint) {
            rendered.push_str("\nhint: ");
            rendered.push_str(&hint);
            seen.push(hint);
        }
    }
    rendered
}

/// Renders an error and its causes on one line, `outer: inner: innermost`, for log fields and
/// for embedding in another message.
pub fn inline_chain(error: Cause<'_>) -> String {
    messages(error).join(": ")
}

/// Whether a TLS certificate problem is among the causes: a bad certificate does not fix
/// itself, so it is never retried, and `check` reports it as a TLS failure.
pub fn is_certificate_error(error: Cause<'_>) -> bool {
    causes(error).any(|cause| {
        matches!(
            cause.downcast_ref::<rustls::Error>(),
            Some(
                rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType
                    | rustls::Error::InvalidCertRevocationList(_)
            )
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("could not publish `a.img`")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("the disk is full")]
    struct DiskFull;

    impl Hint for DiskFull {
        fn hint(&self) -> Option<Cow<'static, str>> {
            Some("free space under --work-dir".into())
        }
    }

    fn hints(cause: Cause<'_>) -> Option<Cow<'static, str>> {
        cause.downcast_ref::<DiskFull>().and_then(Hint::hint)
    }

    #[test]
    fn the_chain_walks_into_io_errors_and_says_each_message_once() {
        let error = Outer(std::io::Error::other(DiskFull));
        assert_eq!(
            render_chain(&error, hints),
            "error: could not publish `a.img`\nCaused by: the disk is full\n\
             hint: free space under --work-dir"
        );
        assert_eq!(
            inline_chain(&error),
            "could not publish `a.img`: the disk is full"
        );
        assert_eq!(
            render_chain(&error, no_hints),
            "error: could not publish `a.img`\nCaused by: the disk is full"
        );
    }

    #[test]
    fn certificate_errors_are_recognised_by_type_inside_io_errors() {
        let bad = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let wrapped = Outer(std::io::Error::new(std::io::ErrorKind::InvalidData, bad));
        assert!(is_certificate_error(&wrapped));
        let text_only = Outer(std::io::Error::other(
            "invalid peer certificate: UnknownIssuer",
        ));
        assert!(!is_certificate_error(&text_only));
    }
}
