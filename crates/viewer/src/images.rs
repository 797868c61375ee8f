//! The images a page can choose: the embedded scene, the files of `--images DIR` and uploads.
//!
//! Ids are what a shared link names: `scene`, a file's name in the folder (`cat.jpg`), or
//! `upload-<hash>` for an upload (the same bytes get the same id). A folder file is served only
//! when its name has no path separator, no `..`, does not start with a dot, and its real path
//! (symbolic links followed) lies inside the folder.

use std::collections::VecDeque;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use convscope::lower::image::image::ImageReader;
use convscope::Image;
use serde::Serialize;

use crate::api::ApiError;

/// Extensions listed from the folder.
const EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff"];

/// Files listed from the folder at most.
const MAX_LISTED: usize = 2000;

/// One image a page can choose.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ImageInfo {
    /// The id to pass as `image=`.
    pub id: String,
    /// What to call it.
    pub name: String,
    /// `scene`, `file` or `upload`.
    pub kind: &'static str,
}

/// Limits of uploads and folder files.
#[derive(Clone, Copy, Debug)]
pub struct ImageLimits {
    /// Encoded bytes of one image.
    pub max_bytes: usize,
    /// Pixels (width × height) of one image.
    pub max_pixels: u64,
    /// Encoded bytes of all uploads kept (the oldest are forgotten first).
    pub max_kept_bytes: usize,
}

/// The known images.
pub struct ImageStore {
    folder: Option<PathBuf>,
    limits: ImageLimits,
    uploads: Mutex<VecDeque<Upload>>,
}

struct Upload {
    info: ImageInfo,
    bytes: Vec<u8>,
}

impl ImageStore {
    /// A store over `folder` (already checked to be a folder; stored canonical).
    pub fn new(folder: Option<&Path>, limits: ImageLimits) -> std::io::Result<ImageStore> {
        let folder = folder.map(std::fs::canonicalize).transpose()?;
        if let Some(f) = &folder {
            std::fs::read_dir(f)?;
        }
        Ok(ImageStore {
            folder,
            limits,
            uploads: Mutex::new(VecDeque::new()),
        })
    }

    /// The limits.
    pub fn limits(&self) -> ImageLimits {
        self.limits
    }

    /// Every image: the scene, the folder's image files (sorted by name), the uploads (oldest
    /// first).
    pub fn list(&self) -> Vec<ImageInfo> {
        let mut all = vec![ImageInfo {
            id: "scene".into(),
            name: "demo scene".into(),
            kind: "scene",
        }];
        if let Some(dir) = &self.folder {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| has_image_extension(n) && self.folder_path(n).is_ok())
                .take(MAX_LISTED)
                .collect();
            names.sort();
            all.extend(names.into_iter().map(|n| ImageInfo {
                id: n.clone(),
                name: n,
                kind: "file",
            }));
        }
        let uploads = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        all.extend(uploads.iter().map(|u| u.info.clone()));
        all
    }

    /// The path of folder file `name`, refusing anything that could leave the folder.
    pub fn folder_path(&self, name: &str) -> Result<PathBuf, ApiError> {
        let Some(dir) = &self.folder else {
            return Err(ApiError::not_found(format!(
                "no image '{}' (the server has no --images folder)",
                clip(name)
            )));
        };
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && !name.contains(['/', '\\', '\0'])
            && !name.contains("..");
        if !plain {
            return Err(ApiError::forbidden(format!(
                "image '{}' is not a plain file name inside the images folder",
                clip(name)
            )));
        }
        let path = dir.join(name);
        let real = std::fs::canonicalize(&path)
            .map_err(|_| ApiError::not_found(format!("no image '{}'", clip(name))))?;
        if !real.starts_with(dir) {
            return Err(ApiError::forbidden(format!(
                "image '{}' points outside the images folder",
                clip(name)
            )));
        }
        if !real.is_file() {
            return Err(ApiError::not_found(format!("no image '{}'", clip(name))));
        }
        Ok(real)
    }

    /// Decodes image `id`, checking the limits.
    pub fn load(&self, id: &str) -> Result<Image, ApiError> {
        if id == "scene" {
            return Ok(convscope::demo_scene().image);
        }
        if id.starts_with("upload-") {
            let uploads = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
            let bytes = uploads
                .iter()
                .find(|u| u.info.id == id)
                .map(|u| u.bytes.clone())
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "no upload '{}' (uploads are kept while the server runs, the oldest \
                         forgotten first)",
                        clip(id)
                    ))
                })?;
            drop(uploads);
            return self.decode(&bytes, id);
        }
        let path = self.folder_path(id)?;
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if len > self.limits.max_bytes as u64 {
            return Err(ApiError::too_large(format!(
                "image '{}' has {len} bytes; the limit is {}",
                clip(id),
                self.limits.max_bytes
            )));
        }
        let bytes = std::fs::read(&path)
            .map_err(|e| ApiError::not_found(format!("cannot read image '{}': {e}", clip(id))))?;
        self.decode(&bytes, id)
    }

    /// Stores an upload; returns its entry (the same one again for the same bytes).
    pub fn upload(&self, bytes: Vec<u8>, name: Option<&str>) -> Result<ImageInfo, ApiError> {
        if bytes.is_empty() {
            return Err(ApiError::bad(
                "the upload is empty: send the image's bytes as the body",
            ));
        }
        if bytes.len() > self.limits.max_bytes {
            return Err(ApiError::too_large(format!(
                "the upload has {} bytes; the limit is {}",
                bytes.len(),
                self.limits.max_bytes
            )));
        }
        // Decoding once checks that it is an image within the pixel limit.
        self.decode(&bytes, "the upload")?;
        let id = format!("upload-{:016x}", fnv1a(&bytes));
        let mut uploads = self.uploads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(u) = uploads.iter().find(|u| u.info.id == id) {
            return Ok(u.info.clone());
        }
        let name = name
            .map(|n| n.chars().filter(|c| !c.is_control()).take(80).collect())
            .filter(|n: &String| !n.is_empty())
            .unwrap_or_else(|| id.clone());
        let info = ImageInfo {
            id,
            name,
            kind: "upload",
        };
        uploads.push_back(Upload {
            info: info.clone(),
            bytes,
        });
        let mut kept: usize = uploads.iter().map(|u| u.bytes.len()).sum();
        while kept > self.limits.max_kept_bytes && uploads.len() > 1 {
            kept -= uploads.pop_front().map_or(0, |u| u.bytes.len());
        }
        Ok(info)
    }

    /// Decodes encoded bytes after checking the pixel count from the header alone.
    fn decode(&self, bytes: &[u8], what: &str) -> Result<Image, ApiError> {
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| ApiError::bad(format!("{} is not a readable image: {e}", clip(what))))?;
        let (w, h) = reader.into_dimensions().map_err(|e| {
            ApiError::bad(format!(
                "{} is not a readable image: {}",
                clip(what),
                e.to_string().lines().next().unwrap_or("")
            ))
        })?;
        let pixels = w as u64 * h as u64;
        if pixels > self.limits.max_pixels {
            return Err(ApiError::too_large(format!(
                "{} is {w}x{h} = {pixels} pixels; the limit is {} pixels",
                clip(what),
                self.limits.max_pixels
            )));
        }
        Image::decode(bytes).map_err(|e| ApiError::bad(format!("{}: {e}", clip(what))))
    }
}

fn has_image_extension(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A name cut to 60 characters for an error line.
pub(crate) fn clip(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

/// FNV-1a, 64 bits: the id of an upload (a name, not a security measure).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ImageLimits {
        ImageLimits {
            max_bytes: 1 << 20,
            max_pixels: 1 << 20,
            max_kept_bytes: 1 << 22,
        }
    }

    #[test]
    fn names_that_could_leave_the_folder_are_refused() {
        let dir = std::env::temp_dir().join(format!("convscope-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = ImageStore::new(Some(&dir), limits()).unwrap();
        for bad in ["../x.png", "a/b.png", "..", ".hidden.png", "a\\b.png", ""] {
            let e = store.folder_path(bad).unwrap_err();
            assert_eq!(e.status, 403, "{bad}: {}", e.message);
        }
        assert_eq!(store.folder_path("absent.png").unwrap_err().status, 404);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn uploads_are_checked_and_deduplicated() {
        let store = ImageStore::new(None, limits()).unwrap();
        let png = convscope::Picture::filled(convscope::Size::new(3, 2), [1, 2, 3])
            .png_bytes()
            .unwrap();
        let a = store.upload(png.clone(), Some("a.png")).unwrap();
        let b = store.upload(png, Some("b.png")).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            store.load(&a.id).unwrap().size(),
            convscope::Size::new(3, 2)
        );
        assert_eq!(
            store
                .upload(b"not an image".to_vec(), None)
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(store.list().len(), 2); // the scene and the upload
    }
}
