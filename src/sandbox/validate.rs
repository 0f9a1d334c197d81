//! Input validation with the constraints of CodePipeline's service model, collected into one
//! `ValidationException` worded the way AWS words it
//! (`2 validation errors detected: Value '…' at 'a.b' failed to satisfy constraint: …; …`).

use super::job_api::ApiError;

/// The constraint violations found in one request.
#[derive(Default)]
pub(crate) struct Violations(Vec<String>);

impl Violations {
    /// A violation described by the caller: `value` is already quoted (or `null`).
    pub(crate) fn constraint(&mut self, path: &str, value: &str, constraint: &str) {
        self.push(value, path, constraint);
    }

    fn push(&mut self, value: &str, path: &str, constraint: &str) {
        self.0.push(format!(
            "Value {value} at '{path}' failed to satisfy constraint: {constraint}"
        ));
    }

    /// A required member that is missing.
    pub(crate) fn required<T>(&mut self, path: &str, value: Option<&T>) {
        if value.is_none() {
            self.push("null", path, "Member must not be null");
        }
    }

    /// Length in characters between `min` and `max` (inclusive).
    pub(crate) fn length(&mut self, path: &str, value: Option<&String>, min: usize, max: usize) {
        let Some(value) = value else { return };
        let length = value.chars().count();
        if length < min {
            let constraint = format!("Member must have length greater than or equal to {min}");
            self.push(&quote(value), path, &constraint);
        } else if length > max {
            let constraint = format!("Member must have length less than or equal to {max}");
            self.push(&quote(value), path, &constraint);
        }
    }

    /// Every character accepted by `allowed` (the model's `[...]+` patterns).
    pub(crate) fn pattern(
        &mut self,
        path: &str,
        value: Option<&String>,
        pattern: &str,
        allowed: fn(char) -> bool,
    ) {
        let Some(value) = value else { return };
        if value.is_empty() || !value.chars().all(allowed) {
            let constraint = format!("Member must satisfy regular expression pattern: {pattern}");
            self.push(&quote(value), path, &constraint);
        }
    }

    /// One of `allowed`.
    pub(crate) fn one_of(&mut self, path: &str, value: Option<&String>, allowed: &[&str]) {
        let Some(value) = value else { return };
        if !allowed.contains(&value.as_str()) {
            let constraint = format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            );
            self.push(&quote(value), path, &constraint);
        }
    }

    /// An integer between `min` and `max` (inclusive; `None` for unbounded).
    pub(crate) fn range(&mut self, path: &str, value: Option<i64>, min: i64, max: Option<i64>) {
        let Some(value) = value else { return };
        if value < min {
            let constraint = format!("Member must have value greater than or equal to {min}");
            self.push(&format!("'{value}'"), path, &constraint);
        } else if let Some(max) = max.filter(|max| value > *max) {
            let constraint = format!("Member must have value less than or equal to {max}");
            self.push(&format!("'{value}'"), path, &constraint);
        }
    }

    /// A job id: CodePipeline's model requires a lower-case UUID.
    pub(crate) fn job_id(&mut self, value: Option<&String>) {
        self.required("jobId", value);
        let Some(value) = value else { return };
        if !is_uuid(value) {
            let pattern = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
            let constraint = format!("Member must satisfy regular expression pattern: {pattern}");
            self.push(&quote(value), "jobId", &constraint);
        }
    }

    /// `Ok` when nothing was violated, else the ValidationException AWS would send.
    pub(crate) fn finish(self) -> Result<(), ApiError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(ApiError::validation(format!(
                "1 validation error detected: {}",
                self.0[0]
            ))),
            count => Err(ApiError::validation(format!(
                "{count} validation errors detected: {}",
                self.0.join("; ")
            ))),
        }
    }
}

/// Quotes a value for a message, shortening long ones so an error stays readable.
fn quote(value: &str) -> String {
    if value.chars().count() > 64 {
        let start: String = value.chars().take(64).collect();
        format!("'{start}...'")
    } else {
        format!("'{value}'")
    }
}

/// `[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`.
pub(crate) fn is_uuid(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.len() == 5
        && groups.iter().zip([8, 4, 4, 4, 12]).all(|(group, length)| {
            group.len() == length
                && group
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        })
}

/// `[0-9A-Za-z_-]` (provider, version, queryable values).
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// `[A-Za-z0-9@\-_]` (output variable names).
pub(crate) fn is_variable_char(c: char) -> bool {
    is_name_char(c) || c == '@'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_violation_in_aws_wording() {
        let mut violations = Violations::default();
        violations.required::<String>("failureDetails", None);
        violations.one_of(
            "failureDetails.type",
            Some(&"Oops".to_owned()),
            &["JobFailed"],
        );
        let error = violations.finish().unwrap_err();
        assert_eq!(error.kind, "ValidationException");
        assert_eq!(
            error.message,
            "2 validation errors detected: Value null at 'failureDetails' failed to satisfy \
             constraint: Member must not be null; Value 'Oops' at 'failureDetails.type' failed \
             to satisfy constraint: Member must satisfy enum value set: [JobFailed]"
        );
    }

    #[test]
    fn uuid_pattern() {
        assert!(is_uuid("0f8e7a4c-1b2d-4c3e-8f9a-0b1c2d3e4f5a"));
        assert!(!is_uuid("0F8E7A4C-1B2D-4C3E-8F9A-0B1C2D3E4F5A"));
        assert!(!is_uuid("not-a-uuid"));
    }
}
