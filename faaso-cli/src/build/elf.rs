//! Is a file an executable that runs in an image with nothing else in it (`FROM scratch`)?
//!
//! Reads the ELF header and program headers only: an executable that names an interpreter
//! (`PT_INTERP`, the dynamic loader such as `/lib64/ld-linux-x86-64.so.2`) needs a C library
//! that a scratch image does not have, and fails at start with Docker's unhelpful
//! `exec /funko: no such file or directory`. Static and static-PIE executables have none.

/// Why a file cannot run on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotStandalone {
    #[error(
        "is not an ELF executable (a script or a file for another system); the image has no interpreter to run it"
    )]
    NotElf,
    #[error("is a truncated or damaged ELF file")]
    Damaged,
    #[error("is an ELF {0}, not an executable")]
    NotExecutable(&'static str),
    #[error(
        "is dynamically linked (it needs {interpreter} and a C library, which the image does not \
         have); build it static: Rust `RUSTFLAGS=\"-C target-feature=+crt-static\"`, Go \
         `CGO_ENABLED=0`, C with musl"
    )]
    Dynamic { interpreter: String },
}

/// `Ok` when `bytes` is an ELF executable without a program interpreter.
pub fn check_standalone(bytes: &[u8]) -> Result<(), NotStandalone> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(NotStandalone::NotElf);
    }
    let header = Header::parse(bytes).ok_or(NotStandalone::Damaged)?;
    match header.kind {
        2 | 3 => {}
        1 => return Err(NotStandalone::NotExecutable("relocatable object")),
        4 => return Err(NotStandalone::NotExecutable("core dump")),
        _ => return Err(NotStandalone::NotExecutable("file of unknown type")),
    }
    for index in 0..header.ph_count {
        let at = header
            .ph_offset
            .checked_add(
                index
                    .checked_mul(header.ph_size)
                    .ok_or(NotStandalone::Damaged)?,
            )
            .ok_or(NotStandalone::Damaged)?;
        let entry = bytes
            .get(
                at..at
                    .checked_add(header.ph_size)
                    .ok_or(NotStandalone::Damaged)?,
            )
            .ok_or(NotStandalone::Damaged)?;
        const PT_INTERP: u64 = 3;
        if header.read(entry, 0, 4) != Some(PT_INTERP) {
            continue;
        }
        let (offset, size) = if header.wide {
            (header.read(entry, 8, 8), header.read(entry, 32, 8))
        } else {
            (header.read(entry, 4, 4), header.read(entry, 16, 4))
        };
        let interpreter = offset
            .zip(size)
            .and_then(|(offset, size)| {
                let start = usize::try_from(offset).ok()?;
                let end = start.checked_add(usize::try_from(size).ok()?)?;
                bytes.get(start..end)
            })
            .map(|raw| {
                String::from_utf8_lossy(raw)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .unwrap_or_else(|| "a program interpreter".to_string());
        return Err(NotStandalone::Dynamic { interpreter });
    }
    Ok(())
}

/// What the checks need of the ELF header.
struct Header {
    wide: bool,
    little: bool,
    kind: u64,
    ph_offset: usize,
    ph_size: usize,
    ph_count: usize,
}

impl Header {
    fn parse(bytes: &[u8]) -> Option<Header> {
        let wide = match bytes.get(4)? {
            1 => false,
            2 => true,
            _ => return None,
        };
        let little = match bytes.get(5)? {
            1 => true,
            2 => false,
            _ => return None,
        };
        let mut header = Header {
            wide,
            little,
            kind: 0,
            ph_offset: 0,
            ph_size: 0,
            ph_count: 0,
        };
        header.kind = header.read(bytes, 16, 2)?;
        let (offset, size, count) = if wide {
            (header.read(bytes, 0x20, 8)?, 0x36, 0x38)
        } else {
            (header.read(bytes, 0x1c, 4)?, 0x2a, 0x2c)
        };
        header.ph_offset = usize::try_from(offset).ok()?;
        header.ph_size = usize::try_from(header.read(bytes, size, 2)?).ok()?;
        header.ph_count = usize::try_from(header.read(bytes, count, 2)?).ok()?;
        (header.ph_size >= if wide { 56 } else { 32 } || header.ph_count == 0).then_some(header)
    }

    /// An unsigned integer of `width` bytes at `at`, in the file's byte order.
    fn read(&self, bytes: &[u8], at: usize, width: usize) -> Option<u64> {
        let raw = bytes.get(at..at.checked_add(width)?)?;
        let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
        Some(if self.little {
            raw.iter().rev().fold(0, fold)
        } else {
            raw.iter().fold(0, fold)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF executable with the given program header types.
    fn elf64(kind: u16, program_headers: &[(u32, &[u8])]) -> Vec<u8> {
        let mut out = vec![0u8; 64];
        out[..4].copy_from_slice(b"\x7fELF");
        out[4] = 2;
        out[5] = 1;
        out[16..18].copy_from_slice(&kind.to_le_bytes());
        out[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        out[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        out[0x38..0x3a].copy_from_slice(&(program_headers.len() as u16).to_le_bytes());
        let data_start = 64 + 56 * program_headers.len();
        let mut data = Vec::new();
        for (p_type, payload) in program_headers {
            let mut entry = vec![0u8; 56];
            entry[..4].copy_from_slice(&p_type.to_le_bytes());
            let offset = (data_start + data.len()) as u64;
            entry[8..16].copy_from_slice(&offset.to_le_bytes());
            entry[32..40].copy_from_slice(&(payload.len() as u64).to_le_bytes());
            out.extend_from_slice(&entry);
            data.extend_from_slice(payload);
        }
        out.extend_from_slice(&data);
        out
    }

    #[test]
    fn static_executables_pass() {
        assert_eq!(check_standalone(&elf64(2, &[(1, b"")])), Ok(()));
        // Static PIE: a shared-object type without an interpreter.
        assert_eq!(check_standalone(&elf64(3, &[(1, b""), (2, b"")])), Ok(()));
    }

    #[test]
    fn dynamic_executables_name_their_loader() {
        let elf = elf64(
            3,
            &[(6, b""), (3, b"/lib64/ld-linux-x86-64.so.2\0"), (1, b"")],
        );
        assert_eq!(
            check_standalone(&elf),
            Err(NotStandalone::Dynamic {
                interpreter: "/lib64/ld-linux-x86-64.so.2".to_string()
            })
        );
    }

    #[test]
    fn other_files_are_refused_without_panic() {
        assert_eq!(
            check_standalone(b"#!/bin/sh\necho hi\n"),
            Err(NotStandalone::NotElf)
        );
        assert_eq!(check_standalone(b""), Err(NotStandalone::NotElf));
        assert_eq!(
            check_standalone(b"\x7fELF\x02\x01"),
            Err(NotStandalone::Damaged)
        );
        assert!(matches!(
            check_standalone(&elf64(1, &[])),
            Err(NotStandalone::NotExecutable(_))
        ));
        let mut cut = elf64(2, &[(3, b"/lib/ld.so\0")]);
        cut.truncate(100);
        assert_eq!(check_standalone(&cut), Err(NotStandalone::Damaged));
        // Random prefixes of a real header never panic.
        let full = elf64(3, &[(3, b"/lib/ld.so\0")]);
        for len in 0..full.len() {
            let _ = check_standalone(&full[..len]);
        }
    }

    #[test]
    fn the_executable_running_this_test_is_judged_correctly() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let result = check_standalone(&me);
        let linked_statically = cfg!(target_feature = "crt-static");
        assert_eq!(result.is_ok(), linked_statically, "{result:?}");
    }
}
