//! `demo --serve`: after the jobs end, the stand-ins keep running so a person can open the
//! registry's UI and the pipeline view in a browser; SIGINT (Ctrl-C) or SIGTERM stops them.

use super::LocalEnvironment;
use crate::sandbox::PIPELINES_PATH;

/// The registry UI's home page, as on Artifactory.
pub const REGISTRY_UI_HOME: &str = "/ui/";

/// The two pages to open: (registry UI home, pipeline view).
pub fn urls(environment: &LocalEnvironment) -> (String, String) {
    (
        format!("{}{REGISTRY_UI_HOME}", environment.registry.base_url),
        format!("{}{PIPELINES_PATH}", environment.sandbox.endpoint_url),
    )
}

/// Prints the URLs, serves until a signal arrives, then stops the stand-ins.
pub async fn serve_until_signal(environment: LocalEnvironment) {
    let (registry_ui, pipeline_view) = urls(&environment);
    println!("\nServing until Ctrl-C. Open:");
    println!("  registry UI    {registry_ui}");
    println!("  pipeline view  {pipeline_view}");
    crate::app::shutdown_signal().await;
    let LocalEnvironment {
        sandbox, registry, ..
    } = environment;
    tokio::join!(sandbox.shutdown(), registry.shutdown());
    println!("Stopped the stand-ins.");
}
