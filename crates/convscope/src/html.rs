//! The HTML of convscope's pages, from one template engine (maud: markup checked by the
//! compiler, text escaped by default), shared by the reports and the viewer.

use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::activations::{Activations, GridStyle, LayerFiles};

/// The shared look of convscope's pages.
pub const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222;background:#fafafa}\
img{max-width:100%;image-rendering:pixelated;border:1px solid #ccc}h1{font-size:1.6em}h2{font-size:1.2em;margin-top:2em}\
table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:right}th:first-child,td:first-child{text-align:left}\
.caption{color:#555;font-size:.9em}section{margin-bottom:2em}";

/// Sets `data-images="loaded/total"` on `<body>` once the page has loaded (offline, no network),
/// so a headless browser test can read how many images rendered.
pub const IMAGE_CHECK_SCRIPT: &str =
    "window.addEventListener('load',function(){var i=document.images,n=0;\
for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0)n++;}\
document.body.setAttribute('data-images',n+'/'+i.length);});";

/// A whole page: `<head>` with the shared style, then `body`.
pub fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(PAGE_STYLE)) }
            }
            body {
                (body)
                script { (PreEscaped(IMAGE_CHECK_SCRIPT)) }
            }
        }
    }
    .into_string()
}

/// One layer's heading, statistics caption and grid.
pub(crate) fn layer_section(
    acts: &Activations,
    i: usize,
    files: &LayerFiles,
    heading_level3: bool,
) -> Markup {
    let a = &acts.layers()[i];
    let s = &a.stats;
    let shape = format!("{:?}", a.values.shape());
    let caption = format!(
        "mean {:.4}, std {:.4}, {:.1}% zeros, {} of {} channels blank",
        s.mean,
        s.std,
        100.0 * s.zero_fraction,
        s.blank_channels,
        s.channels
    );
    html! {
        @if heading_level3 {
            h3 { (a.selected.label) " " small { (shape) } }
            p.caption { (caption) }
        } @else {
            h2 { (a.selected.label) " " small { (shape) } }
            p.caption { (a.value_name) " — " (caption) }
        }
        @if let Some(g) = &files.grid {
            img src=(g) alt=(a.selected.label);
        }
        @if !heading_level3 {
            @for f in files.files.iter().filter(|f| Some(*f) != files.grid.as_ref()) {
                p {
                    @if f.ends_with(".png") {
                        img src=(f) alt=(f);
                    } @else {
                        a href=(f) { (f) }
                    }
                }
            }
        }
    }
}

/// The `index.html` of the `activations` command.
pub(crate) fn activations_page(
    acts: &Activations,
    written: &[LayerFiles],
    style: &GridStyle,
) -> String {
    let body = html! {
        h1 { "Activations of " (acts.model_source()) }
        p.caption {
            "Input " (acts.input().source()) " (" (acts.preprocess()) " preprocessing). Each grid shows every \
             channel of one layer, each channel standardised ((x−mean)/std·64+128) and coloured with "
            (style.colormap.name()) ". Blank channels are filters that found nothing in this image."
        }
        section { h2 { "Input" } img src="input.png" alt="input"; }
        @for (i, files) in written.iter().enumerate() {
            section { (layer_section(acts, i, files, false)) }
        }
    };
    page("convscope activations", body)
}
