//! Tests that need tools from outside the crate (npm, pip, twine, dpkg-deb, cfn-lint, shellcheck,
//! hadolint, chromium with chromedriver), kept apart from `tests/it` so the core suite links and
//! runs without them.

mod browser_demo;
mod deployment_kit;
mod formats_real_clients;
mod mock_registry_real_clients;
mod mock_registry_real_dpkg;
mod npm_pack_parity;
