//! PEM blocks (RFC 7468, with the RFC 1421 headers old OpenSSL keys carry),
//! read leniently: text outside blocks is ignored, as Go's `pem.Decode` does.

use base64::Engine as _;

/// One `-----BEGIN LABEL-----` … `-----END LABEL-----` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub label: String,
    /// `Name: value` header lines (e.g. `Proc-Type: 4,ENCRYPTED`).
    pub headers: Vec<(String, String)>,
    pub der: Vec<u8>,
}

/// Why PEM text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    #[error("PEM block {label:?} is not valid base64")]
    Base64 { label: String },
    #[error("PEM block {label:?} has no END line")]
    Unterminated { label: String },
}

/// Every block in `data`; none when `data` is not text or holds no block.
pub fn blocks(data: &[u8]) -> Result<Vec<Block>, PemError> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    // The block being read, and its base64 text so far.
    let mut open: Option<(Block, String)> = None;
    for line in text.lines().map(str::trim) {
        match &mut open {
            None => {
                if let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) {
                    let block = Block {
                        label: label.to_string(),
                        headers: vec![],
                        der: vec![],
                    };
                    open = Some((block, String::new()));
                }
            }
            Some((block, b64)) => {
                if line.starts_with("-----END ") {
                    block.der = base64::engine::general_purpose::STANDARD
                        .decode(b64.as_bytes())
                        .map_err(|_| PemError::Base64 {
                            label: block.label.clone(),
                        })?;
                    out.extend(open.take().map(|(b, _)| b));
                } else if let Some((k, v)) = line.split_once(':').filter(|_| b64.is_empty()) {
                    block.headers.push((k.trim().to_string(), v.trim().to_string()));
                } else {
                    b64.push_str(line);
                }
            }
        }
    }
    match open {
        Some((block, _)) => Err(PemError::Unterminated { label: block.label }),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_headers_and_surrounding_text() {
        let text = b"junk\n-----BEGIN A-----\nProc-Type: 4,ENCRYPTED\n\nAAEC\n-----END A-----\n-----BEGIN B-----\nAw==\n-----END B-----\n";
        let b = blocks(text).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].label, "A");
        assert_eq!(b[0].headers, vec![("Proc-Type".to_string(), "4,ENCRYPTED".to_string())]);
        assert_eq!(b[0].der, vec![0, 1, 2]);
        assert_eq!(b[1].der, vec![3]);
        assert!(blocks(b"\xff\xfe").unwrap().is_empty());
        assert_eq!(
            blocks(b"-----BEGIN X-----\nAAAA\n").unwrap_err().to_string(),
            "PEM block \"X\" has no END line"
        );
    }
}
