//! Input artifacts: download with the job's credentials, extract safely, hash in the same pass.

pub mod arrivals;
pub mod download;
pub mod extract;
pub mod follow;
pub mod growing;
pub mod ranged;
pub mod upload;
pub mod zip_fetch;

pub use arrivals::Arrivals;
pub use download::{ArtifactStore, DownloadError};
pub use extract::{
    ExtractError, ExtractLimits, ExtractedFile, ExtractionEvent, extract_zip,
    extract_zip_following, extract_zip_reporting, extract_zip_routed,
};
pub use follow::FollowError;
pub use growing::GrowingFile;
pub use ranged::{CredentialSource, DownloadSettings};
pub use upload::UploadError;
pub use zip_fetch::{FetchedZip, RoutedEntry};
