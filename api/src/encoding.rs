//! Content coding of what the node sends: gzip where the client accepts it.
//! The pages' files are compressed once at the best level; large GraphQL
//! answers (a vie scolaire's pending justifications, a class's gradebook:
//! tens of kilobytes of repetitive JSON, over a phone's network) per request
//! at the fastest level, which keeps most of the gain for a fraction of the CPU.

use flate2::{write::GzEncoder, Compression};
use std::io::Write as _;

/// GraphQL answers below this many bytes are sent as they are: the gzip
/// header and the CPU are not worth it for a small answer.
pub const GZIP_ANSWERS_FROM: usize = 4096;

/// `bytes` gzipped at `level` (0-9); empty if the encoder failed, which
/// callers take as "send the plain bytes".
pub fn gzip(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        Compression::new(level.min(9)),
    );
    encoder
        .write_all(bytes)
        .and_then(|()| encoder.finish())
        .unwrap_or_default()
}

/// Whether an `Accept-Encoding` value accepts gzip (not with `q=0`).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|value| {
        value.split(',').any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn gzip_round_trips_and_accept_encoding_is_read_with_its_weights() {
        let text = "{\"data\":{\"pendingJustifications\":[]}}".repeat(200);
        let packed = gzip(text.as_bytes(), 1);
        assert!(packed.len() < text.len() / 10);
        let mut unpacked = String::new();
        let read = flate2::read::GzDecoder::new(packed.as_slice()).read_to_string(&mut unpacked);
        assert!(read.is_ok(), "{read:?}");
        assert_eq!(unpacked, text);
        assert!(!accepts_gzip(Some("br, gzip;q=0")));
        assert!(accepts_gzip(Some("GZIP;q=0.5")));
        assert!(accepts_gzip(Some("deflate, gzip")));
        assert!(!accepts_gzip(None));
    }
}
