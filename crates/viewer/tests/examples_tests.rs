//! Dataset examples in the viewer: the folder images a clicked channel responds to most and
//! least, equal to what `convscope examples` finds over the same files, with their crops.

use std::io::{Read, Write};
use std::net::TcpStream;

use convscope::examples::{Entry, ExamplesConfig};
use convscope::prelude::*;
use convscope_demo::scene::Sample;
use convscope_test_support::TempDir;
use convscope_viewer::{ServeConfig, Server};

/// `GET path` (token added); returns (status, body bytes).
fn get(server: &Server, path: &str) -> (u16, Vec<u8>) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut s = TcpStream::connect(server.addr()).unwrap();
    write!(
        s,
        "GET {path}{sep}token={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        server.token()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let status = std::str::from_utf8(&raw[9..12]).unwrap().parse().unwrap();
    let body = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(Vec::new(), |i| raw[i + 4..].to_vec());
    (status, body)
}

fn get_json(server: &Server, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = get(server, path);
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, value)
}

/// Writes generated 64×64 scenes `first..first+n` into `dir/rel_dir`.
fn scenes(dir: &TempDir, rel_dir: &str, first: u64, n: u64) {
    for i in first..first + n {
        let s = Sample::generate(7_000 + i);
        let img =
            Image::from_rgb8(Size::new(s.image.width, s.image.height), &s.image.data).unwrap();
        let path = dir.path(&format!("{rel_dir}scene{i:03}.png"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        img.to_picture().save(&path).unwrap();
    }
}

fn input() -> InputConfig {
    InputConfig::default().with_size(Size::square(64))
}

fn server(images: Option<&std::path::Path>) -> Server {
    Server::start(
        Model::demo().unwrap(),
        ServeConfig {
            port: 0,
            images: images.map(std::path::Path::to_path_buf),
            input: Some(input()),
            ..ServeConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn a_channels_examples_equal_the_examples_command_over_the_same_files() {
    // The served folder: 36 scenes, an unreadable "image", a subfolder and (on Unix) a link
    // to a picture outside. The viewer offers only the plain files directly inside, so its
    // examples must equal a run over a folder holding just the 36 scenes and the bad file.
    let served = TempDir::new("viewer-examples-served");
    scenes(&served, "", 0, 36);
    served.write("broken.png", b"\x89PNG\r\n\x1a\n not really");
    scenes(&served, "deeper/", 100, 4);
    let outside = TempDir::new("viewer-examples-outside");
    scenes(&outside, "", 200, 1);
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.path("scene200.png"), served.path("link.png")).unwrap();
    let plain = TempDir::new("viewer-examples-plain");
    scenes(&plain, "", 0, 36);
    plain.write("broken.png", b"\x89PNG\r\n\x1a\n not really");
    let model = Model::demo().unwrap().with_input(input());
    let expected = model
        .examples(
            plain.root(),
            &ExamplesConfig {
                layers: "conv3".into(),
                ..ExamplesConfig::default()
            },
        )
        .unwrap();
    assert_eq!(expected.images_used, 36);
    let layer = &expected.layers[0];

    let server = server(Some(served.root()));
    // Asked without waiting: accepted and running (or already done on a fast machine).
    let (status, first) = get_json(&server, "/api/examples?layer=conv3&channel=0");
    assert!(status == 202 || status == 200, "{status} {first}");
    for unit in [0, 5, layer.units.len() - 1] {
        let (status, found) = get_json(
            &server,
            &format!("/api/examples?layer=conv3&channel={unit}&wait=1"),
        );
        assert_eq!(status, 200, "{found}");
        assert_eq!(found["images_used"], 36);
        assert_eq!(found["skipped"], 1, "broken.png is listed as skipped");
        let want = &layer.units[unit];
        // Compared as the index's own types: scores are f32, sent as JSON numbers.
        let entries =
            |end: &str| -> Vec<Entry> { serde_json::from_value(found[end].clone()).unwrap() };
        assert_eq!(entries("top"), want.top);
        assert_eq!(entries("bottom"), want.bottom);
        assert_eq!(want.top.len(), 9);
        // Each entry's crop is its receptive field cut from the image.
        for (end, list) in [("top", &want.top), ("bottom", &want.bottom)] {
            for rank in [0, list.len() - 1] {
                let (status, png) = get(
                    &server,
                    &format!("/api/examples/crop?layer=conv3&channel={unit}&end={end}&rank={rank}"),
                );
                assert_eq!(status, 200, "{}", String::from_utf8_lossy(&png));
                let crop = Image::decode(&png).unwrap();
                let region = list[rank].region;
                assert_eq!(crop.size(), Size::new(region.width, region.height));
                let original = Image::open(plain.path(&list[rank].image)).unwrap();
                assert_eq!(
                    crop.to_picture().rgb().as_raw(),
                    original.crop(region).to_picture().rgb().as_raw()
                );
            }
        }
    }
    // The layer was computed once, by one job.
    let (_, jobs) = get_json(&server, "/api/jobs");
    let examples_jobs = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["job"].as_str().unwrap().starts_with("examples|"))
        .count();
    assert_eq!(examples_jobs, 1, "{jobs}");
}

#[test]
fn bad_examples_requests_get_one_line_errors() {
    let folder = TempDir::new("viewer-examples-errors");
    scenes(&folder, "", 0, 3);
    let with = server(Some(folder.root()));
    let without = server(None);
    let cases: [(&Server, &str, u16, &str); 7] = [
        (
            &without,
            "/api/examples?layer=conv3&channel=0",
            400,
            "--images",
        ),
        (
            &with,
            "/api/examples?layer=conv3&channel=999",
            400,
            "out of range",
        ),
        (&with, "/api/examples?layer=nope&channel=0", 400, "nope"),
        (&with, "/api/examples?layer=conv3", 400, "channel"),
        (
            &with,
            "/api/examples/crop?layer=conv2&channel=0&end=top&rank=0",
            404,
            "not computed yet",
        ),
        (
            &with,
            "/api/examples?layer=conv3&channel=0&colour=red",
            400,
            "colour",
        ),
        (
            &with,
            "/api/examples/crop?layer=conv3&channel=0&end=middle&rank=0",
            400,
            "middle",
        ),
    ];
    for (server, path, status, needle) in cases {
        let (got, body) = get_json(server, path);
        let message = body["error"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{path}: {body}");
        assert!(message.contains(needle), "{path}: {message}");
        assert!(!message.contains('\n'), "{path}: {message}");
    }
    // Once computed: a rank past the list is a 404 naming the list's length.
    let (status, _) = get_json(&with, "/api/examples?layer=conv3&channel=0&wait=1");
    assert_eq!(status, 200);
    let (status, body) = get_json(
        &with,
        "/api/examples/crop?layer=conv3&channel=0&end=top&rank=3",
    );
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("has 3 top examples"),
        "{body}"
    );
}
