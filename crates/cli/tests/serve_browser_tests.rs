//! `convscope serve` driven in headless Chromium over the DevTools protocol, as a person uses
//! it: load the page, see the layers, click a layer and a channel, read a value under the
//! cursor, wait for the filter pattern, click a class and see its map load, upload an image,
//! open a shared link, and see an error line for a bad one.

mod serve_util;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use convscope_test_support::TempDir;
use serde_json::{json, Value};
use serve_util::{demo_files, request, Served};
use tungstenite::{Message, WebSocket};

fn chromium() -> Option<PathBuf> {
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Headless Chromium with one page, driven over its DevTools WebSocket.
struct Browser {
    child: Child,
    _profile: TempDir,
    page: WebSocket<TcpStream>,
    next_id: u64,
}

impl Browser {
    fn launch(binary: &PathBuf) -> Browser {
        let profile = TempDir::new("chromium-serve");
        let mut child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1400,1000",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.root().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // Chromium says where its DevTools endpoint is on stderr.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let browser_ws = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromium printed its DevTools address");
        let host = browser_ws
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let targets = request("GET", &format!("http://{host}/json/list"), &[], &[]).json();
        let page_ws = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let stream = TcpStream::connect(&host).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let (page, _) = tungstenite::client(page_ws.as_str(), stream).expect("DevTools handshake");
        Browser {
            child,
            _profile: profile,
            page,
            next_id: 0,
        }
    }

    /// Calls a DevTools method and returns its result (events in between are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.page
            .send(Message::text(msg))
            .expect("send to chromium");
        loop {
            let reply = self.page.read().expect("read from chromium");
            let Message::Text(text) = reply else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
    }

    /// Evaluates JavaScript in the page (promises awaited) and returns its value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{expr}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Waits until `expr` is truthy (an exception, e.g. while a page loads, counts as not
    /// yet); panics with the page's error line after `secs`.
    fn wait_for(&mut self, expr: &str, secs: u64) -> Value {
        let start = Instant::now();
        loop {
            let r = self.call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            );
            let v = if r.get("exceptionDetails").is_some() {
                Value::Null
            } else {
                r["result"]["value"].clone()
            };
            if !(v.is_null() || v == false || v == 0 || v == "") {
                return v;
            }
            if start.elapsed() > Duration::from_secs(secs) {
                let error = self.eval("document.getElementById('error')?.textContent");
                panic!("waited {secs} s for `{expr}`; the page's error line: {error}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
    }

    /// A real mouse event at page coordinates `(x, y)`.
    fn mouse(&mut self, kind: &str, x: f64, y: f64) {
        let mut p = json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1});
        if kind == "mouseMoved" {
            p["button"] = json!("none");
        }
        self.call("Input.dispatchMouseEvent", p);
    }

    fn click(&mut self, x: f64, y: f64) {
        self.mouse("mousePressed", x, y);
        self.mouse("mouseReleased", x, y);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_page_works_in_a_real_browser() {
    let Some(binary) = chromium() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no Chromium found: .ci/run installs Debian's chromium");
        }
        eprintln!("skipping the browser test: Chromium is not installed");
        return;
    };
    let s = Served::start(&[]);
    let mut b = Browser::launch(&binary);
    b.navigate(&s.url);

    // The layer list.
    b.wait_for("document.body.dataset.layers === '1'", 30);
    let names =
        b.eval("[...document.querySelectorAll('#layers tbody tr')].map(r => r.dataset.layer)");
    for layer in ["conv1", "pool1", "conv2", "conv4", "classifier"] {
        assert!(
            names.as_array().unwrap().iter().any(|n| n == layer),
            "{layer} in {names}"
        );
    }
    b.wait_for(
        "document.querySelectorAll('#predictions li').length === 4",
        30,
    );

    // Click a layer: its grid loads.
    b.eval("document.querySelector('tr[data-layer=\"conv2\"]').click()");
    b.wait_for(
        "document.body.dataset.grids >= 1 && document.getElementById('grid-img').naturalWidth > 0",
        30,
    );
    assert!(b
        .eval("location.search")
        .as_str()
        .unwrap()
        .contains("layer=conv2"));

    // Click channel 5 in the grid with the mouse: the channel view opens.
    let at = b.eval(
        "(() => { const img = document.getElementById('grid-img'); img.scrollIntoView();
           const g = gridLayouts['grid-img']; const r = img.getBoundingClientRect();
           const s = img.clientWidth / img.naturalWidth; const k = 5;
           const x = g.x0 + (k % g.columns) * (g.cell_width + g.separator) + g.cell_width / 2;
           const y = g.y0 + Math.floor(k / g.columns) * (g.cell_height + g.separator) + g.cell_height / 2;
           return [r.left + x * s, r.top + y * s]; })()",
    );
    let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
    b.click(x, y);
    b.wait_for("document.body.dataset.channels >= 1", 30);
    assert_eq!(
        b.eval("document.getElementById('channel-name').textContent"),
        "5 of conv2"
    );
    assert!(b
        .eval("location.search")
        .as_str()
        .unwrap()
        .contains("channel=5"));

    // The value under the cursor.
    let at = b.eval(
        "(() => { const img = document.getElementById('channel-img'); img.scrollIntoView();
           const r = img.getBoundingClientRect(); return [r.left + r.width * 0.3, r.top + r.height * 0.4]; })()",
    );
    b.mouse(
        "mouseMoved",
        at[0].as_f64().unwrap(),
        at[1].as_f64().unwrap(),
    );
    let value = b.wait_for(
        "document.getElementById('channel-value').textContent.startsWith('row') && document.getElementById('channel-value').textContent",
        10,
    );
    assert!(value.as_str().unwrap().contains("column"), "{value}");

    // The filter pattern (Lucid's recipe) arrives through its background job; switching to the
    // walk-through's ascent starts that job and shows its picture.
    b.wait_for("document.body.dataset.filters >= 1 && document.getElementById('filter-img').naturalWidth > 0", 60);
    let lucid = b.eval("document.getElementById('filter-img').dataset.recipe");
    assert_eq!(lucid, "lucid", "the default recipe");
    b.eval("const r = document.getElementById('filter-recipe'); r.value = 'walkthrough'; r.dispatchEvent(new Event('change')); 0");
    b.wait_for("document.body.dataset.filters >= 2 && document.getElementById('filter-img').dataset.recipe === 'walkthrough' && document.getElementById('filter-img').naturalWidth > 0", 60);

    // Click a class: its Grad-CAM loads over the image.
    b.eval("document.querySelector('#predictions li[data-class=\"2\"]').click()");
    b.wait_for("document.body.dataset.overlays >= 1 && document.getElementById('cam-heat').naturalWidth > 0", 30);
    assert!(b
        .eval("document.getElementById('class-name').textContent")
        .as_str()
        .unwrap()
        .contains("triangle"));

    // Upload an image through the file input: it becomes the chosen image.
    let dir = TempDir::new("serve-browser-upload");
    let (_, images) = demo_files(dir.root());
    let file = images.join("scene.png");
    let input = b.call(
        "Runtime.evaluate",
        json!({"expression": "document.getElementById('upload')"}),
    );
    let object = input["result"]["objectId"].as_str().unwrap().to_string();
    b.call(
        "DOM.setFileInputFiles",
        json!({"files": [file.to_str().unwrap()], "objectId": object}),
    );
    b.wait_for("document.body.dataset.uploads >= 1", 30);
    assert!(b
        .eval("document.getElementById('image').value")
        .as_str()
        .unwrap()
        .starts_with("upload-"));
    b.wait_for("document.getElementById('input-img').naturalWidth > 0", 30);

    // A shared link opens its view.
    b.navigate(&format!("{}&image=scene&layer=conv3&channel=7", s.url));
    b.wait_for("document.body.dataset.channels >= 1", 30);
    assert_eq!(
        b.eval("document.getElementById('channel-name').textContent"),
        "7 of conv3"
    );

    // A bad link shows the server's one-line error.
    b.navigate(&format!("{}&layer=nope", s.url));
    let error = b.wait_for(
        "!document.getElementById('error').hidden && document.getElementById('error').textContent",
        30,
    );
    assert!(error.as_str().unwrap().contains("closest"), "{error}");
}

#[test]
fn a_clicked_channel_shows_the_folder_images_it_responds_to() {
    let Some(binary) = chromium() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no Chromium found: .ci/run installs Debian's chromium");
        }
        eprintln!("skipping the browser test: Chromium is not installed");
        return;
    };
    // A folder of 12 generated scenes (one shape each) beside the demo scene.
    let dir = TempDir::new("serve-browser-examples");
    let (_, images) = demo_files(dir.root());
    for i in 0..12u64 {
        let s = convscope_demo::scene::Sample::generate(500 + i);
        image::RgbImage::from_raw(s.image.width as u32, s.image.height as u32, s.image.data)
            .unwrap()
            .save(images.join(format!("shape{i:02}.png")))
            .unwrap();
    }
    let s = Served::start(&["--images", images.to_str().unwrap()]);
    let mut b = Browser::launch(&binary);
    b.navigate(&format!("{}&image=scene.png&layer=conv3&channel=2", s.url));
    b.wait_for("document.body.dataset.channels >= 1", 30);
    // The layer's examples job runs in the background, then nine crops at each end load.
    b.wait_for("document.body.dataset.examples >= 1", 60);
    b.wait_for(
        "[...document.querySelectorAll('#examples img')].filter(i => i.naturalWidth > 0).length === 18",
        30,
    );
    let state = b.eval("document.getElementById('examples-state').textContent");
    assert_eq!(state, "13 images", "{state}");
    let shown = b.eval(
        "[...document.querySelectorAll('#examples-top figcaption')].map(c => c.textContent.split(' · ')[1])",
    );
    // The page shows the server's ranking, best first.
    let api = s.get("/api/examples?layer=conv3&channel=2&wait=1");
    assert_eq!(api.status, 200);
    let ranking: Value = serde_json::from_slice(&api.body).unwrap();
    let names: Vec<&str> = ranking["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["image"].as_str().unwrap())
        .collect();
    assert_eq!(shown, json!(names));
    // Clicking an example opens that image.
    b.eval("document.querySelector('#examples-top figure').click()");
    b.wait_for(
        &format!("document.getElementById('image').value === '{}'", names[0]),
        30,
    );
    assert!(b
        .eval("location.search")
        .as_str()
        .unwrap()
        .contains(&format!("image={}", names[0])));
}
