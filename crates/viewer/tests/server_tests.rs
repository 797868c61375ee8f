//! The viewer as a library: a server started in-process, a job whose page went away.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use convscope_viewer::{ServeConfig, Server};

/// The demo model served on a free port.
fn demo_server() -> Server {
    Server::start(
        convscope::Model::demo().unwrap(),
        ServeConfig {
            port: 0,
            ..ServeConfig::default()
        },
    )
    .unwrap()
}

/// `GET path` (token added); returns (status, body as lossy UTF-8).
fn get(server: &Server, path: &str) -> (u16, String) {
    let (status, body) = get_bytes(server, path);
    // PNG bodies arrive too; their bytes are compared as (lossy) text.
    (status, String::from_utf8_lossy(&body).to_string())
}

/// `GET path` (token added); returns (status, body bytes).
fn get_bytes(server: &Server, path: &str) -> (u16, Vec<u8>) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut s = TcpStream::connect(server.addr()).unwrap();
    write!(
        s,
        "GET {path}{sep}token={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        server.token()
    )
    .unwrap();
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes).unwrap();
    let status = String::from_utf8_lossy(&bytes[9..12]).parse().unwrap();
    let start = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |i| i + 4);
    (status, bytes[start..].to_vec())
}

/// The page asks for grids at one pixel per value and without the title, and the browser
/// enlarges them: every cell must be the CLI-style grid's cell, pixel for pixel, and the
/// JSON layout must describe the picture the same parameters give.
#[test]
fn the_page_grid_is_the_full_grid_at_one_pixel_per_value() {
    use convscope::lower::image::image::{load_from_memory, RgbImage};
    let server = demo_server();
    let fetch = |query: &str| -> (serde_json::Value, RgbImage, usize) {
        let (status, json) = get(
            &server,
            &format!("/api/activations?image=scene&layer=conv4{query}&format=json"),
        );
        assert_eq!(status, 200, "{json}");
        let layout: serde_json::Value = serde_json::from_str(&json).unwrap();
        let (status, png) = get_bytes(
            &server,
            &format!("/api/activations?image=scene&layer=conv4{query}"),
        );
        assert_eq!(status, 200);
        let picture = load_from_memory(&png).unwrap().to_rgb8();
        (layout, picture, png.len())
    };
    let (big_json, big, _) = fetch("");
    let (small_json, small, small_bytes) = fetch("&cell=1&title=0");
    let channels = small_json["shape"][1].as_u64().unwrap() as u32;
    let (big_layout, small_layout) = (&big_json["grid"], &small_json["grid"]);
    let n = |g: &serde_json::Value, k: &str| g[k].as_u64().unwrap() as u32;
    for (g, p) in [(big_layout, &big), (small_layout, &small)] {
        assert_eq!((n(g, "width"), n(g, "height")), p.dimensions());
    }
    assert_eq!(n(small_layout, "y0"), 0, "no title bar");
    assert!(n(big_layout, "y0") > 0, "the full grid has its title");
    let k = n(big_layout, "cell_width") / n(small_layout, "cell_width");
    assert!(k > 1, "the demo's conv4 maps are enlarged in the full grid");
    let cols = n(small_layout, "columns");
    let mut compared = 0;
    for c in 0..channels {
        let (col, row) = (c % cols, c / cols);
        let origin = |g: &serde_json::Value| {
            (
                n(g, "x0") + col * (n(g, "cell_width") + n(g, "separator")),
                n(g, "y0") + row * (n(g, "cell_height") + n(g, "separator")),
            )
        };
        let ((sx, sy), (bx, by)) = (origin(small_layout), origin(big_layout));
        for y in 0..n(small_layout, "cell_height") {
            for x in 0..n(small_layout, "cell_width") {
                assert_eq!(
                    small.get_pixel(sx + x, sy + y),
                    big.get_pixel(bx + x * k, by + y * k),
                    "channel {c} at ({x}, {y})"
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 1000);
    // Sent uncompressed (fast compression saves little at one pixel per value).
    assert!(small_bytes >= (small.width() * small.height() * 3) as usize);
}

#[test]
fn a_job_nobody_asks_about_is_cancelled_after_its_lease() {
    let server = Server::start(
        convscope::Model::demo().unwrap(),
        ServeConfig {
            port: 0,
            job_lease: Duration::from_millis(300),
            ..ServeConfig::default()
        },
    )
    .unwrap();
    assert!(server.url().starts_with("http://127.0.0.1:"));
    let long = "/api/filter?layer=conv4&channel=3&size=256&steps=1000&format=json";
    let (status, _) = get(&server, long);
    assert_eq!(status, 202);
    // Nobody polls: within a few leases the job stops, far from its 1000 steps.
    let start = Instant::now();
    loop {
        let (_, jobs) = get(&server, "/api/jobs");
        let jobs: serde_json::Value = serde_json::from_str(&jobs).unwrap();
        let job = &jobs["jobs"][0];
        if job["state"] == "cancelled" {
            assert!(job["done"].as_u64().unwrap() < 1000);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the abandoned job still runs: {job}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Asking again starts it anew.
    let (status, body) = get(&server, long);
    assert_eq!(status, 202, "{body}");
}

#[test]
fn a_port_in_use_is_one_line_error() {
    let first = demo_server();
    let e = Server::start(
        convscope::Model::demo().unwrap(),
        ServeConfig {
            port: first.addr().port(),
            ..ServeConfig::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with("cannot listen on 127.0.0.1:") && !e.contains('\n'),
        "{e}"
    );
}

/// `/api/filter` makes Lucid's picture by default and the walk-through's or MaCo's on request,
/// each its own job and picture; an unknown recipe is a 400 naming the recipes.
#[test]
fn filter_patterns_come_by_each_recipe() {
    let server = demo_server();
    let mut bodies = Vec::new();
    for recipe in ["", "&recipe=walkthrough", "&recipe=maco"] {
        let path = format!("/api/filter?layer=conv2&channel=1&size=32&steps=3&wait=1{recipe}");
        let (status, body) = get(&server, &path);
        assert_eq!(status, 200, "{path}");
        bodies.push(body);
    }
    assert!(bodies.iter().all(|b| b.contains("PNG")));
    assert_ne!(
        bodies[0], bodies[1],
        "lucid and walkthrough pictures differ"
    );
    assert_ne!(bodies[0], bodies[2], "lucid and maco pictures differ");
    let (_, jobs) = get(&server, "/api/jobs");
    for recipe in ["|lucid|", "|walkthrough|", "|maco|"] {
        assert!(jobs.contains(recipe), "{recipe} job missing from {jobs}");
    }
    let (status, body) = get(
        &server,
        "/api/filter?layer=conv2&channel=1&recipe=deepdream",
    );
    assert_eq!(status, 400);
    assert!(
        body.contains("deepdream") && body.contains("lucid"),
        "{body}"
    );
}

#[path = "../../methods/tests/transformer_models/mod.rs"]
mod transformer_models;

/// On a ViT-style model the Grad-CAM JSON says how the token layer became a grid (the page
/// shows it in the caption); on the demo CNN there is no rule to tell.
#[test]
fn cam_json_names_the_token_rule_of_a_vit() {
    let vit =
        convscope::Model::from_bytes(&transformer_models::vit_style().encode(), "vit").unwrap();
    let server = Server::start(
        vit,
        ServeConfig {
            port: 0,
            ..ServeConfig::default()
        },
    )
    .unwrap();
    let (status, body) = get(&server, "/api/cam?image=scene&class=0&format=json");
    assert_eq!(status, 200, "{body}");
    let meta: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        meta["map_rule"], "tokens: class token dropped, 4x4 grid",
        "{meta}"
    );
    let demo = demo_server();
    let (_, body) = get(&demo, "/api/cam?image=scene&class=0&format=json");
    let meta: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(meta["map_rule"].is_null(), "{meta}");
}
