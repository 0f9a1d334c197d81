//! npm package names and the request paths of the npm API
//! (`/artifactory/api/npm/{repo}/{name}`, `.../{name}/-/{file}.tgz`, `.../-/{endpoint}`), and
//! where a version's tarball is stored: `{name}/-/{name}-{version}.tgz` (for a scoped package
//! `@scope/name/-/@scope/name-1.0.0.tgz`, the path npm itself puts in `dist.tarball`).

use percent_encoding::percent_decode_str;

use super::error::ApiError;
use super::paths::encode_path;

/// Prefix of every npm API path.
pub(super) const NPM_PREFIX: &str = "/artifactory/api/npm/";

/// npm's limit on the length of a package name.
const MAX_NAME_LENGTH: usize = 214;

/// What an npm API request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NpmTarget {
    /// A package document (packument): `{repo}/{name}` with `name` possibly `@scope/name`.
    Package { repo: String, name: String },
    /// A tarball: `{repo}/{name}/-/{file}`.
    Tarball {
        repo: String,
        name: String,
        file: String,
    },
    /// A registry endpoint such as `-/ping` or `-/whoami` (text after `-/`).
    Endpoint { repo: String, endpoint: String },
}

fn invalid_name(name: &str) -> ApiError {
    ApiError::bad_request(format!("Invalid npm package name '{name}'"))
}

/// Checks an npm package name: `name` or `@scope/name`, URL-safe characters only, no
/// leading dot or underscore, at most 214 characters. Upper case is accepted (old names).
pub(super) fn check_package_name(name: &str) -> Result<(), ApiError> {
    let bare = match name.strip_prefix('@') {
        Some(scoped) => {
            let (scope, bare) = scoped.split_once('/').ok_or_else(|| invalid_name(name))?;
            check_name_part(scope).map_err(|_| invalid_name(name))?;
            bare
        }
        None => name,
    };
    if name.len() > MAX_NAME_LENGTH || bare.starts_with(['.', '_']) {
        return Err(invalid_name(name));
    }
    check_name_part(bare).map_err(|_| invalid_name(name))
}

fn check_name_part(part: &str) -> Result<(), ()> {
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte);
    if part.is_empty() || part == "." || part == ".." || !part.bytes().all(allowed) {
        Err(())
    } else {
        Ok(())
    }
}

/// Checks a version string enough to use it in a path (the client validates semver).
pub(super) fn check_version(version: &str) -> Result<(), ApiError> {
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || b"-.+_".contains(&byte);
    if version.is_empty() || version.len() > 256 || !version.bytes().all(allowed) {
        return Err(ApiError::bad_request(format!(
            "Invalid npm package version '{version}'"
        )));
    }
    Ok(())
}

/// The attachment key npm uses for a version, and the tarball's file name: `{name}-{version}.tgz`.
pub(super) fn tarball_file(name: &str, version: &str) -> String {
    format!("{name}-{version}.tgz")
}

/// Where a version's tarball is stored inside the repository.
pub(super) fn tarball_path(name: &str, version: &str) -> String {
    format!("{name}/-/{}", tarball_file(name, version))
}

/// The absolute URL of a stored tarball under the npm API (`base` may be empty for a path).
pub(super) fn tarball_url(base: &str, repo: &str, name: &str, version: &str) -> String {
    format!(
        "{base}{NPM_PREFIX}{}/{}",
        encode_path(repo),
        encode_path(&tarball_path(name, version))
    )
}

fn decode(raw: &str) -> Result<String, ApiError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| ApiError::bad_request("Invalid UTF-8 in request path"))
}

/// Parses the raw (percent-encoded) request path. Scoped names arrive as `@scope%2fname` or
/// `@scope/name`; both are accepted.
pub(super) fn parse_npm_path(raw_path: &str) -> Result<NpmTarget, ApiError> {
    let not_found = || ApiError::not_found("Not Found");
    let rest = raw_path.strip_prefix(NPM_PREFIX).ok_or_else(not_found)?;
    let (raw_repo, raw_rest) = rest.split_once('/').ok_or_else(not_found)?;
    let repo = decode(raw_repo)?;
    if repo.is_empty() || repo.contains(['/', '\\']) || repo == "." || repo == ".." {
        return Err(ApiError::bad_request(format!(
            "Invalid repository key '{repo}'"
        )));
    }
    let rest = decode(raw_rest)?;
    let rest = rest.strip_suffix('/').unwrap_or(&rest);
    if let Some(endpoint) = rest.strip_prefix("-/") {
        return Ok(NpmTarget::Endpoint {
            repo,
            endpoint: endpoint.to_string(),
        });
    }
    if let Some((name, file)) = rest.split_once("/-/") {
        check_package_name(name)?;
        let file_ok = match file.split_once('/') {
            // A scoped tarball name carries its scope: `@scope/name-1.0.0.tgz`.
            Some((scope, bare)) => name.starts_with(&format!("{scope}/")) && !bare.contains('/'),
            None => true,
        };
        if !file_ok || !file.ends_with(".tgz") || file.contains(['\\', '\0']) || file.contains("..")
        {
            return Err(not_found());
        }
        return Ok(NpmTarget::Tarball {
            repo,
            name: name.to_string(),
            file: file.to_string(),
        });
    }
    check_package_name(rest)?;
    Ok(NpmTarget::Package {
        repo,
        name: rest.to_string(),
    })
}

/// Where a requested tarball file is stored: `{name}/-/{file}`, with the scope added when the
/// client asked for the unscoped file name (`@scope/name/-/name-1.0.0.tgz`).
pub(super) fn stored_tarball_candidates(name: &str, file: &str) -> Vec<String> {
    let mut candidates = vec![format!("{name}/-/{file}")];
    if let Some((scope, _)) = name.split_once('/')
        && !file.contains('/')
    {
        candidates.push(format!("{name}/-/{scope}/{file}"));
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(repo: &str, name: &str) -> NpmTarget {
        NpmTarget::Package {
            repo: repo.to_string(),
            name: name.to_string(),
        }
    }

    #[test]
    fn scoped_names_arrive_escaped_or_not() {
        for raw in [
            "/artifactory/api/npm/npm-local/@acme%2fcamera-agent",
            "/artifactory/api/npm/npm-local/@acme%2Fcamera-agent",
            "/artifactory/api/npm/npm-local/@acme/camera-agent",
            "/artifactory/api/npm/npm-local/%40acme%2fcamera-agent",
        ] {
            assert_eq!(
                parse_npm_path(raw).expect(raw),
                package("npm-local", "@acme/camera-agent")
            );
        }
        assert_eq!(
            parse_npm_path("/artifactory/api/npm/r/left-pad").expect("plain"),
            package("r", "left-pad")
        );
    }

    #[test]
    fn tarballs_and_endpoints() {
        assert_eq!(
            parse_npm_path("/artifactory/api/npm/r/@a/b/-/@a/b-1.0.0.tgz").expect("scoped"),
            NpmTarget::Tarball {
                repo: "r".into(),
                name: "@a/b".into(),
                file: "@a/b-1.0.0.tgz".into()
            }
        );
        assert_eq!(
            parse_npm_path("/artifactory/api/npm/r/-/whoami").expect("endpoint"),
            NpmTarget::Endpoint {
                repo: "r".into(),
                endpoint: "whoami".into()
            }
        );
        assert_eq!(
            stored_tarball_candidates("@a/b", "b-1.0.0.tgz"),
            vec!["@a/b/-/b-1.0.0.tgz", "@a/b/-/@a/b-1.0.0.tgz"]
        );
        assert_eq!(tarball_path("@a/b", "1.0.0"), "@a/b/-/@a/b-1.0.0.tgz");
        assert_eq!(
            tarball_url("http://h", "r", "@a/b", "1.0.0"),
            "http://h/artifactory/api/npm/r/@a/b/-/@a/b-1.0.0.tgz"
        );
    }

    #[test]
    fn bad_names_and_traversal_are_rejected() {
        for raw in [
            "/artifactory/api/npm/r/..",
            "/artifactory/api/npm/r/%2e%2e",
            "/artifactory/api/npm/r/a%2f..%2fb",
            "/artifactory/api/npm/r/@scope",
            "/artifactory/api/npm/r/.hidden",
            "/artifactory/api/npm/r/a b",
            "/artifactory/api/npm/r/a/-/..%2f..%2fx.tgz",
            "/artifactory/api/npm/r/a/-/x.tar",
            "/artifactory/api/npm/r/@a/b/-/@c/b-1.tgz",
        ] {
            assert!(parse_npm_path(raw).is_err(), "{raw}");
        }
    }
}
