//! The viewer as a library: a server started in-process, a job whose page went away.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use convscope_viewer::{ServeConfig, Server};

/// `GET path` (token added); returns (status, body).
fn get(server: &Server, path: &str) -> (u16, String) {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut s = TcpStream::connect(server.addr()).unwrap();
    write!(
        s,
        "GET {path}{sep}token={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        server.token()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
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
    let first = Server::start(
        convscope::Model::demo().unwrap(),
        ServeConfig {
            port: 0,
            ..ServeConfig::default()
        },
    )
    .unwrap();
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
