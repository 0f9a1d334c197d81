//! Build outputs generated at bench time (never committed): a firmware image shaped like a real
//! one (mostly incompressible payload, erased-flash padding, a table of text) and many small
//! files. Contents are deterministic, so "the same files" really are byte-identical.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

use crate::support::Prng;

pub const IMAGE_NAME: &str = "nestbox-cam-3.0.0.img";

/// One generated zip: what is inside and how big it is.
pub struct GeneratedZip {
    pub image_bytes: u64,
    pub image_sha256: String,
    pub zip_bytes: u64,
}

/// Writes `path`: the firmware image of `image_bytes` (compressed with `method`; deflate at
/// level 1, as fast CI zippers do) plus a manifest and release notes. `variant` changes only
/// the entries' timestamps and order, so two variants are different zips of the same files.
pub fn write_firmware_zip(
    path: &Path,
    image_bytes: u64,
    method: CompressionMethod,
    variant: u8,
) -> anyhow::Result<GeneratedZip> {
    let file = std::fs::File::create(path)?;
    let mut writer = zip::ZipWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
    let when = zip::DateTime::from_date_and_time(2026, 11, 3 + variant, 9, 30, 0)
        .map_err(|error| anyhow::anyhow!("{error}"))?;
    let options = SimpleFileOptions::default()
        .compression_method(method)
        .compression_level(if method == CompressionMethod::Stored {
            None
        } else {
            Some(1)
        })
        .last_modified_time(when);
    let small: [(&str, &[u8]); 2] = [
        (
            "manifest.json",
            br#"{"device":"nestbox-cam","version":"3.0.0","image":"nestbox-cam-3.0.0.img"}"#,
        ),
        (
            "RELEASE-NOTES.md",
            b"# nestbox-cam 3.0.0\n\n- Night mode at 2 lux\n- Faster boot\n",
        ),
    ];
    let write_small = |writer: &mut zip::ZipWriter<_>| -> anyhow::Result<()> {
        for (name, bytes) in small {
            writer.start_file(name, options)?;
            writer.write_all(bytes)?;
        }
        Ok(())
    };
    if variant % 2 == 1 {
        write_small(&mut writer)?;
    }
    writer.start_file(IMAGE_NAME, options)?;
    let mut hasher = Sha256::new();
    let mut generator = Prng(0x5eed_f1a5_c0de);
    let mut block = vec![0u8; 1 << 20];
    let mut written = 0u64;
    let mut index = 0u64;
    while written < image_bytes {
        firmware_block(&mut generator, index, &mut block);
        let take = (image_bytes - written).min(block.len() as u64) as usize;
        hasher.update(&block[..take]);
        writer.write_all(&block[..take])?;
        written += take as u64;
        index += 1;
    }
    if variant.is_multiple_of(2) {
        write_small(&mut writer)?;
    }
    let mut inner = writer.finish()?;
    inner.flush()?;
    drop(inner);
    Ok(GeneratedZip {
        image_bytes,
        image_sha256: hex::encode(hasher.finalize()),
        zip_bytes: std::fs::metadata(path)?.len(),
    })
}

/// One MiB of "firmware": 640 KiB of random payload, 256 KiB of 0xFF erased-flash padding,
/// 128 KiB of a repetitive text table. Deflate at level 1 shrinks it to about 65 %.
fn firmware_block(generator: &mut Prng, index: u64, block: &mut [u8]) {
    let (payload, rest) = block.split_at_mut(640 * 1024);
    generator.fill(payload);
    let (padding, table) = rest.split_at_mut(256 * 1024);
    padding.fill(0xFF);
    let line = format!(
        "sector {index:08x} calibration gain=0.{:04} offset=-{:03}\n",
        index % 9973,
        index % 211
    );
    for (slot, byte) in table.iter_mut().zip(line.bytes().cycle()) {
        *slot = byte;
    }
}

/// `count` small files (0.5–8 KiB, under the 10 KiB checksum-deploy threshold) spread over a
/// few directories, zipped (deflated) in memory.
pub fn small_files_zip(count: usize) -> anyhow::Result<Vec<u8>> {
    let mut generator = Prng(0x000a_9e47);
    let mut files: Vec<(String, Vec<u8>)> = Vec::with_capacity(count);
    for index in 0..count {
        let size = 512 + (generator.next_u64() % (7 * 1024 + 512)) as usize;
        let mut bytes = vec![0u8; size];
        generator.fill(&mut bytes);
        files.push((
            format!(
                "camera-agent/lib/module-{:02}/part-{index:04}.bin",
                index % 20
            ),
            bytes,
        ));
    }
    let entries: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
        .collect();
    pipeline_publisher::demo::zip_entries(&entries)
}
