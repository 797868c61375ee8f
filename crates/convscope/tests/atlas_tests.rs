//! Unit atlases as a person opens them: the demo model (every layer) over generated scenes and
//! two EfficientNet-Lite0 layers over real pictures, each page opened in headless Chromium with
//! every image loaded.

use convscope::atlas::{write_atlas, AtlasConfig, UnitPictures};
use convscope::examples::ExamplesConfig;
use convscope::output::OutputDir;
use convscope::prelude::*;
use convscope_test_support::browser::check_images_loaded;
use convscope_test_support::{shared, TempDir};

/// `<img` tags of a page (each must render).
fn images_on(page: &std::path::Path) -> usize {
    std::fs::read_to_string(page)
        .unwrap()
        .matches("<img ")
        .count()
}

#[test]
fn an_atlas_of_the_demo_model_renders_every_page() {
    let dir = TempDir::new("atlas-demo");
    for i in 0..48 {
        let s = convscope_demo::scene::Sample::generate(3_000 + i);
        let img =
            Image::from_rgb8(Size::new(s.image.width, s.image.height), &s.image.data).unwrap();
        img.to_picture()
            .save(dir.path(&format!("scene{i:02}.png")))
            .unwrap();
    }
    let model = Model::demo()
        .unwrap()
        .with_input(InputConfig::default().with_size(Size::square(64)));
    let cfg = AtlasConfig {
        examples: ExamplesConfig {
            layers: "conv1,pool1,conv2,conv3,conv4".into(),
            top: 4,
            ..ExamplesConfig::default()
        },
        pictures: Some(UnitPictures {
            recipe: Recipe::Walkthrough,
            size: Size::square(48),
            steps: Some(10),
            ..UnitPictures::default()
        }),
        ..AtlasConfig::default()
    };
    let site = dir.path("site");
    let mut out = OutputDir::create(&site).unwrap();
    let summary = write_atlas(&model, &dir.path(""), &cfg, &mut out, &NoProgress).unwrap();
    out.commit().unwrap();
    assert_eq!(summary.layers, 5);
    assert_eq!(summary.units, 16 + 16 + 32 + 32 + 64);
    // Every link of every page points at a file of the site.
    for entry in std::fs::read_dir(&site).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".html") {
            continue;
        }
        let html = std::fs::read_to_string(entry.path()).unwrap();
        for part in html
            .split("href=\"")
            .skip(1)
            .chain(html.split("src=\"").skip(1))
        {
            let target = &part[..part.find('"').unwrap()];
            assert!(
                site.join(target).exists(),
                "{name} links to missing {target}"
            );
        }
    }
    for page in [
        "index.html",
        "layer_conv4.html",
        "unit_conv4_0007.html",
        "unit_conv1_0000.html",
    ] {
        let path = site.join(page);
        check_images_loaded(&path, images_on(&path));
    }
    let unit = std::fs::read_to_string(site.join("unit_conv4_0007.html")).unwrap();
    assert!(unit.contains("unit_conv4_0006.html") && unit.contains("unit_conv4_0008.html"));
    assert!(unit.contains("10 steps of gradient ascent from grey noise"));
}

#[test]
fn an_atlas_of_two_efficientnet_layers_renders() {
    let (Some(model_path), Some(chelsea), Some(coffee)) = (
        shared("models/efficientnet_lite0.onnx"),
        shared("images/chelsea.png"),
        shared("images/coffee.png"),
    ) else {
        return;
    };
    let dir = TempDir::new("atlas-effnet");
    // Twelve real pictures: crops of the two shared images.
    for (k, src) in [chelsea, coffee].iter().enumerate() {
        let img = Image::open(src).unwrap();
        for i in 0..6 {
            let crop = img.crop(convscope::Region {
                x: i * 30,
                y: (i % 3) * 20,
                width: 240,
                height: 240,
            });
            crop.to_picture()
                .save(dir.path(&format!("img{k}_{i}.png")))
                .unwrap();
        }
    }
    let model = Model::load(&model_path)
        .unwrap()
        .with_input(InputConfig::imagenet());
    let cfg = AtlasConfig {
        examples: ExamplesConfig {
            layers: "_blocks.1._project_conv,_blocks.3._project_conv".into(),
            top: 3,
            ..ExamplesConfig::default()
        },
        pictures: Some(UnitPictures {
            size: Size::square(48),
            steps: Some(8),
            preprocess: Some(Preprocess::Imagenet),
            ..UnitPictures::default()
        }),
        ..AtlasConfig::default()
    };
    let site = dir.path("site");
    let mut out = OutputDir::create(&site).unwrap();
    let summary = write_atlas(&model, &dir.path(""), &cfg, &mut out, &NoProgress).unwrap();
    out.commit().unwrap();
    assert_eq!(summary.units, 24 + 40);
    // Lucid's recipe by default: a picture per unit, and the pages say how they were made.
    let unit = std::fs::read_to_string(site.join("unit_blocks.1._project_conv_0005.html")).unwrap();
    assert!(unit.contains("8 steps of Lucid"), "{unit}");
    let wants = std::fs::read_dir(&site)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("wants_"))
        .count();
    assert_eq!(wants, 24 + 40);
    for page in [
        "index.html",
        "layer_blocks.3._project_conv.html",
        "unit_blocks.1._project_conv_0005.html",
    ] {
        let path = site.join(page);
        assert!(path.exists(), "{page}");
        check_images_loaded(&path, images_on(&path));
    }
}
