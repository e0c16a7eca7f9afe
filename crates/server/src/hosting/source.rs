//! A model version's source: a directory on the server, and the content hash that records what
//! was in it when the version was registered.

use std::io::Read;
use std::path::{Path, PathBuf};

use ring::digest::{Context, SHA256};

/// Most files a source may hold.
const MAX_FILES: usize = 100_000;

/// The directory a source names: an absolute path, or a `file://` URI of one. Anything else is
/// refused with the reason (the server fetches nothing over the network).
pub fn directory(source: &str) -> Result<PathBuf, String> {
    let path = match source.split_once("://") {
        None => source,
        Some(("file", rest)) => rest,
        Some((scheme, _)) => {
            return Err(format!(
                "'{scheme}://' sources are not supported: give a directory on the server (a path or file:// URI)"
            ));
        }
    };
    let path = Path::new(path);
    if !path.is_absolute() {
        return Err(format!("'{source}' is not an absolute path"));
    }
    if !path.is_dir() {
        return Err(format!("'{source}' is not a directory the server can read"));
    }
    Ok(path.to_path_buf())
}

/// `sha256:HEX` over the directory's regular files in path order: each file's relative path, a
/// NUL, its length and its bytes. Symbolic links are followed (model caches such as Hugging
/// Face's are made of them), so the hash is of what a replica would read; a link loop is refused.
pub fn content_hash(dir: &Path) -> Result<String, String> {
    let mut ctx = Context::new(&SHA256);
    let mut files = 0usize;
    let walker = walkdir::WalkDir::new(dir).follow_links(true).sort_by_file_name();
    let mut buf = vec![0u8; 1 << 20];
    for entry in walker {
        let entry = entry.map_err(|e| format!("cannot read the source: {e}"))?;
        if !entry.file_type().is_file() {
            continue;
        }
        files += 1;
        if files > MAX_FILES {
            return Err(format!("the source holds more than {MAX_FILES} files"));
        }
        let relative = entry.path().strip_prefix(dir).unwrap_or(entry.path());
        let mut file =
            std::fs::File::open(entry.path()).map_err(|e| format!("cannot read {}: {e}", relative.display()))?;
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        ctx.update(relative.to_string_lossy().as_bytes());
        ctx.update(&[0]);
        ctx.update(&len.to_le_bytes());
        loop {
            let n = file.read(&mut buf).map_err(|e| format!("cannot read {}: {e}", relative.display()))?;
            if n == 0 {
                break;
            }
            ctx.update(buf.get(..n).unwrap_or_default());
        }
    }
    let digest = ctx.finish();
    Ok(format!("sha256:{}", modelgate_core::token::hex(digest.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_follows_names_and_contents() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("a.txt"), "one").unwrap();
        std::fs::write(d.path().join("sub/b.bin"), [0u8, 1, 2]).unwrap();
        let first = content_hash(d.path()).unwrap();
        assert!(first.starts_with("sha256:") && first.len() == 7 + 64, "{first}");
        assert_eq!(content_hash(d.path()).unwrap(), first, "stable");
        std::fs::write(d.path().join("a.txt"), "two").unwrap();
        let changed = content_hash(d.path()).unwrap();
        assert_ne!(changed, first);
        std::fs::rename(d.path().join("a.txt"), d.path().join("c.txt")).unwrap();
        assert_ne!(content_hash(d.path()).unwrap(), changed, "a renamed file changes the hash");
        #[cfg(unix)]
        {
            // A link is read through (what a replica would load); a loop is refused.
            let target = tempfile::tempdir().unwrap();
            std::fs::write(target.path().join("weights"), "w1").unwrap();
            std::os::unix::fs::symlink(target.path().join("weights"), d.path().join("link")).unwrap();
            let linked = content_hash(d.path()).unwrap();
            std::fs::write(target.path().join("weights"), "w2").unwrap();
            assert_ne!(content_hash(d.path()).unwrap(), linked, "the linked file's bytes count");
            std::os::unix::fs::symlink(d.path(), d.path().join("sub/loop")).unwrap();
            assert!(content_hash(d.path()).unwrap_err().contains("cannot read the source"));
        }
    }

    #[test]
    fn sources_are_directories_on_the_server() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().display().to_string();
        assert_eq!(directory(&p).unwrap(), d.path());
        assert_eq!(directory(&format!("file://{p}")).unwrap(), d.path());
        assert!(directory("s3://bucket/model").unwrap_err().contains("not supported"));
        assert!(directory("relative/dir").unwrap_err().contains("absolute"));
        assert!(directory(&format!("{p}/missing")).unwrap_err().contains("not a directory"));
    }
}
