//! Self-extracting bundles (`.run`): one file an operator carries to an admin server that has
//! nothing installed. Layout:
//!
//! ```text
//! [0, HEADER_LEN)                    a POSIX sh script, padded with newlines
//! [HEADER_LEN, +installer size)      the installer binary for one architecture, zero-padded
//!                                    to a 4 KiB boundary (direct I/O stays aligned)
//! [bundle offset, +bundle length)    the bundle stream, byte for byte what a .tar.zst holds
//! last TRAILER_LEN bytes             `#koi-run-end <offset> <length>\n`
//! ```
//!
//! `sh bundle.run COMMAND ...` checks the file's length against the trailer and the installer's
//! sha256 against the header before it runs anything, then runs the installer from a private
//! temporary directory with `KOI_BUNDLE` naming the `.run`. Readers find the bundle inside with
//! [`locate`]; the trailer is what tells a complete file from one cut short.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::BundleError;

/// Size of the sh header; the installer starts here.
pub const HEADER_LEN: u64 = 8192;
/// Size of the trailer that ends every `.run`.
pub const TRAILER_LEN: u64 = 55;
/// The second line of every header: how readers recognise a `.run`.
const MAGIC: &str = "# kubespray-offline self-extracting bundle";
const TRAILER_TAG: &str = "#koi-run-end";
/// Where the bundle stream may start: part of the `.run` layout (so fixed, not the running
/// kernel's page size); 4 KiB keeps direct reads aligned on common devices.
const STREAM_ALIGN: u64 = 4096;

/// The installer binary a `.run` carries.
#[derive(Debug, Clone)]
pub struct RunInstaller {
    pub path: std::path::PathBuf,
    /// `uname -m` of the machines it runs on (x86_64, aarch64).
    pub arch: String,
    pub sha256: String,
    pub size: u64,
}

/// Where the bundle stream sits inside a file: all of a `.tar.zst`, or a part of a `.run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub offset: u64,
    pub len: u64,
}

/// Offset of the bundle stream in a `.run` that carries an installer of `installer_size` bytes.
pub fn bundle_offset(installer_size: u64) -> u64 {
    HEADER_LEN + installer_size.div_ceil(STREAM_ALIGN) * STREAM_ALIGN
}

/// The sh header for `installer`, exactly [`HEADER_LEN`] bytes.
pub fn header(installer: &RunInstaller) -> Vec<u8> {
    let script = format!(
        r#"#!/bin/sh
{MAGIC} (format 1).
# Layout: this script, the installer for {arch} at byte {HEADER_LEN}, the bundle stream at byte
# {offset}, and a {TRAILER_LEN}-byte end marker. Usage: sh FILE.run COMMAND [FLAGS], e.g.
#   sh FILE.run apply --site site.toml --key site.pub
#   sh FILE.run inspect
# Check the transfer first: sha256sum -c FILE.run.sha256
set -eu
koi_installer_size={size}
koi_installer_sha256={sha}
koi_bundle_offset={offset}
koi_arch={arch}
self=$0
case $self in /*) ;; *) self=$(pwd)/$self ;; esac
refuse() {{ echo "$self: $1" >&2; exit 3; }}
[ -f "$self" ] || {{ echo "run this file with sh: sh /path/to/FILE.run COMMAND [FLAGS]" >&2; exit 2; }}
machine=$(uname -m)
if [ "$machine" != "$koi_arch" ]; then
  echo "$self carries the installer for $koi_arch; this machine is $machine. Build the .run for $machine (bundler build --arch $machine --self-extracting)." >&2
  exit 1
fi
set -f
koi_end() {{ koi_tag=${{1-}}; koi_end_offset=${{2-}}; koi_end_len=${{3-}}; }}
koi_end $(tail -c {TRAILER_LEN} "$self" | tr -c '#a-z0-9 -' ' ')
set +f
case $koi_end_len in ''|*[!0-9]*) koi_tag= ;; esac
[ "$koi_tag" = "{TRAILER_TAG}" ] && [ "$koi_end_offset" = "$koi_bundle_offset" ] ||
  refuse "cut short or altered: the end marker is missing. Copy the file again and check it with sha256sum -c."
size=$(wc -c < "$self" | tr -d ' ')
[ "$size" -eq $((koi_end_offset + koi_end_len + {TRAILER_LEN})) ] ||
  refuse "is $size bytes, the end marker says $((koi_end_offset + koi_end_len + {TRAILER_LEN})). Copy it again."
tmp=$(mktemp -d "${{TMPDIR:-/tmp}}/kubespray-offline.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM HUP
tail -c +{start} "$self" | head -c "$koi_installer_size" > "$tmp/installer"
sum=$(sha256sum "$tmp/installer" | cut -d' ' -f1)
[ "$sum" = "$koi_installer_sha256" ] ||
  refuse "the installer inside is altered (sha256 $sum, expected $koi_installer_sha256). Copy the file again and check it with sha256sum -c."
chmod 0700 "$tmp/installer"
status=0
KOI_BUNDLE=$self "$tmp/installer" "$@" || status=$?
exit $status
"#,
        arch = installer.arch,
        size = installer.size,
        sha = installer.sha256,
        offset = bundle_offset(installer.size),
        start = HEADER_LEN + 1,
    );
    let mut bytes = script.into_bytes();
    assert!(
        bytes.len() as u64 <= HEADER_LEN,
        "the .run header outgrew HEADER_LEN"
    );
    bytes.resize(HEADER_LEN as usize, b'\n');
    bytes
}

/// The trailer for a bundle stream of `len` bytes at `offset`.
pub fn trailer(offset: u64, len: u64) -> Vec<u8> {
    let text = format!("{TRAILER_TAG} {offset:>20} {len:>20}\n");
    debug_assert_eq!(text.len() as u64, TRAILER_LEN);
    text.into_bytes()
}

/// Writes the header and the installer (checked against its sha256 as it is copied, then
/// padded) to `out`, feeding every byte to `hasher`. Returns the bytes written.
pub fn write_prefix(
    out: &mut impl Write,
    hasher: &mut Sha256,
    installer: &RunInstaller,
) -> Result<u64, BundleError> {
    let io_err = |e| BundleError::io(&installer.path, e);
    let head = header(installer);
    out.write_all(&head).map_err(io_err)?;
    hasher.update(&head);
    let mut file = fs_err::File::open(&installer.path).map_err(BundleError::Fs)?;
    let mut check = Sha256::new();
    let mut copied = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = crate::io::read_some(&mut file, &mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(io_err)?;
        hasher.update(&buf[..n]);
        check.update(&buf[..n]);
        copied += n as u64;
    }
    let actual = hex::encode(check.finalize());
    let mismatch = |reason| BundleError::SourceMismatch {
        source_path: installer.path.clone(),
        entry: "installer".into(),
        reason,
    };
    if copied != installer.size {
        return Err(mismatch(crate::EntryProblem::SizeMismatch {
            expected: installer.size,
            actual: copied,
        }));
    }
    if actual != installer.sha256 {
        return Err(mismatch(crate::EntryProblem::HashMismatch {
            expected: installer.sha256.clone(),
            actual,
        }));
    }
    let offset = bundle_offset(installer.size);
    let pad = vec![0u8; (offset - HEADER_LEN - copied) as usize];
    out.write_all(&pad).map_err(io_err)?;
    hasher.update(&pad);
    Ok(offset)
}

/// Where the bundle stream is in `file` (opened from `path`): the whole file, or for a `.run`
/// the part its header and trailer name. A `.run` whose end marker is missing or does not match
/// its length (cut short, or something appended) is refused as damaged.
pub fn locate(path: &Path, file: &mut std::fs::File) -> Result<Region, BundleError> {
    let io_err = |e| BundleError::io(path, e);
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Ok(Region {
            offset: 0,
            len: u64::MAX,
        });
    }
    let size = meta.len();
    let mut head = vec![0u8; HEADER_LEN.min(size) as usize];
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    file.read_exact(&mut head).map_err(io_err)?;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let whole = Region {
        offset: 0,
        len: size,
    };
    let Some(text) = head
        .strip_prefix(b"#!/bin/sh\n")
        .filter(|rest| rest.starts_with(MAGIC.as_bytes()))
    else {
        return Ok(whole);
    };
    let damaged = |reason: String| BundleError::CorruptStream {
        bundle: path.to_path_buf(),
        reason: format!(
            "self-extracting bundle {reason}; copy it again and check it with sha256sum -c"
        ),
    };
    let text = String::from_utf8_lossy(text);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .map(str::trim)
            .ok_or_else(|| damaged(format!("has no readable {name} line in its header")))
    };
    let number = |name: &str| {
        field(name)?
            .parse::<u64>()
            .map_err(|_| damaged(format!("has an unreadable {name} in its header")))
    };
    let offset = number("koi_bundle_offset")?;
    let installer_size = number("koi_installer_size")?;
    let installer_sha256 = field("koi_installer_sha256")?.to_string();
    if offset != bundle_offset(installer_size) {
        return Err(damaged(format!(
            "has a header whose offsets disagree ({installer_size}-byte installer, bundle at byte {offset})"
        )));
    }
    if size < offset + TRAILER_LEN {
        return Err(damaged(format!(
            "is cut short: {size} bytes, the bundle starts at byte {offset}"
        )));
    }
    let mut tail = vec![0u8; TRAILER_LEN as usize];
    file.seek(SeekFrom::Start(size - TRAILER_LEN))
        .map_err(io_err)?;
    file.read_exact(&mut tail).map_err(io_err)?;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let tail = String::from_utf8_lossy(&tail);
    let fields: Vec<&str> = tail.split_whitespace().collect();
    let (end_offset, len) = match fields.as_slice() {
        [tag, o, l] if *tag == TRAILER_TAG => (o.parse::<u64>().ok(), l.parse::<u64>().ok()),
        _ => (None, None),
    };
    let region = match (end_offset, len) {
        (Some(o), Some(len)) if o == offset && o + len + TRAILER_LEN == size => {
            Region { offset, len }
        }
        _ => {
            return Err(damaged(format!(
                "is cut short or altered: its last {TRAILER_LEN} bytes are not the end marker for a bundle at byte {offset} of a {size}-byte file"
            )));
        }
    };
    // The installer is what `sh FILE.run` would run: a reader of the file checks it too.
    file.seek(SeekFrom::Start(HEADER_LEN)).map_err(io_err)?;
    let mut hasher = Sha256::new();
    let copied =
        std::io::copy(&mut (&mut *file).take(installer_size), &mut hasher).map_err(io_err)?;
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    let actual = hex::encode(hasher.finalize());
    if copied != installer_size || actual != installer_sha256 {
        return Err(damaged(format!(
            "carries an altered installer: sha256 {actual}, its header says {installer_sha256}"
        )));
    }
    Ok(region)
}

/// The architecture an ELF executable is built for, as `uname -m` names it.
pub fn elf_arch(path: &Path) -> Result<String, String> {
    let mut head = [0u8; 20];
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.read_exact(&mut head)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if &head[..4] != b"\x7fELF" || head[5] != 1 {
        return Err(format!(
            "{}: not a little-endian ELF executable",
            path.display()
        ));
    }
    match u16::from_le_bytes([head[18], head[19]]) {
        62 => Ok("x86_64".into()),
        183 => Ok("aarch64".into()),
        other => Err(format!(
            "{}: ELF machine {other} is neither x86_64 nor aarch64",
            path.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailer_has_its_fixed_length() {
        assert_eq!(trailer(u64::MAX, u64::MAX).len() as u64, TRAILER_LEN);
        assert_eq!(trailer(8192, 1).len() as u64, TRAILER_LEN);
    }

    #[test]
    fn header_fits_and_names_the_offset() {
        let installer = RunInstaller {
            path: "/x".into(),
            arch: "x86_64".into(),
            sha256: "0".repeat(64),
            size: 5000,
        };
        let h = header(&installer);
        assert_eq!(h.len() as u64, HEADER_LEN);
        let text = String::from_utf8(h).unwrap();
        assert!(text.contains(&format!("koi_bundle_offset={}\n", HEADER_LEN + 8192)));
    }
}
