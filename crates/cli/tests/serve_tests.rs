//! `convscope serve` over real HTTP: the token, the images folder's walls, one-line errors for
//! bad parameters and hostile uploads, many requests at once with the CLI's own numbers, and
//! background filter jobs.

mod serve_util;

use std::process::Command;

use convscope_test_support::TempDir;
use serve_util::{demo_files, request, Served};

#[test]
fn every_request_needs_the_token() {
    let s = Served::start(&[]);
    for path in [
        "/",
        "/api/model",
        "/assets/app.js",
        "/api/images",
        "/nowhere",
    ] {
        let plain = request("GET", &format!("{}{path}", s.base), &[], &[]);
        assert_eq!(plain.status, 401, "{path} without a token");
        assert!(plain.error().contains("token"), "{}", plain.error());
        let wrong = request(
            "GET",
            &format!("{}{path}?token=x{}", s.base, s.token),
            &[],
            &[],
        );
        assert_eq!(wrong.status, 403, "{path} with a wrong token");
    }
    let bearer = format!("Bearer {}", s.token);
    let ok = request(
        "GET",
        &format!("{}/api/model", s.base),
        &[("Authorization", &bearer)],
        &[],
    );
    assert_eq!(ok.status, 200);
    // The summary --json document of the demo model.
    let doc = ok.json();
    assert_eq!(doc["layers"][0]["name"], "conv1");
    assert_eq!(doc["total_params"], 33092);
    let page = s.get("/");
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("/assets/app.js?token=") && !html.contains("{{token}}"));
}

/// A PNG whose header claims `w×h` pixels and that has no pixel data: a decompression bomb
/// that only a header check stops before the decoder allocates.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    // IHDR, then the start of a zlib stream as IDAT (the decoder reads up to the first IDAT
    // before it reports the size), then IEND.
    for chunk in [ihdr, b"IDAT\x78\x9c".to_vec(), b"IEND".to_vec()] {
        png.extend_from_slice(&(chunk.len() as u32 - 4).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

#[test]
fn images_never_come_from_outside_the_folder() {
    let dir = TempDir::new("serve-walls");
    let (model, images) = demo_files(dir.root());
    std::fs::write(
        dir.path("secret.png"),
        std::fs::read(images.join("scene.png")).unwrap(),
    )
    .unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path("secret.png"), images.join("link.png")).unwrap();
    let s = Served::start(&[
        model.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--size",
        "160x160",
    ]);
    let listed = s.get("/api/images").json();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["scene", "scene.png"], "the link out is not listed");
    assert_eq!(s.get("/api/predictions?image=scene.png").status, 200);
    for bad in [
        "../secret.png",
        "..%2Fsecret.png",
        "%2E%2E%2Fsecret.png",
        "..",
        "link.png",
        "%2Fetc%2Fpasswd",
        ".hidden.png",
    ] {
        let r = s.get(&format!("/api/predictions?image={bad}"));
        assert_eq!(r.status, 403, "image={bad}: {}", r.error());
    }
    let r = s.get("/api/predictions?image=absent.png");
    assert_eq!(r.status, 404, "{}", r.error());
}

#[test]
fn bad_parameters_and_hostile_uploads_get_one_line_errors() {
    let s = Served::start(&["--max-upload-mb", "1"]);
    let cases: &[(&str, u16, &str)] = &[
        ("/api/activations?image=scene&layer=nope", 400, "closest: "),
        (
            "/api/activations?image=scene",
            400,
            "missing parameter 'layer'",
        ),
        (
            "/api/activations?image=scene&layer=conv1&channel=99",
            400,
            "has 16 channels",
        ),
        (
            "/api/activations?image=scene&layer=conv1&lyr=2",
            400,
            "unknown parameter 'lyr'",
        ),
        (
            "/api/activations?image=scene&layer=conv1&format=gif",
            400,
            "format 'gif'",
        ),
        (
            "/api/activations?image=scene&layer=conv1&size=0x5",
            400,
            "size",
        ),
        (
            "/api/activations?image=scene&layer=conv1&size=99999",
            400,
            "exceeds the limit",
        ),
        (
            "/api/activations?image=scene&layer=%ZZ",
            400,
            "percent-encoding",
        ),
        ("/api/cam?image=scene&class=7", 400, "class"),
        (
            "/api/cam?image=scene&class=0&method=fancycam",
            400,
            "unknown CAM method",
        ),
        ("/api/cam?image=scene&class=0&alpha=nan", 400, "alpha"),
        ("/api/cam?image=scene&class=kitten", 400, "closest"),
        ("/api/predictions?image=upload-0000", 404, "no upload"),
        ("/api/predictions?image=scene&top=-1", 400, "top"),
        ("/api/filter?layer=conv1&channel=16", 400, "has 16 channels"),
        ("/api/filter?layer=conv1", 400, "channel"),
        ("/api/nothing", 404, "no endpoint"),
    ];
    for (path, status, says) in cases {
        let r = s.get(path);
        let e = r.error();
        assert_eq!(r.status, *status, "{path}: {e}");
        assert!(e.contains(says), "{path}: {e:?} does not say {says:?}");
    }
    let too_big = vec![0u8; (1 << 20) + 1];
    let r = s.send("POST", "/api/images", &too_big);
    assert_eq!(r.status, 413, "{}", r.error());
    let r = s.send("POST", "/api/images", b"GIF89a but not really");
    assert_eq!(r.status, 400, "{}", r.error());
    let r = s.send("POST", "/api/images", &png_header_only(100_000, 100_000));
    assert_eq!(r.status, 413, "{}", r.error());
    assert!(r.error().contains("pixels"), "{}", r.error());
    let r = s.send("POST", "/api/images", &[]);
    assert_eq!(r.status, 400, "{}", r.error());
    // After all that, the server still answers.
    assert_eq!(s.get("/api/predictions?image=scene").status, 200);
    // An upload works and is known by its id afterwards.
    let png = std::fs::read({
        let dir = TempDir::new("serve-upload");
        let (_, images) = demo_files(dir.root());
        let p = images.join("scene.png");
        let keep = std::env::temp_dir().join(format!("serve-upload-{}.png", std::process::id()));
        std::fs::copy(&p, &keep).unwrap();
        keep
    })
    .unwrap();
    let r = s.send("POST", "/api/images?name=mine.png", &png);
    assert_eq!(r.status, 201);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let listed = s.get("/api/images").json();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == id.as_str() && i["name"] == "mine.png"));
    let same = s.get(&format!("/api/predictions?image={id}")).json();
    let scene = s.get("/api/predictions?image=scene").json();
    assert_eq!(same, scene, "the uploaded scene predicts as the scene");
}

#[test]
fn many_requests_at_once_match_the_cli() {
    let dir = TempDir::new("serve-concurrent");
    let (model, images) = demo_files(dir.root());
    let out = dir.path("cli");
    let cli = Command::new(env!("CARGO_BIN_EXE_convscope"))
        .arg("activations")
        .arg(&model)
        .arg(images.join("scene.png"))
        .args(["--size", "160x160", "--npy", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let layers = [
        "conv1", "pool1", "conv2", "pool2", "conv3", "pool3", "conv4",
    ];
    let expected: Vec<Vec<u8>> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| std::fs::read(out.join(format!("{i:02}_{l}.npy"))).unwrap())
        .collect();
    let s = Served::start(&[
        model.to_str().unwrap(),
        "--images",
        images.to_str().unwrap(),
        "--size",
        "160x160",
    ]);
    // 32 requests at once, every layer several times, some grids and some channels between.
    let handles: Vec<_> = (0..32)
        .map(|i| {
            let url = match i % 4 {
                3 => s.with_token(&format!(
                    "/api/activations?image=scene.png&layer={}&channel={}",
                    layers[i % 7],
                    i % 16
                )),
                _ => s.with_token(&format!(
                    "/api/activations?image=scene.png&layer={}&format=npy",
                    layers[i % 7]
                )),
            };
            std::thread::spawn(move || (i, request("GET", &url, &[], &[])))
        })
        .collect();
    for h in handles {
        let (i, r) = h.join().unwrap();
        assert_eq!(
            r.status,
            200,
            "request {i}: {}",
            String::from_utf8_lossy(&r.body)
        );
        if i % 4 == 3 {
            assert_eq!(r.content_type, "image/png");
            assert!(image::load_from_memory(&r.body).is_ok(), "request {i}");
        } else {
            assert_eq!(
                r.body,
                expected[i % 7],
                "request {i}: layer {} differs from the CLI's .npy",
                layers[i % 7]
            );
        }
    }
}

#[test]
fn filter_patterns_are_background_jobs_with_progress() {
    let s = Served::start(&[]);
    // Waiting for one returns the picture, and it is kept.
    let r = s.get("/api/filter?layer=conv2&channel=5&size=48&steps=10&wait=1");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let pattern = image::load_from_memory(&r.body).unwrap();
    assert_eq!((pattern.width(), pattern.height()), (48, 48));
    let again = s.get("/api/filter?layer=conv2&channel=5&size=48&steps=10&format=json");
    assert_eq!(
        (again.status, again.json()["state"].clone()),
        (200, "done".into())
    );
    // A long one reports progress while it runs, and stops when cancelled.
    let long = "/api/filter?layer=conv4&channel=1&size=256&steps=1000&format=json";
    let r = s.get(long);
    assert_eq!(r.status, 202);
    assert!(["queued", "running"].contains(&r.json()["state"].as_str().unwrap()));
    let mut done = 0;
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        done = s.get(long).json()["done"].as_u64().unwrap();
        if done > 0 {
            break;
        }
    }
    assert!(done > 0, "no progress reported");
    let r = s.send("DELETE", long.trim_end_matches("&format=json"), &[]);
    assert_eq!(r.status, 200);
    let mut state = String::new();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let jobs = s.get("/api/jobs").json();
        let job = jobs["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["what"] == "filter 1 of conv4")
            .cloned()
            .unwrap();
        state = job["state"].as_str().unwrap().to_string();
        if state == "cancelled" {
            assert!(job["done"].as_u64().unwrap() < 1000, "it stopped early");
            break;
        }
    }
    assert_eq!(state, "cancelled");
}
