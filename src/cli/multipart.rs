//! The multipart-deploy flags, shared by `worker` and `publish PATH`.

use clap::Args;

use crate::registry::{DEFAULT_MULTIPART_CONCURRENCY, MultipartSettings};

const MIB: u64 = 1024 * 1024;

/// When large files are deployed to Artifactory in parts (as JFrog CLI does), where the registry
/// says it supports it (Artifactory 7.82.2+ on cloud storage).
#[derive(Debug, Clone, Args)]
pub struct MultipartArgs {
    /// Files at least this large are deployed in parts when the registry supports it (e.g. 200MiB).
    #[arg(long, env = "PIPELINE_PUBLISHER_MULTIPART_MIN_SIZE", default_value = "200MiB", value_parser = crate::progress::parse_size)]
    pub multipart_min_size: u64,
    /// Parts of one file sent at once.
    #[arg(long, env = "PIPELINE_PUBLISHER_MULTIPART_CONCURRENCY", default_value_t = DEFAULT_MULTIPART_CONCURRENCY as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub multipart_concurrency: u16,
    /// Size of each part, in whole MiB from 5MiB to 5GiB (e.g. 20MiB).
    #[arg(long, env = "PIPELINE_PUBLISHER_MULTIPART_PART_SIZE", default_value = "20MiB", value_parser = part_size)]
    pub multipart_part_size: u64,
}

impl MultipartArgs {
    pub fn settings(&self) -> MultipartSettings {
        MultipartSettings {
            min_size: self.multipart_min_size,
            concurrency: usize::from(self.multipart_concurrency),
            part_size: self.multipart_part_size,
        }
    }
}

/// A part size the API can express (whole MB) and cloud stores take (5 MiB to 5 GiB a part).
#[derive(Debug, thiserror::Error)]
pub(crate) enum PartSizeError {
    #[error(transparent)]
    NotASize(#[from] crate::progress::SizeError),
    #[error("`{0}`: a part is whole MiB from 5MiB to 5GiB (e.g. 20MiB)")]
    OutOfRange(String),
}

fn part_size(value: &str) -> Result<u64, PartSizeError> {
    let size = crate::progress::parse_size(value)?;
    if size % MIB != 0 || !(5 * MIB..=5 * 1024 * MIB).contains(&size) {
        return Err(PartSizeError::OutOfRange(value.to_owned()));
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_defaults_are_the_clients_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Flags {
            #[command(flatten)]
            multipart: MultipartArgs,
        }
        let flags = Flags::try_parse_from(["test"]).unwrap();
        assert_eq!(flags.multipart.settings(), MultipartSettings::default());
    }

    #[test]
    fn part_sizes_are_whole_mib_within_the_cloud_stores_limits() {
        assert_eq!(part_size("20MiB").unwrap(), 20 * MIB);
        assert_eq!(part_size("5m").unwrap(), 5 * MIB);
        assert!(part_size("4MiB").is_err());
        assert!(part_size("20.5MiB").is_err());
        assert!(part_size("6GiB").is_err());
        assert!(part_size("lots").is_err());
    }
}
