//! The three checksums Artifactory records for every file, computed in one pass.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Lower-case hex md5, sha1 and sha256 of a file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checksums {
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
}

/// Feeds bytes to all three hashes as they stream past, so no file is ever read twice.
#[derive(Default)]
pub struct MultiHasher {
    md5: Md5,
    sha1: Sha1,
    sha256: Sha256,
}

impl MultiHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.md5.update(bytes);
        self.sha1.update(bytes);
        self.sha256.update(bytes);
    }

    pub fn finish(self) -> Checksums {
        Checksums {
            md5: hex::encode(self.md5.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            sha256: hex::encode(self.sha256.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_of_abc() {
        let mut hasher = MultiHasher::new();
        hasher.update(b"a");
        hasher.update(b"bc");
        let checksums = hasher.finish();
        assert_eq!(checksums.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(checksums.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            checksums.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
