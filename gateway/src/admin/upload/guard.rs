//! A guard between the decompressor and the tar reader, so that what the tar reader loads
//! into memory stays bounded whatever an archive declares.
//!
//! The tar crate reads GNU long-name and long-link data and PAX extension headers whole into
//! memory, before any entry reaches our checks; a 1 MB `.tar.gz` can declare a 1 GiB long
//! name made of compressed zeros. The guard follows the tar stream itself (512-byte header
//! blocks, then each entry's data rounded up to 512 bytes) and fails the read as soon as:
//! - the decompressed stream passes its cap (the unpacked-size limit plus room for headers);
//! - an extension header (`L`, `K`, `x`, `g`) declares more than [`MAX_EXTENSION`] bytes;
//! - a PAX header carries a `size` record (the guard would lose its place in the stream, and no
//!   file needing one fits the limits anyway).
//!
//! The failure is kept in a [`Violation`] cell so the caller can report it precisely (413 or
//! 400) rather than as the tar crate's wrapped I/O error.

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

use super::UploadError;

/// Largest extension header accepted (a long name, a long link target, PAX records).
pub const MAX_EXTENSION: u64 = 64 * 1024;

const BLOCK: usize = 512;

/// Where a guard records why it stopped the stream.
pub type Violation = Rc<RefCell<Option<UploadError>>>;

/// Follows a decompressed tar stream; see the module documentation.
pub struct TarGuard<R> {
    inner: R,
    /// Bytes of the current header block received so far.
    header: [u8; BLOCK],
    filled: usize,
    /// Data (and padding) bytes of the current entry still to pass.
    remaining: u64,
    /// When the current entry is a PAX header: its records, kept to look for `size`.
    pax: Option<Vec<u8>>,
    pax_left: u64,
    total: u64,
    cap: u64,
    cap_error: UploadError,
    violation: Violation,
}

impl<R: Read> TarGuard<R> {
    /// Guards `inner`, allowing at most `cap` decompressed bytes (`cap_error` beyond that).
    pub fn new(inner: R, cap: u64, cap_error: UploadError, violation: Violation) -> Self {
        TarGuard {
            inner,
            header: [0; BLOCK],
            filled: 0,
            remaining: 0,
            pax: None,
            pax_left: 0,
            total: 0,
            cap,
            cap_error,
            violation,
        }
    }

    fn stop(&self, error: UploadError) -> std::io::Error {
        let message = error.to_string();
        *self.violation.borrow_mut() = Some(error);
        std::io::Error::other(message)
    }

    /// Follows `bytes` through the tar structure.
    fn follow(&mut self, mut bytes: &[u8]) -> Result<(), UploadError> {
        while !bytes.is_empty() {
            if self.remaining > 0 {
                let take = (self.remaining.min(bytes.len() as u64)) as usize;
                if let Some(pax) = &mut self.pax {
                    let keep = (self.pax_left.min(take as u64)) as usize;
                    pax.extend_from_slice(&bytes[..keep]);
                    self.pax_left -= keep as u64;
                }
                self.remaining -= take as u64;
                bytes = &bytes[take..];
                if self.remaining == 0
                    && let Some(pax) = self.pax.take()
                {
                    check_pax(&pax)?;
                }
                continue;
            }
            let take = (BLOCK - self.filled).min(bytes.len());
            self.header[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
            self.filled += take;
            bytes = &bytes[take..];
            if self.filled == BLOCK {
                self.filled = 0;
                self.start_entry()?;
            }
        }
        Ok(())
    }

    /// A complete header block: what follows it.
    fn start_entry(&mut self) -> Result<(), UploadError> {
        if self.header.iter().all(|b| *b == 0) {
            // End-of-archive blocks.
            return Ok(());
        }
        let size = header_size(&self.header)
            .ok_or_else(|| UploadError::Malformed("unreadable size in a tar header".into()))?;
        let kind = self.header[156];
        if matches!(kind, b'L' | b'K' | b'x' | b'g') && size > MAX_EXTENSION {
            return Err(UploadError::Unsafe {
                path: String::from_utf8_lossy(name_field(&self.header)).into_owned(),
                reason: format!(
                    "an extension header of {size} bytes (at most {MAX_EXTENSION} accepted)"
                ),
            });
        }
        if kind == b'x' {
            self.pax = Some(Vec::with_capacity(size as usize));
            self.pax_left = size;
        }
        self.remaining = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        if self.remaining == 0
            && let Some(pax) = self.pax.take()
        {
            check_pax(&pax)?;
        }
        Ok(())
    }
}

impl<R: Read> Read for TarGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if let Some(error) = self.violation.borrow().as_ref() {
            return Err(std::io::Error::other(error.to_string()));
        }
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if self.total > self.cap {
            return Err(self.stop(self.cap_error.clone()));
        }
        if let Err(error) = self.follow(&buf[..n]) {
            return Err(self.stop(error));
        }
        Ok(n)
    }
}

/// Refuses PAX records that would move entry boundaries (`size`).
fn check_pax(records: &[u8]) -> Result<(), UploadError> {
    // Records are "<length> <key>=<value>\n".
    let mut rest = records;
    while let Some(space) = rest.iter().position(|b| *b == b' ') {
        let Some(len) = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|l| l.parse::<usize>().ok())
            .filter(|l| *l > space && *l <= rest.len())
        else {
            return Err(UploadError::Malformed("a malformed PAX record".into()));
        };
        let record = &rest[space + 1..len];
        if record.starts_with(b"size=") {
            return Err(UploadError::Unsafe {
                path: "PAX header".into(),
                reason: "PAX size records are not accepted".into(),
            });
        }
        rest = &rest[len..];
    }
    Ok(())
}

/// The entry's size field: octal text, or base-256 when the first byte's high bit is set.
fn header_size(header: &[u8; BLOCK]) -> Option<u64> {
    let field = &header[124..136];
    if field[0] & 0x80 != 0 {
        let mut value: u64 = 0;
        for (n, byte) in field.iter().enumerate() {
            let byte = if n == 0 { byte & 0x7f } else { *byte };
            value = value.checked_mul(256)?.checked_add(u64::from(byte))?;
        }
        return Some(value);
    }
    let text = std::str::from_utf8(field).ok()?;
    let text = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

fn name_field(header: &[u8; BLOCK]) -> &[u8] {
    let name = &header[..100];
    let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
    &name[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded(data: Vec<u8>, cap: u64) -> (TarGuard<std::io::Cursor<Vec<u8>>>, Violation) {
        let violation = Violation::default();
        let guard = TarGuard::new(
            std::io::Cursor::new(data),
            cap,
            UploadError::UnpackedTooLarge(cap),
            Rc::clone(&violation),
        );
        (guard, violation)
    }

    fn header(kind: u8, size: u64) -> Vec<u8> {
        let mut block = vec![0u8; BLOCK];
        block[..4].copy_from_slice(b"name");
        let size = format!("{size:011o}\0");
        block[124..136].copy_from_slice(size.as_bytes());
        block[156] = kind;
        block
    }

    #[test]
    fn large_extension_headers_are_stopped_at_their_header() {
        for kind in [b'L', b'K', b'x', b'g'] {
            let (mut guard, violation) = guarded(header(kind, 1 << 30), u64::MAX);
            let err = std::io::copy(&mut guard, &mut std::io::sink()).unwrap_err();
            assert!(err.to_string().contains("extension header"), "{err}");
            assert!(matches!(
                violation.borrow().as_ref(),
                Some(UploadError::Unsafe { .. })
            ));
        }
    }

    #[test]
    fn regular_entries_pass_and_the_cap_holds() {
        let mut data = header(b'0', 700);
        data.extend(vec![b'x'; 1024]);
        data.extend(vec![0u8; 1024]);
        let (mut guard, _) = guarded(data.clone(), 10_000);
        assert_eq!(
            std::io::copy(&mut guard, &mut std::io::sink()).unwrap(),
            data.len() as u64
        );
        let (mut guard, violation) = guarded(data, 1000);
        std::io::copy(&mut guard, &mut std::io::sink()).unwrap_err();
        assert_eq!(
            violation.borrow().clone(),
            Some(UploadError::UnpackedTooLarge(1000))
        );
    }

    #[test]
    fn pax_size_records_are_refused() {
        let records = b"20 path=some/file.c\n14 size=12345\n";
        let mut data = header(b'x', records.len() as u64);
        data.extend_from_slice(records);
        data.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
        let (mut guard, _) = guarded(data, u64::MAX);
        let err = std::io::copy(&mut guard, &mut std::io::sink()).unwrap_err();
        assert!(err.to_string().contains("PAX size"), "{err}");
        let records = b"20 path=some/file.c\n";
        let mut data = header(b'x', records.len() as u64);
        data.extend_from_slice(records);
        data.resize(data.len().div_ceil(BLOCK) * BLOCK, 0);
        let (mut guard, _) = guarded(data, u64::MAX);
        std::io::copy(&mut guard, &mut std::io::sink()).unwrap();
    }

    #[test]
    fn sizes_in_both_encodings() {
        let mut block = [0u8; BLOCK];
        block[124..136].copy_from_slice(b"00000001750\0");
        assert_eq!(header_size(&block), Some(1000));
        block[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(header_size(&block), Some(1 << 16));
    }
}
