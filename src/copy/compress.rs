//! Compression as a streaming stage of the blob pipeline: gzip and zstd,
//! compress, decompress, recompress — chunk by chunk, never a second pass.
//!
//! gzip uses zlib-rs through flate2's raw deflate, and decides per chunk:
//! chunks whose bytes look random (Shannon entropy close to 8 bits/byte:
//! already-compressed or encrypted data) are written as stored blocks instead
//! of being deflated. Deflating such data costs ~10 ms/MiB at any level and gains
//! nothing; storing runs at memory speed. Everything else is deflated at the
//! chosen level (default 1: on two cores zlib-rs level 1 outruns skopeo's
//! parallel level-6 pgzip on every kind of data, at a slightly larger size).

pub use crate::compression::{Compression, DEFAULT_GZIP_LEVEL, DEFAULT_ZSTD_LEVEL};
use crate::transport::{BlobStream, TransportError};
use bytes::Bytes;
use flate2::{Compress, FlushCompress, Status};
use futures::StreamExt;
use std::io::Write as _;

/// Entropy (bits per byte) above which a chunk is stored, not deflated.
const STORE_ABOVE_BITS: f64 = 7.9;

fn looks_random(data: &[u8]) -> bool {
    if data.len() < 4096 {
        return false;
    }
    let mut counts = [0u32; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    let bits: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum();
    bits > STORE_ABOVE_BITS
}

/// Streaming gzip writer over raw deflate. Random-looking chunks bypass the
/// compressor as stored blocks written here: the compressor is first synced
/// to a byte boundary, and reset afterwards so that none of its later
/// back-references can reach into bytes it did not see.
struct GzipEncoder {
    deflate: Compress,
    crc: flate2::Crc,
    level: u32,
    /// The compressor holds input not yet flushed.
    dirty: bool,
    /// Stored blocks were written since the compressor last ran.
    needs_reset: bool,
    header_done: bool,
}

impl GzipEncoder {
    fn new(level: i32) -> Self {
        let level = level.clamp(0, 9) as u32;
        GzipEncoder {
            deflate: Compress::new(flate2::Compression::new(level), false),
            crc: flate2::Crc::new(),
            level,
            dirty: false,
            needs_reset: false,
            header_done: false,
        }
    }

    /// Feed `input` with `flush`, appending output, until all is consumed and flushed.
    fn run(&mut self, mut input: &[u8], flush: FlushCompress, out: &mut Vec<u8>) -> std::io::Result<()> {
        loop {
            out.reserve(input.len() / 2 + 64 * 1024);
            let before = self.deflate.total_in();
            let status = self
                .deflate
                .compress_vec(input, out, flush)
                .map_err(std::io::Error::other)?;
            input = &input[(self.deflate.total_in() - before) as usize..];
            let room_left = out.len() < out.capacity();
            match status {
                Status::StreamEnd => return Ok(()),
                _ if flush == FlushCompress::Finish => {}
                _ if input.is_empty() && room_left => return Ok(()),
                _ => {}
            }
        }
    }

    fn chunk(&mut self, data: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
        if !self.header_done {
            out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
            self.header_done = true;
        }
        self.crc.update(data);
        if self.level > 0 && looks_random(data) {
            if self.dirty {
                self.run(&[], FlushCompress::Sync, out)?;
                self.dirty = false;
            }
            for block in data.chunks(65535) {
                let len = block.len() as u16;
                out.push(0); // BFINAL=0, BTYPE=00 (stored), then byte-aligned LEN/NLEN
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&(!len).to_le_bytes());
                out.extend_from_slice(block);
            }
            self.needs_reset = true;
            return Ok(());
        }
        if self.needs_reset {
            self.deflate.reset();
            self.needs_reset = false;
        }
        self.dirty = true;
        self.run(data, FlushCompress::None, out)
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> std::io::Result<()> {
        if !self.header_done {
            self.chunk(&[], out)?;
        }
        if self.needs_reset {
            self.deflate.reset();
        }
        self.run(&[], FlushCompress::Finish, out)?;
        out.extend_from_slice(&self.crc.sum().to_le_bytes());
        out.extend_from_slice(&self.crc.amount().to_le_bytes());
        Ok(())
    }
}

/// One step of a transcoding pipeline.
enum Stage {
    Gunzip(flate2::write::MultiGzDecoder<Vec<u8>>),
    Unzstd(zstd::stream::write::Decoder<'static, Vec<u8>>),
    Gzip(GzipEncoder, Vec<u8>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Stage {
    fn push(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Stage::Gunzip(d) => {
                d.write_all(data)?;
                Ok(std::mem::take(d.get_mut()))
            }
            Stage::Unzstd(d) => {
                d.write_all(data)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Stage::Gzip(e, buf) => {
                e.chunk(data, buf)?;
                Ok(std::mem::take(buf))
            }
            Stage::Zstd(e) => {
                e.write_all(data)?;
                Ok(std::mem::take(e.get_mut()))
            }
        }
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Stage::Gunzip(d) => d.finish(),
            Stage::Unzstd(mut d) => {
                d.flush()?;
                Ok(d.into_inner())
            }
            Stage::Gzip(mut e, mut buf) => {
                e.finish(&mut buf)?;
                Ok(buf)
            }
            Stage::Zstd(e) => e.finish(),
        }
    }
}

/// Turn a stream compressed with `from` into one compressed with `to`
/// (`level` for the compressor; its default when `None`).
pub fn transcode(
    input: BlobStream,
    from: Compression,
    to: Compression,
    level: Option<i32>,
) -> Result<BlobStream, TransportError> {
    if from == to {
        return Ok(input);
    }
    let io = TransportError::Codec;
    let mut stages = vec![];
    match from {
        Compression::None => {}
        Compression::Gzip => stages.push(Stage::Gunzip(flate2::write::MultiGzDecoder::new(Vec::new()))),
        Compression::Zstd => stages.push(Stage::Unzstd(
            zstd::stream::write::Decoder::new(Vec::new()).map_err(io)?,
        )),
    }
    match to {
        Compression::None => {}
        Compression::Gzip => stages.push(Stage::Gzip(
            GzipEncoder::new(level.unwrap_or(DEFAULT_GZIP_LEVEL)),
            Vec::new(),
        )),
        Compression::Zstd => {
            let e = zstd::stream::write::Encoder::new(Vec::new(), level.unwrap_or(DEFAULT_ZSTD_LEVEL)).map_err(io)?;
            stages.push(Stage::Zstd(e));
        }
    }
    struct St {
        input: BlobStream,
        stages: Option<Vec<Stage>>,
    }
    let st = St {
        input,
        stages: Some(stages),
    };
    Ok(futures::stream::unfold(st, move |mut st| async move {
        loop {
            let stages = st.stages.as_mut()?;
            match st.input.next().await {
                Some(Ok(chunk)) => {
                    let mut data = chunk.to_vec();
                    for s in stages.iter_mut() {
                        match s.push(&data) {
                            Ok(d) => data = d,
                            Err(e) => {
                                st.stages = None;
                                return Some((Err(io(e)), st));
                            }
                        }
                    }
                    if !data.is_empty() {
                        return Some((Ok(Bytes::from(data)), st));
                    }
                }
                Some(Err(e)) => {
                    st.stages = None;
                    return Some((Err(e), st));
                }
                None => {
                    // Flush each stage and feed its tail through the later ones.
                    let stages = st.stages.take()?;
                    let mut tail: Vec<u8> = Vec::new();
                    let mut rest: Vec<Stage> = stages;
                    let mut out = Vec::new();
                    while !rest.is_empty() {
                        let mut s = rest.remove(0);
                        let result = (|| {
                            let mut d = s.push(&tail)?;
                            d.extend(s.finish()?);
                            Ok::<_, std::io::Error>(d)
                        })();
                        match result {
                            Ok(d) => tail = d,
                            Err(e) => return Some((Err(io(e)), st)),
                        }
                    }
                    out.extend(tail);
                    if out.is_empty() {
                        return None;
                    }
                    return Some((Ok(Bytes::from(out)), st));
                }
            }
        }
    })
    .boxed())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    fn run(data: &[u8], from: Compression, to: Compression, chunk: usize) -> Vec<u8> {
        let chunks: Vec<Result<Bytes, TransportError>> =
            data.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let s = transcode(futures::stream::iter(chunks).boxed(), from, to, None).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(s.map(|c| c.unwrap().to_vec()).concat())
    }

    fn sample() -> Vec<u8> {
        let mut x: u64 = 7;
        let mut v: Vec<u8> = (0..300_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        v.extend(b"compressible text, compressible text, compressible text\n".repeat(5000));
        v
    }

    #[test]
    fn gzip_round_trip_mixes_stored_and_deflated_chunks() {
        let data = sample();
        let gz = run(&data, Compression::None, Compression::Gzip, 65536);
        assert!(gz.len() < data.len(), "the text part compressed");
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert_eq!(run(&gz, Compression::Gzip, Compression::None, 1000), data);
    }

    #[test]
    fn zstd_and_recompression() {
        let data = sample();
        let z = run(&data, Compression::None, Compression::Zstd, 50_000);
        assert_eq!(zstd::decode_all(&z[..]).unwrap(), data);
        let gz = run(&z, Compression::Zstd, Compression::Gzip, 4096);
        assert_eq!(run(&gz, Compression::Gzip, Compression::None, 777), data);
        assert_eq!(Compression::detect(&gz), Compression::Gzip);
        assert_eq!(Compression::detect(&z), Compression::Zstd);
        assert_eq!(run(b"", Compression::None, Compression::Gzip, 10).len(), 20);
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let chunks: Vec<Result<Bytes, TransportError>> = vec![Ok(Bytes::from_static(b"\x1f\x8bnot gzip at all"))];
        let s = transcode(
            futures::stream::iter(chunks).boxed(),
            Compression::Gzip,
            Compression::None,
            None,
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let items: Vec<_> = rt.block_on(s.collect::<Vec<_>>());
        assert!(items.iter().any(|r| r.is_err()));
    }
}
