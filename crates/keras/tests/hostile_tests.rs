//! Hostile Keras files: each gives one line naming the problem, never a panic. A short fuzz
//! pass mutates and truncates the committed fixtures (zip and HDF5 paths) and checks that every
//! outcome is a model the engine loads or a one-line error.

mod common;

use common::*;
use convscope_keras::KerasModel;

fn error_of(bytes: &[u8]) -> String {
    let e = KerasModel::from_bytes(bytes)
        .expect_err("must be refused")
        .to_string();
    assert!(!e.contains('\n'), "more than one line: {e}");
    e
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap()
}

#[test]
fn truncated_keras_zip_is_one_line() {
    let zip = fixture("catsdogs.keras");
    for cut in [0, 3, 100, zip.len() / 2, zip.len() - 30, zip.len() - 1] {
        let e = error_of(&zip[..cut]);
        assert!(
            e.starts_with("corrupt .keras archive") || e.starts_with("not a Keras model"),
            "cut {cut}: {e}"
        );
    }
}

#[test]
fn corrupt_hdf5_is_one_line() {
    let h5 = fixture("catsdogs_k2.h5");
    let e = error_of(&h5[..h5.len() / 2]);
    assert!(e.starts_with("corrupt HDF5 data"), "{e}");
    // The superblock's root-group address pointing past the end.
    let mut bad = h5.clone();
    for b in &mut bad[8..64] {
        *b = 0xff;
    }
    error_of(&bad);
}

#[test]
fn hdf5_that_is_not_keras_is_named() {
    let mut b = hdf5_pure::FileBuilder::new();
    b.create_dataset("temperature").with_f32_data(&[1.0, 2.0]);
    let bytes = b.finish().unwrap();
    let e = error_of(&bytes);
    assert_eq!(
        e,
        "not a Keras model: the HDF5 file has no model_config attribute"
    );
}

#[test]
fn config_naming_missing_weights_is_named() {
    let members = unzip_stored(&fixture("catsdogs.keras"));
    assert_eq!(
        members.len(),
        3,
        "catsdogs.keras is a stored zip of three members"
    );
    let renamed: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, d)| {
            let d = if n == "config.json" {
                String::from_utf8(d.clone())
                    .unwrap()
                    .replace("\"conv2d_3\"", "\"conv2d_9\"")
                    .into_bytes()
            } else {
                d.clone()
            };
            (n.as_str(), d)
        })
        .collect();
    let e = error_of(&zip_stored(&renamed));
    assert_eq!(
        e,
        "layer 'conv2d_9' (Conv2D): the file has no weights for it"
    );
    // The same members unchanged load: the rewrite itself is sound.
    let same: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    assert!(KerasModel::from_bytes(&zip_stored(&same)).is_ok());
}

/// `file` with the first `from` in its config.json replaced by `to`.
fn with_config_edit(file: &str, from: &str, to: &str) -> Vec<u8> {
    let members: Vec<(String, Vec<u8>)> = unzip_stored(&fixture(file))
        .into_iter()
        .map(|(n, d)| {
            if n != "config.json" {
                return (n, d);
            }
            let text = String::from_utf8(d).unwrap();
            assert!(text.contains(from), "{file}'s config has no {from}");
            (n, text.replacen(from, to, 1).into_bytes())
        })
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    zip_stored(&refs)
}

/// The Resizing options convscope does not translate are refused at load, one line naming the
/// layer and the option (the first Resizing of the fixture, `shrink`, is bilinear).
#[test]
fn resizing_options_not_read_are_named() {
    for (from, to, want) in [
        (
            "\"crop_to_aspect_ratio\": false",
            "\"crop_to_aspect_ratio\": true",
            "shrink (Resizing: crop_to_aspect_ratio=True)",
        ),
        (
            "\"pad_to_aspect_ratio\": false",
            "\"pad_to_aspect_ratio\": true",
            "shrink (Resizing: pad_to_aspect_ratio=True)",
        ),
        (
            "\"antialias\": false",
            "\"antialias\": true",
            "shrink (Resizing: antialias=True)",
        ),
        (
            "\"interpolation\": \"bilinear\"",
            "\"interpolation\": \"bicubic\"",
            "shrink (Resizing: interpolation 'bicubic' (bilinear and nearest are read))",
        ),
    ] {
        let e = error_of(&with_config_edit("resize_dense.keras", from, to));
        assert_eq!(e, format!("unsupported Keras layers: {want}"));
    }
    let e = error_of(&with_config_edit(
        "resize_dense.keras",
        "\"height\": 15",
        "\"height\": 0",
    ));
    assert_eq!(e, "bad Keras model config: layer 'shrink': bad height");
    // The same archive unchanged loads: the rewrite itself is sound.
    assert!(KerasModel::from_bytes(&with_config_edit(
        "resize_dense.keras",
        "\"height\": 15",
        "\"height\": 15"
    ))
    .is_ok());
}

#[test]
fn custom_layer_is_listed_with_its_class() {
    let e = error_of(&fixture("custom_layer.keras"));
    assert_eq!(
        e,
        "unsupported Keras layers: doubling (custom layer fixtures>Doubling)"
    );
}

#[test]
fn weights_only_and_non_model_files_are_named() {
    assert_eq!(
        error_of(b"GIF89a..."),
        "not a Keras model: neither a .keras zip archive nor an HDF5 file"
    );
    let zip = zip_stored(&[("config.json", b"{\"class_name\": \"Sequential\"".to_vec())]);
    assert!(error_of(&zip).starts_with("bad Keras model config: config.json is not valid JSON"));
}

/// The members of `catsdogs.keras`, as a ZIP64 archive.
fn catsdogs_zip64() -> (Vec<u8>, Zip64Layout) {
    let members = unzip_stored(&fixture("catsdogs.keras"));
    let refs: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, d)| (n.as_str(), d.clone()))
        .collect();
    zip64_stored(&refs)
}

/// A `.keras` archive written with ZIP64 records (as Python's zipfile writes archives past
/// 4 GiB) reads as the same model as the plain archive (before ZIP64 support: "ZIP64 archives
/// (members over 4 GiB) are not supported").
#[test]
fn zip64_keras_archive_reads_like_the_plain_one() {
    let plain = KerasModel::from_bytes(&fixture("catsdogs.keras")).unwrap();
    let (zip64, _) = catsdogs_zip64();
    let read = KerasModel::from_bytes(&zip64).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.proto, plain.proto);
    assert_eq!(read.weight_count, plain.weight_count);
}

/// `b` with the little-endian `value` written at `at`.
fn patched(b: &[u8], at: usize, value: &[u8]) -> Vec<u8> {
    let mut b = b.to_vec();
    b[at..at + value.len()].copy_from_slice(value);
    b
}

/// Damaged ZIP64 records and fields: one line each, never a panic, never a huge allocation.
#[test]
fn hostile_zip64_records_are_one_line() {
    let (zip, at) = catsdogs_zip64();
    let n = zip.len();
    let big = (1u64 << 40).to_le_bytes();
    // The extra fields (id, length, size, compressed size, offset) of the first two entries;
    // config.json's damage must stop the load (a bad metadata.json only loses the version).
    let metadata_extra = at.directory + 46 + "metadata.json".len();
    let config_extra = metadata_extra + 28 + 46 + "config.json".len();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "locator pointing past the end",
            patched(&zip, at.locator + 8, &big),
            "ZIP64 end record is not where its locator says",
        ),
        (
            "locator pointing into the directory",
            patched(&zip, at.locator + 8, &(at.directory as u64).to_le_bytes()),
            "ZIP64 end record is not where its locator says",
        ),
        (
            "directory offset past the end",
            patched(&zip, at.end64 + 48, &big),
            "ZIP64 end record puts the directory past its own start",
        ),
        (
            "directory offset of u64::MAX",
            patched(&zip, at.end64 + 48, &u64::MAX.to_le_bytes()),
            "puts the directory past its own start",
        ),
        (
            "an entry count past the directory",
            patched(&zip, at.end64 + 32, &big),
            "truncated",
        ),
        (
            // The first member's extra field: id, length, size, compressed size, offset.
            "a compressed size past the end",
            patched(&zip, config_extra + 12, &big),
            "'config.json' is cut short",
        ),
        (
            "a compressed size of u64::MAX",
            patched(&zip, config_extra + 12, &u64::MAX.to_le_bytes()),
            "'config.json' is cut short",
        ),
        (
            "a local offset past the end",
            patched(&zip, config_extra + 20, &big),
            "the header of 'config.json' is corrupt",
        ),
        (
            "a ZIP64 extra field too short for its fields",
            patched(&zip, metadata_extra + 2, &[8, 0]),
            "the ZIP64 sizes of 'metadata.json' are missing or cut short",
        ),
        (
            "an extra field that is not ZIP64",
            patched(&zip, metadata_extra, &[0x55, 0x54]),
            "the ZIP64 sizes of 'metadata.json' are missing or cut short",
        ),
        (
            "the locator gone, the end record deferring to it",
            patched(&zip, at.locator, b"XXXX"),
            "its end record refers to a ZIP64 record that is missing",
        ),
    ];
    for (what, bytes, want) in cases {
        let e = error_of(&bytes);
        assert!(
            e.starts_with("corrupt .keras archive") && e.contains(want),
            "{what}: {e}"
        );
    }
    // Cut anywhere in the directory and the end records.
    for cut in at.directory..n {
        error_of(&zip[..cut]);
    }
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn fuzz_mutated_and_truncated_files() {
    let runs: usize = std::env::var("CONVSCOPE_FUZZ_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150);
    let mut rng = Rng(std::env::var("CONVSCOPE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1));
    let (mut ok, mut refused) = (0, 0);
    let mut inputs: Vec<(&str, Vec<u8>)> = [
        "catsdogs.keras",
        "catsdogs_k2.h5",
        "nested_k2.h5",
        "mobilenet_like.keras",
        "resize_dense_k3.h5",
    ]
    .into_iter()
    .map(|f| (f, fixture(f)))
    .collect();
    inputs.push(("catsdogs.keras as ZIP64", catsdogs_zip64().0));
    for (file, original) in inputs {
        for run in 0..runs {
            let mut b = original.clone();
            if run.is_multiple_of(5) {
                b.truncate(rng.next() as usize % b.len());
            } else {
                // Metadata lives at both ends (HDF5 superblock and headers, zip directory).
                for _ in 0..1 + rng.next() % 6 {
                    let n = b.len();
                    let span = n.min(8192);
                    let at = if rng.next().is_multiple_of(2) {
                        rng.next() as usize % span
                    } else {
                        n - 1 - rng.next() as usize % span
                    };
                    b[at] = rng.next() as u8;
                }
            }
            match KerasModel::from_bytes(&b) {
                Ok(m) => {
                    // Whatever the translation made must load in the engine or be refused there.
                    if let Err(e) = convscope_engine::Model::from_proto(m.proto) {
                        assert!(!e.to_string().contains('\n'), "{file} run {run}: {e}");
                    }
                    ok += 1;
                }
                Err(e) => {
                    assert!(!e.to_string().contains('\n'), "{file} run {run}: {e}");
                    refused += 1;
                }
            }
        }
    }
    eprintln!("fuzz: {ok} loaded, {refused} refused");
    assert!(refused > 0 && ok > 0);
}
