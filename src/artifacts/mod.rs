//! Input artifacts: download with the job's credentials, extract safely, hash in the same pass.

pub mod download;
pub mod extract;
pub mod ranged;
pub mod upload;

pub use download::{ArtifactStore, DownloadError};
pub use extract::{ExtractError, ExtractLimits, ExtractedFile, extract_zip};
pub use ranged::{CredentialSource, DownloadSettings};
pub use upload::UploadError;
