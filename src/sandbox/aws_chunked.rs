//! A streaming decoder for `Content-Encoding: aws-chunked` request bodies, as aws-sdk-s3
//! sends them with a trailing checksum (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`):
//!
//! ```text
//! <hex size>[;chunk-signature=<sig>]\r\n<size bytes>\r\n ... 0\r\n<name>:<value>\r\n ... \r\n
//! ```
//!
//! Bytes go in as they arrive; decoded data comes out without buffering a whole chunk.

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-header or trailer line accepted (signatures and checksums are short).
const MAX_LINE_BYTES: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Expecting `<hex size>[;extensions]\r\n`.
    ChunkHeader,
    /// Inside a chunk's data with this many bytes left.
    Data(u64),
    /// Expecting the `\r\n` after a chunk's data.
    DataEnd,
    /// After the `0` chunk: `name:value\r\n` lines until an empty line.
    Trailers,
    /// The final empty line was read.
    Done,
}

/// Why an aws-chunked body is refused; the S3 stand-in answers 400 with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AwsChunkedError {
    #[error("bad chunk size line {line:?}")]
    BadChunkSize { line: String },
    #[error("chunk data not followed by CRLF")]
    MissingDataEnd,
    #[error("bad trailer line {line:?}")]
    BadTrailer { line: String },
    #[error("bytes after the final aws-chunked line")]
    TrailingBytes,
    #[error("aws-chunked body ended early ({stage})")]
    EndedEarly { stage: String },
    #[error("aws-chunked line too long")]
    LineTooLong,
    #[error("aws-chunked line is not UTF-8")]
    NotUtf8,
}

/// Decodes aws-chunked framing incrementally.
#[derive(Debug)]
pub(crate) struct AwsChunkedDecoder {
    stage: Stage,
    pending: BytesMut,
    trailers: Vec<(String, String)>,
}

/// One CRLF-terminated line of the chunked framing, without its terminator.
type Line = String;

impl AwsChunkedDecoder {
    pub(crate) fn new() -> Self {
        Self {
            stage: Stage::ChunkHeader,
            pending: BytesMut::new(),
            trailers: Vec::new(),
        }
    }

    /// Feeds the next piece of the encoded body; returns the decoded data it completes.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<Vec<Bytes>, AwsChunkedError> {
        self.pending.extend_from_slice(input);
        let mut decoded = Vec::new();
        loop {
            match self.stage {
                Stage::ChunkHeader => {
                    let Some(line) = self.take_line()? else { break };
                    let size_text = line.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(size_text, 16)
                        .map_err(|_| AwsChunkedError::BadChunkSize { line: line.clone() })?;
                    self.stage = if size == 0 {
                        Stage::Trailers
                    } else {
                        Stage::Data(size)
                    };
                }
                Stage::Data(remaining) => {
                    if self.pending.is_empty() {
                        break;
                    }
                    let available = u64::try_from(self.pending.len()).unwrap_or(u64::MAX);
                    let take = remaining.min(available);
                    // `take` is at most `pending.len()`, which is a usize.
                    let take_bytes = usize::try_from(take).unwrap_or(self.pending.len());
                    decoded.push(self.pending.split_to(take_bytes).freeze());
                    self.stage = if take == remaining {
                        Stage::DataEnd
                    } else {
                        Stage::Data(remaining - take)
                    };
                }
                Stage::DataEnd => {
                    if self.pending.len() < 2 {
                        break;
                    }
                    if &self.pending[..2] != b"\r\n" {
                        return Err(AwsChunkedError::MissingDataEnd);
                    }
                    self.pending.advance(2);
                    self.stage = Stage::ChunkHeader;
                }
                Stage::Trailers => {
                    let Some(line) = self.take_line()? else { break };
                    if line.is_empty() {
                        self.stage = Stage::Done;
                    } else {
                        let (name, value) = line
                            .split_once(':')
                            .ok_or_else(|| AwsChunkedError::BadTrailer { line: line.clone() })?;
                        self.trailers
                            .push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
                    }
                }
                Stage::Done => {
                    if !self.pending.is_empty() {
                        return Err(AwsChunkedError::TrailingBytes);
                    }
                    break;
                }
            }
        }
        Ok(decoded)
    }

    /// Checks that the body ended exactly after its framing; returns the trailers sent
    /// (e.g. `x-amz-checksum-crc32`).
    pub(crate) fn finish(self) -> Result<Vec<(String, String)>, AwsChunkedError> {
        match self.stage {
            Stage::Done => Ok(self.trailers),
            // A body ending right after the zero chunk's trailers without the blank line is
            // tolerated: the data is complete.
            Stage::Trailers if self.pending.is_empty() => Ok(self.trailers),
            stage => Err(AwsChunkedError::EndedEarly {
                stage: format!("{stage:?}"),
            }),
        }
    }

    /// Takes one CRLF-terminated line (without the CRLF) if it is complete.
    fn take_line(&mut self) -> Result<Option<Line>, AwsChunkedError> {
        let Some(end) = self.pending.windows(2).position(|pair| pair == b"\r\n") else {
            if self.pending.len() > MAX_LINE_BYTES {
                return Err(AwsChunkedError::LineTooLong);
            }
            return Ok(None);
        };
        let line = self.pending.split_to(end);
        self.pending.advance(2);
        String::from_utf8(line.to_vec())
            .map(Some)
            .map_err(|_| AwsChunkedError::NotUtf8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(encoded: &[u8], piece: usize) -> (Vec<u8>, Vec<(String, String)>) {
        let mut decoder = AwsChunkedDecoder::new();
        let mut out = Vec::new();
        for part in encoded.chunks(piece) {
            for bytes in decoder.feed(part).unwrap() {
                out.extend_from_slice(&bytes);
            }
        }
        (out, decoder.finish().unwrap())
    }

    #[test]
    fn decodes_trailing_checksum_body_split_anywhere() {
        let encoded =
            b"A\r\n1234567890\r\n5\r\n12345\r\n0\r\nx-amz-checksum-crc32:78DeVw==\r\n\r\n";
        for piece in 1..encoded.len() {
            let (data, trailers) = decode_in_pieces(encoded, piece);
            assert_eq!(data, b"123456789012345");
            assert_eq!(
                trailers,
                [("x-amz-checksum-crc32".to_owned(), "78DeVw==".to_owned())]
            );
        }
    }

    #[test]
    fn decodes_signed_chunks_and_empty_body() {
        let signed = b"3;chunk-signature=abcd\r\nabc\r\n0;chunk-signature=ef01\r\n\r\n";
        assert_eq!(decode_in_pieces(signed, 4).0, b"abc");
        assert_eq!(decode_in_pieces(b"0\r\n\r\n", 2).0, b"");
    }

    #[test]
    fn rejects_truncated_and_malformed_bodies() {
        let mut decoder = AwsChunkedDecoder::new();
        decoder.feed(b"A\r\n12345").unwrap();
        assert!(decoder.finish().is_err());
        assert!(AwsChunkedDecoder::new().feed(b"zz\r\n").is_err());
        assert!(AwsChunkedDecoder::new().feed(b"1\r\nab\r\n").is_err());
    }
}
