//! Reader for the IDX format (the MNIST file format), raw or gzip-compressed.
//!
//! Layout: two zero bytes, a type code, the number of dimensions, one big-endian `u32` per
//! dimension, then the elements in row-major order. Only unsigned bytes (type `0x08`) are
//! supported, which is all MNIST-style datasets use.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const TYPE_U8: u8 = 0x08;

/// An IDX array of unsigned bytes: its shape and its elements in row-major order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// The size of each dimension, outermost first.
    pub dims: Vec<usize>,
    /// The elements, row-major; `data.len()` is the product of `dims`.
    pub data: Vec<u8>,
}

/// Everything that can go wrong loading a dataset; every message names the file involved.
#[derive(Debug)]
pub enum DataError {
    /// The file could not be read (missing, unreadable, ...).
    Io {
        /// The file that failed.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// None of the accepted names of a required dataset file exists in the directory.
    MissingFile {
        /// The directory searched.
        dir: PathBuf,
        /// The file names tried, in order of preference.
        candidates: Vec<String>,
    },
    /// The file starts like gzip but does not decompress.
    Gzip {
        /// The file that failed.
        file: String,
        /// The decompression error.
        error: std::io::Error,
    },
    /// The first two bytes are not zero, so this is not an IDX file.
    BadMagic {
        /// The file that failed.
        file: String,
        /// The first (up to four) bytes found.
        found: Vec<u8>,
    },
    /// The element type code is not `0x08` (unsigned byte).
    UnsupportedType {
        /// The file that failed.
        file: String,
        /// The type code found in the header.
        code: u8,
    },
    /// The file ends inside the header.
    HeaderTruncated {
        /// The file that failed.
        file: String,
        /// Header length implied by what was read so far.
        expected: usize,
        /// Bytes available.
        found: usize,
    },
    /// The product of the dimensions does not fit in `usize`.
    DimsOverflow {
        /// The file that failed.
        file: String,
        /// The dimensions declared in the header.
        dims: Vec<usize>,
    },
    /// The file has fewer data bytes than the dimensions require.
    DataTruncated {
        /// The file that failed.
        file: String,
        /// The dimensions declared in the header.
        dims: Vec<usize>,
        /// Data bytes required by the dimensions.
        expected: usize,
        /// Data bytes present.
        found: usize,
    },
    /// The file has more data bytes than the dimensions account for.
    TrailingBytes {
        /// The file that failed.
        file: String,
        /// The dimensions declared in the header.
        dims: Vec<usize>,
        /// Data bytes required by the dimensions.
        expected: usize,
        /// Data bytes present.
        found: usize,
    },
    /// The array does not have the shape the dataset requires.
    BadShape {
        /// The file that failed.
        file: String,
        /// A description of the required shape.
        expected: String,
        /// The dimensions found.
        dims: Vec<usize>,
    },
    /// An images file and its labels file disagree on the number of samples.
    CountMismatch {
        /// The images file.
        images_file: String,
        /// Number of images.
        images: usize,
        /// The labels file.
        labels_file: String,
        /// Number of labels.
        labels: usize,
    },
    /// A pixel normalization that would divide by zero or produce NaN.
    BadNormalization {
        /// Its mean.
        mean: f64,
        /// Its standard deviation.
        std: f64,
    },
    /// A label is outside `0..num_classes`.
    BadLabel {
        /// The labels file.
        file: String,
        /// Position of the offending label.
        index: usize,
        /// The offending value.
        value: u8,
        /// The number of classes (labels must be smaller).
        num_classes: usize,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::Io { path, error } => {
                write!(f, "{}: cannot read file: {error}", path.display())
            }
            DataError::MissingFile { dir, candidates } => write!(
                f,
                "{}: missing dataset file: none of {} exists",
                dir.display(),
                candidates.join(", ")
            ),
            DataError::Gzip { file, error } => {
                write!(f, "{file}: corrupt gzip stream: {error}")
            }
            DataError::BadMagic { file, found } => write!(
                f,
                "{file}: bad magic number: found bytes [{}], expected [00 00 <type> <ndims>] \
                 (not an IDX file)",
                hex(found)
            ),
            DataError::UnsupportedType { file, code } => write!(
                f,
                "{file}: unsupported IDX type code 0x{code:02x}; only 0x08 (unsigned byte) is \
                 supported"
            ),
            DataError::HeaderTruncated {
                file,
                expected,
                found,
            } => write!(
                f,
                "{file}: header truncated: expected at least {expected} bytes, found {found}"
            ),
            DataError::DimsOverflow { file, dims } => write!(
                f,
                "{file}: dimensions {dims:?} overflow: their product does not fit in usize"
            ),
            DataError::DataTruncated {
                file,
                dims,
                expected,
                found,
            } => write!(
                f,
                "{file}: data truncated: dimensions {dims:?} require {expected} bytes, \
                 found {found}"
            ),
            DataError::TrailingBytes {
                file,
                dims,
                expected,
                found,
            } => write!(
                f,
                "{file}: {} trailing bytes: dimensions {dims:?} require {expected} bytes, \
                 found {found}",
                found - expected
            ),
            DataError::BadShape {
                file,
                expected,
                dims,
            } => {
                write!(f, "{file}: bad shape {dims:?}: expected {expected}")
            }
            DataError::CountMismatch {
                images_file,
                images,
                labels_file,
                labels,
            } => write!(
                f,
                "sample count mismatch: {images_file} has {images} images but {labels_file} \
                 has {labels} labels"
            ),
            DataError::BadNormalization { mean, std } => write!(
                f,
                "pixel normalization with mean {mean} and std {std}: the mean must be finite \
                 and the std finite and positive"
            ),
            DataError::BadLabel {
                file,
                index,
                value,
                num_classes,
            } => write!(
                f,
                "{file}: label at index {index} is {value}, expected a class below {num_classes}"
            ),
        }
    }
}

impl std::error::Error for DataError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataError::Io { error, .. } | DataError::Gzip { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(" ")
}

/// Reads an IDX file from disk, decompressing it first if it is gzip (detected by content).
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let bytes = std::fs::read(path).map_err(|error| DataError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    parse_idx(&bytes, &path.display().to_string())
}

/// Parses an in-memory IDX buffer, raw or gzip; `source` names the data in error messages.
///
/// ```
/// use convergent_l2o::problems::data::parse_idx;
///
/// // Type 0x08 (u8), two dimensions: 2 x 3.
/// let mut bytes = vec![0, 0, 0x08, 2];
/// bytes.extend_from_slice(&2u32.to_be_bytes());
/// bytes.extend_from_slice(&3u32.to_be_bytes());
/// bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
///
/// let array = parse_idx(&bytes, "tiny").unwrap();
/// assert_eq!(array.dims, vec![2, 3]);
/// assert_eq!(array.data, vec![1, 2, 3, 4, 5, 6]);
///
/// let err = parse_idx(&bytes[..bytes.len() - 1], "tiny").unwrap_err();
/// assert!(err.to_string().contains("tiny: data truncated"));
/// ```
pub fn parse_idx(bytes: &[u8], source: &str) -> Result<IdxArray, DataError> {
    if bytes.starts_with(&GZIP_MAGIC) {
        let raw = decompress_bounded(bytes).map_err(|error| DataError::Gzip {
            file: source.to_string(),
            error,
        })?;
        parse_raw(&raw, source)
    } else {
        parse_raw(bytes, source)
    }
}

/// Decompresses a gzip IDX file, reading no more than its header declares (plus one byte, so
/// trailing data is still detected): a small file that inflates to gigabytes costs nothing.
fn decompress_bounded(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = MultiGzDecoder::new(bytes);
    let mut raw = Vec::new();
    (&mut stream).take(4).read_to_end(&mut raw)?;
    if raw.len() < 4 || raw[0] != 0 || raw[1] != 0 {
        return Ok(raw); // parse_raw names the problem
    }
    let ndims = raw[3] as u64;
    (&mut stream).take(4 * ndims).read_to_end(&mut raw)?;
    if raw.len() as u64 != 4 + 4 * ndims {
        return Ok(raw);
    }
    let declared = raw[4..]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64)
        .try_fold(1u64, |acc, d| acc.checked_mul(d));
    match declared {
        // An overflowing header is reported by parse_raw without reading the data.
        None => Ok(raw),
        Some(n) => {
            (&mut stream)
                .take(n.saturating_add(1))
                .read_to_end(&mut raw)?;
            Ok(raw)
        }
    }
}

fn parse_raw(bytes: &[u8], source: &str) -> Result<IdxArray, DataError> {
    let file = || source.to_string();
    // Check the magic before the length so that a short non-IDX file reports "bad magic".
    let prefix = &bytes[..bytes.len().min(4)];
    if prefix.iter().take(2).any(|&b| b != 0) {
        return Err(DataError::BadMagic {
            file: file(),
            found: prefix.to_vec(),
        });
    }
    if bytes.len() < 4 {
        return Err(DataError::HeaderTruncated {
            file: file(),
            expected: 4,
            found: bytes.len(),
        });
    }
    if bytes[2] != TYPE_U8 {
        return Err(DataError::UnsupportedType {
            file: file(),
            code: bytes[2],
        });
    }
    let ndims = bytes[3] as usize;
    let header_len = 4 + 4 * ndims;
    if bytes.len() < header_len {
        return Err(DataError::HeaderTruncated {
            file: file(),
            expected: header_len,
            found: bytes.len(),
        });
    }
    let dims: Vec<usize> = bytes[4..header_len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    // A zero dimension makes the array empty even if the other factors would overflow.
    let product = if dims.contains(&0) {
        Some(0)
    } else {
        dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    };
    let Some(expected) = product else {
        return Err(DataError::DimsOverflow { file: file(), dims });
    };
    let found = bytes.len() - header_len;
    if found < expected {
        return Err(DataError::DataTruncated {
            file: file(),
            dims,
            expected,
            found,
        });
    }
    if found > expected {
        return Err(DataError::TrailingBytes {
            file: file(),
            dims,
            expected,
            found,
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header_len..].to_vec(),
    })
}
