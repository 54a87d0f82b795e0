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

/// Most bytes a decompressor hands on per step. Input is fed in pieces so
/// that no step produces more, whatever a layer expands to: a hostile gzip
/// stream expands up to 1032:1, a zstd one far more.
const DECODE_STEP: usize = 1 << 20;

/// Input fed to gunzip per call: at deflate's 1032:1 bound, about DECODE_STEP out.
const GUNZIP_PIECE: usize = DECODE_STEP / 1032;

/// The decompressing side of a transcoding pipeline.
enum Decoder {
    Gunzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
    Unzstd {
        raw: zstd::stream::raw::Decoder<'static>,
        /// Some input was fed.
        started: bool,
        /// The last frame is complete (zstd returned 0).
        frame_done: bool,
        /// The last step filled its output: more may be waiting without new input.
        full: bool,
    },
}

impl Decoder {
    fn new(from: Compression) -> std::io::Result<Option<Decoder>> {
        Ok(match from {
            Compression::None => None,
            Compression::Gzip => Some(Decoder::Gunzip(Box::new(
                flate2::write::MultiGzDecoder::new(Vec::new()),
            ))),
            Compression::Zstd => Some(Decoder::Unzstd {
                raw: zstd::stream::raw::Decoder::new()?,
                started: false,
                frame_done: false,
                full: false,
            }),
        })
    }

    /// Output may be waiting even without more input.
    fn has_pending(&self) -> bool {
        matches!(self, Decoder::Unzstd { full: true, .. })
    }

    /// Decode from the front of `input` until about DECODE_STEP bytes are
    /// out or the input is used up; what was consumed is removed from `input`.
    fn step(&mut self, input: &mut Bytes) -> std::io::Result<Vec<u8>> {
        use bytes::Buf as _;
        use zstd::stream::raw::Operation as _;
        match self {
            Decoder::Gunzip(d) => {
                let mut out = Vec::with_capacity(DECODE_STEP + 64 * 1024);
                while !input.is_empty() && out.len() < DECODE_STEP {
                    let n = input.len().min(GUNZIP_PIECE);
                    d.write_all(&input[..n])?;
                    input.advance(n);
                    // Copied out so that the decoder's own buffer keeps its capacity.
                    out.extend_from_slice(d.get_ref());
                    d.get_mut().clear();
                }
                Ok(out)
            }
            Decoder::Unzstd {
                raw,
                started,
                frame_done,
                full,
            } => {
                // Decoded into the spare capacity: nothing is zeroed first.
                let mut out = Vec::with_capacity(DECODE_STEP);
                while out.len() < DECODE_STEP && (!input.is_empty() || *full) {
                    if *frame_done && !input.is_empty() {
                        raw.reinit()?;
                    }
                    *started |= !input.is_empty();
                    let before = out.len();
                    let mut src = zstd::stream::raw::InBuffer::around(&input[..]);
                    let remaining = raw.run(&mut src, &mut zstd::stream::raw::OutBuffer::around(&mut out))?;
                    let (read, wrote) = (src.pos(), out.len() - before);
                    if read == 0 && wrote == 0 && !input.is_empty() {
                        return Err(std::io::Error::other("zstd decoder made no progress"));
                    }
                    input.advance(read);
                    // A call without input after a frame's end hints at the next frame's header.
                    let idle = read == 0 && wrote == 0;
                    *frame_done = remaining == 0 || (*frame_done && idle);
                    *full = out.len() == out.capacity();
                    if input.is_empty() && !*full {
                        break;
                    }
                }
                Ok(out)
            }
        }
    }

    /// The last output, once the input has ended.
    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Gunzip(d) => d.finish(),
            Decoder::Unzstd {
                started, frame_done, ..
            } => {
                if started && !frame_done {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "zstd stream ends in the middle of a frame",
                    ));
                }
                Ok(Vec::new())
            }
        }
    }
}

/// The compressing side of a transcoding pipeline.
enum Encoder {
    Gzip(GzipEncoder, Vec<u8>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Encoder {
    fn new(to: Compression, level: Option<i32>) -> std::io::Result<Option<Encoder>> {
        Ok(match to {
            Compression::None => None,
            Compression::Gzip => Some(Encoder::Gzip(
                GzipEncoder::new(level.unwrap_or(DEFAULT_GZIP_LEVEL)),
                Vec::new(),
            )),
            Compression::Zstd => Some(Encoder::Zstd(zstd::stream::write::Encoder::new(
                Vec::new(),
                level.unwrap_or(DEFAULT_ZSTD_LEVEL),
            )?)),
        })
    }

    fn push(&mut self, data: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e, buf) => {
                e.chunk(data, buf)?;
                Ok(std::mem::take(buf))
            }
            Encoder::Zstd(e) => {
                e.write_all(data)?;
                Ok(std::mem::take(e.get_mut()))
            }
        }
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(mut e, mut buf) => {
                e.finish(&mut buf)?;
                Ok(buf)
            }
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

/// A zstd frame whose window is over the decoder's limit gets a message that says so.
fn codec_error(e: std::io::Error) -> TransportError {
    if e.to_string().contains("requires too much memory") {
        return TransportError::Codec(std::io::Error::other(
            "zstd frame needs a window larger than 128 MiB, more memory than kopeo gives one layer",
        ));
    }
    TransportError::Codec(e)
}

/// Where a transcoding stream is.
struct Transcoding {
    input: BlobStream,
    decoder: Option<Decoder>,
    encoder: Option<Encoder>,
    /// Input not yet fed to the decoder.
    pending: Bytes,
    done: bool,
}

impl Transcoding {
    /// The next output chunk (possibly empty), `None` at the end.
    async fn next(&mut self) -> Option<Result<Vec<u8>, TransportError>> {
        let waiting = !self.pending.is_empty() || self.decoder.as_ref().is_some_and(Decoder::has_pending);
        let decoded = if waiting {
            let Some(d) = self.decoder.as_mut() else {
                return Some(Ok(std::mem::take(&mut self.pending).to_vec()));
            };
            d.step(&mut self.pending)
        } else {
            match self.input.next().await {
                Some(Ok(chunk)) => match self.decoder.as_mut() {
                    None => Ok(chunk.to_vec()),
                    Some(_) => {
                        self.pending = chunk;
                        return Some(Ok(Vec::new()));
                    }
                },
                Some(Err(e)) => return Some(Err(e)),
                None => return self.finish().transpose(),
            }
        };
        Some(
            decoded
                .and_then(|d| match self.encoder.as_mut() {
                    Some(e) => e.push(&d),
                    None => Ok(d),
                })
                .map_err(codec_error),
        )
    }

    /// Flush the decoder, feed its tail through the encoder, flush that.
    fn finish(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        self.done = true;
        let mut tail = match self.decoder.take() {
            Some(d) => d.finish().map_err(codec_error)?,
            None => Vec::new(),
        };
        if let Some(mut e) = self.encoder.take() {
            tail = e.push(&tail).map_err(codec_error)?;
            tail.extend(e.finish().map_err(codec_error)?);
        }
        Ok((!tail.is_empty()).then_some(tail))
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
    let st = Transcoding {
        input,
        decoder: Decoder::new(from).map_err(TransportError::Codec)?,
        encoder: Encoder::new(to, level).map_err(TransportError::Codec)?,
        pending: Bytes::new(),
        done: false,
    };
    Ok(futures::stream::unfold(st, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            match st.next().await? {
                Ok(d) if d.is_empty() => continue,
                Ok(d) => return Some((Ok(Bytes::from(d)), st)),
                Err(e) => {
                    st.done = true;
                    return Some((Err(e), st));
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

    /// Every chunk transcoding `data` yields, fed in 256 KiB chunks.
    fn chunks_of(data: &[u8], from: Compression, to: Compression) -> Vec<Result<Bytes, TransportError>> {
        let chunks: Vec<Result<Bytes, TransportError>> =
            data.chunks(256 * 1024).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let s = transcode(futures::stream::iter(chunks).boxed(), from, to, None).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(s.collect::<Vec<_>>())
    }

    #[test]
    fn a_decompression_bomb_comes_out_in_bounded_chunks() {
        let zeros = vec![0u8; 64 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&zeros).unwrap();
        let gz = gz.finish().unwrap();
        // Two zstd frames back to back, each expanding a few hundred times over.
        let mut z = zstd::encode_all(&zeros[..], 19).unwrap();
        z.extend(zstd::encode_all(&zeros[..1 << 20], 19).unwrap());
        for (name, data, from, expect) in [
            ("gzip", gz, Compression::Gzip, 64 << 20),
            ("zstd", z, Compression::Zstd, 65 << 20),
        ] {
            assert!(data.len() * 100 < expect, "{name}: a bomb, {} bytes", data.len());
            let out = chunks_of(&data, from, Compression::None);
            let sizes: Vec<usize> = out.iter().map(|c| c.as_ref().unwrap().len()).collect();
            assert_eq!(sizes.iter().sum::<usize>(), expect, "{name}");
            let largest = sizes.iter().copied().max().unwrap();
            assert!(largest <= 2 * DECODE_STEP, "{name}: a chunk of {largest} bytes");
            // Recompressing takes the same bounded steps.
            let re = chunks_of(&data, from, Compression::Gzip);
            assert!(
                re.iter().all(|c| c.as_ref().unwrap().len() <= 2 * DECODE_STEP),
                "{name}"
            );
        }
    }

    #[test]
    fn a_zstd_stream_cut_short_is_an_error() {
        let data = sample();
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let out = chunks_of(&z[..z.len() - 10], Compression::Zstd, Compression::None);
        let err = out.iter().find_map(|c| c.as_ref().err()).expect("an error");
        assert!(err.to_string().contains("middle of a frame"), "{err}");
        let whole = chunks_of(&z, Compression::Zstd, Compression::None);
        assert!(whole.iter().all(|c| c.is_ok()));
    }
}
