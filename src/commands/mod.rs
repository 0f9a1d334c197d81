//! The one-shot commands: `publish PATH` (a job without CodePipeline) and `check` (a doctor
//! for the set-up).

pub mod check;
pub mod check_login;
pub mod check_registry;
pub mod checklist;
pub mod errors;
pub mod local_files;
pub mod publish;
pub mod settings;
pub mod summary;
