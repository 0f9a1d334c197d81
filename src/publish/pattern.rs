//! Wildcard patterns over `/`-separated paths, for file specs and npm's `files` field.
//!
//! `?` matches one character other than `/`; `*` matches any run of characters — across `/`
//! in JFrog-CLI style ([`Pattern::jfrog`]), within one segment in npm style
//! ([`Pattern::segment_wise`], where `**` crosses segments). In JFrog style, parentheses
//! capture what they enclose for `{1}`, `{2}`… placeholders in a target.

/// Why a JFrog-style pattern cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error(
        "`{pattern}` has a `)` without `(`; pair every `)` with a `(` (parentheses capture for \
         `{{1}}`, `{{2}}`… in the target)"
    )]
    UnopenedGroup { pattern: String },
    #[error(
        "`{pattern}` has a `(` without `)`; pair every `(` with a `)` (parentheses capture for \
         `{{1}}`, `{{2}}`… in the target)"
    )]
    UnclosedGroup { pattern: String },
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    tokens: Vec<Token>,
    groups: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `*`; `cross` when it may match `/`.
    Any {
        cross: bool,
    },
    /// `?`
    One,
    Open(usize),
    Close(usize),
}

impl Pattern {
    /// JFrog CLI semantics: `*` crosses directories, `(…)` captures.
    pub fn jfrog(pattern: &str) -> Result<Self, PatternError> {
        let mut tokens = Vec::new();
        let mut open = Vec::new();
        let mut groups = 0;
        for c in pattern.chars() {
            tokens.push(match c {
                '*' => Token::Any { cross: true },
                '?' => Token::One,
                '(' => {
                    groups += 1;
                    open.push(groups);
                    Token::Open(groups)
                }
                ')' => match open.pop() {
                    Some(group) => Token::Close(group),
                    None => {
                        return Err(PatternError::UnopenedGroup {
                            pattern: pattern.to_owned(),
                        });
                    }
                },
                other => Token::Literal(other),
            });
        }
        if !open.is_empty() {
            return Err(PatternError::UnclosedGroup {
                pattern: pattern.to_owned(),
            });
        }
        Ok(Self { tokens, groups })
    }

    /// npm / gitignore semantics: `*` stays within a segment, `**` crosses segments.
    pub fn segment_wise(pattern: &str) -> Self {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    // `**/` also matches zero directories.
                    if chars.peek() == Some(&'/') {
                        chars.next();
                        tokens.push(Token::Any { cross: true });
                        tokens.push(Token::Open(0));
                        continue;
                    }
                    Token::Any { cross: true }
                }
                '*' => Token::Any { cross: false },
                '?' => Token::One,
                other => Token::Literal(other),
            });
        }
        // `Open(0)` after `**` marks an optional `/`: see `matches_at`.
        Self { tokens, groups: 0 }
    }

    /// How many capture groups the pattern has.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// Whether `path` matches the whole pattern.
    pub fn is_match(&self, path: &str) -> bool {
        self.captures(path).is_some()
    }

    /// The captured groups (index 0 = group 1) when `path` matches the whole pattern.
    pub fn captures(&self, path: &str) -> Option<Vec<String>> {
        let text: Vec<char> = path.chars().collect();
        let mut starts = vec![0usize; self.groups + 1];
        let mut spans = vec![(0usize, 0usize); self.groups + 1];
        if self.matches_at(0, &text, 0, &mut starts, &mut spans) {
            Some(
                spans[1..]
                    .iter()
                    .map(|&(from, to)| text[from..to].iter().collect())
                    .collect(),
            )
        } else {
            None
        }
    }

    fn matches_at(
        &self,
        token: usize,
        text: &[char],
        at: usize,
        starts: &mut [usize],
        spans: &mut [(usize, usize)],
    ) -> bool {
        let Some(current) = self.tokens.get(token) else {
            return at == text.len();
        };
        match *current {
            Token::Literal(c) => {
                text.get(at) == Some(&c) && self.matches_at(token + 1, text, at + 1, starts, spans)
            }
            Token::One => {
                matches!(text.get(at), Some(c) if *c != '/')
                    && self.matches_at(token + 1, text, at + 1, starts, spans)
            }
            // Greedy, like the regular expression `.*` JFrog CLI turns `*` into: the longest
            // match first, so `(*)/(*)` splits at the last `/`.
            Token::Any { cross } => {
                let mut longest = at;
                while let Some(c) = text.get(longest) {
                    if *c == '/' && !cross {
                        break;
                    }
                    longest += 1;
                }
                (at..=longest)
                    .rev()
                    .any(|end| self.matches_at(token + 1, text, end, starts, spans))
            }
            // Segment-wise `**/`: the `**` matched up to here; the `/` is optional only when
            // `**` matched nothing, otherwise it must follow.
            Token::Open(0) => {
                let after_slash = text.get(at) == Some(&'/')
                    && self.matches_at(token + 1, text, at + 1, starts, spans);
                after_slash
                    || (is_segment_start(text, at)
                        && self.matches_at(token + 1, text, at, starts, spans))
            }
            Token::Open(group) => {
                starts[group] = at;
                self.matches_at(token + 1, text, at, starts, spans)
            }
            Token::Close(group) => {
                let saved = spans[group];
                spans[group] = (starts[group], at);
                if self.matches_at(token + 1, text, at, starts, spans) {
                    return true;
                }
                spans[group] = saved;
                false
            }
        }
    }
}

fn is_segment_start(text: &[char], at: usize) -> bool {
    at == 0 || text.get(at - 1) == Some(&'/')
}

/// Replaces `{1}`, `{2}`… in `template` with `captures`; other braces are left alone.
pub fn fill_captures(template: &str, captures: &[String]) -> String {
    let mut filled = template.to_owned();
    for (index, value) in captures.iter().enumerate().rev() {
        filled = filled.replace(&format!("{{{}}}", index + 1), value);
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jfrog_stars_cross_directories_and_capture() {
        let pattern = Pattern::jfrog("firmware/(*)/(*).img").unwrap();
        assert_eq!(
            pattern.captures("firmware/rpi/zero/nestbox-2.4.1.img"),
            Some(vec!["rpi/zero".to_owned(), "nestbox-2.4.1".to_owned()])
        );
        assert!(!pattern.is_match("firmware/x.bin"));
        assert!(Pattern::jfrog("*").unwrap().is_match("a/b/c"));
        assert!(Pattern::jfrog("a(b").is_err());
        assert_eq!(
            fill_captures("fw/{2}/{1}", &["x".into(), "y".into()]),
            "fw/y/x"
        );
    }

    #[test]
    fn segment_wise_stars_stay_in_their_segment() {
        assert!(Pattern::segment_wise("lib/*.js").is_match("lib/a.js"));
        assert!(!Pattern::segment_wise("lib/*.js").is_match("lib/x/a.js"));
        assert!(Pattern::segment_wise("lib/**/*.js").is_match("lib/x/y/a.js"));
        assert!(Pattern::segment_wise("lib/**/*.js").is_match("lib/a.js"));
        assert!(Pattern::segment_wise("**/*.md").is_match("README.md"));
        assert!(Pattern::segment_wise("?.txt").is_match("a.txt"));
    }
}
