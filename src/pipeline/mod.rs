//! The CodePipeline side of a job: its model, its typed configuration, the job API (as a trait
//! and over the AWS SDK), and how failures are classified and told.

pub mod authentication;
pub mod aws;
pub mod config;
pub mod control_plane;
pub mod failure;
pub mod job;
pub mod paths;
pub mod properties;
pub mod sources;
pub mod versions;
pub mod wake;

pub use control_plane::{Acknowledgement, JobApi, JobApiError, JobSuccess};
pub use failure::{Classify, FailureType, JobFailure};
pub use job::{ActionTypeId, Job, JobData};
pub use versions::PollVersions;
