//! Procedural scenes: a smooth colour gradient with mild noise, and shapes of four classes
//! (circle, square, triangle, a patch of stripes) drawn on it.
//!
//! Everything is deterministic: the same seed gives the same scene on every run (integer
//! arithmetic, IEEE `f32` operations and the standard library's `sin`, `cos`, `sqrt` and `ln`,
//! whose last bit could in principle differ between platforms' math libraries).
//!
//! ```
//! use convscope_demo::scene::{Sample, Shape, IMAGE_SIZE};
//!
//! let s = Sample::generate(7);
//! assert_eq!(s.image.width, IMAGE_SIZE);
//! assert_eq!(s.image.data.len(), IMAGE_SIZE * IMAGE_SIZE * 3);
//! assert!(s.bbox.width() >= 10 && s.bbox.x1 <= IMAGE_SIZE);
//! assert_eq!(Sample::generate(7), s); // same seed, same scene
//! let t = Sample::with_class(7, Shape::Stripes);
//! assert_eq!(t.class, Shape::Stripes);
//! ```

use std::f32::consts::PI;

/// Side of the square training images, in pixels.
pub const IMAGE_SIZE: usize = 64;

/// Smallest shape extent, in pixels.
pub const MIN_SHAPE: f32 = 14.0;

/// Largest shape extent, in pixels.
pub const MAX_SHAPE: f32 = 30.0;

/// Amplitude of the per-pixel uniform noise, in 0..255 units.
const NOISE: f32 = 6.0;

/// Minimal RGB distance (0..255 units) between a shape's colour and any background colour.
const MIN_CONTRAST: f32 = 110.0;

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny, fast, seedable generator with good
/// statistical quality, enough for procedural images and weight initialisation.
///
/// ```
/// use convscope_demo::scene::SplitMix64;
/// let mut a = SplitMix64::new(1);
/// let mut b = SplitMix64::new(1);
/// assert_eq!(a.next_u64(), b.next_u64());
/// let u = a.next_f32();
/// assert!((0.0..1.0).contains(&u));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.state)
    }

    /// Uniform in `[0, 1)` with 24 bits of precision.
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.next_f32()
    }

    /// Uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        // Multiply-shift: unbiased enough for the small `n` used here.
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }

    /// A standard normal sample (Box–Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
}

/// The SplitMix64 output function: a bijective 64-bit mixer.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seed for item `index` of a stream identified by `seed`: well separated for every pair of
/// arguments, so training batches, held-out sets and tests never share scenes by accident.
pub fn derive_seed(seed: u64, index: u64) -> u64 {
    mix64(seed ^ mix64(index.wrapping_add(0x632B_E59B_D9B4_E019)))
}

/// The four shape classes, in the model's output order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Shape {
    /// A filled disc (class 0).
    Circle,
    /// A filled, rotated square (class 1).
    Square,
    /// A filled, rotated equilateral triangle (class 2).
    Triangle,
    /// A rotated square patch of 3–4 parallel bars (class 3).
    Stripes,
}

impl Shape {
    /// All classes in output order.
    pub const ALL: [Shape; 4] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Stripes,
    ];

    /// The class index (model output position).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class with this index, if any.
    pub fn from_index(i: usize) -> Option<Shape> {
        Shape::ALL.get(i).copied()
    }

    /// Lower-case class name (`circle`, `square`, `triangle`, `stripes`).
    pub fn name(self) -> &'static str {
        crate::CLASSES[self.index()]
    }
}

/// An axis-aligned pixel box: columns `x0..x1` and rows `y0..y1` (end exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BBox {
    /// First column.
    pub x0: usize,
    /// First row.
    pub y0: usize,
    /// One past the last column.
    pub x1: usize,
    /// One past the last row.
    pub y1: usize,
}

impl BBox {
    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.x1.saturating_sub(self.x0)
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.y1.saturating_sub(self.y0)
    }

    /// Whether pixel `(x, y)` lies in the box grown by `margin` pixels on every side.
    ///
    /// ```
    /// use convscope_demo::scene::BBox;
    /// let b = BBox { x0: 10, y0: 10, x1: 20, y1: 20 };
    /// assert!(b.contains(19, 10, 0) && !b.contains(20, 10, 0) && b.contains(22, 8, 3));
    /// ```
    pub fn contains(&self, x: usize, y: usize, margin: usize) -> bool {
        x + margin >= self.x0
            && x < self.x1 + margin
            && y + margin >= self.y0
            && y < self.y1 + margin
    }

    /// Whether the two boxes share a pixel.
    pub fn overlaps(&self, other: &BBox) -> bool {
        self.x0 < other.x1 && other.x0 < self.x1 && self.y0 < other.y1 && other.y0 < self.y1
    }
}

/// An RGB image, rows top to bottom, 3 bytes per pixel (HWC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes, `R G B` per pixel.
    pub data: Vec<u8>,
}

impl Image {
    /// The image as planar `f32` in `[0, 1]` (CHW, the model's "unit" preprocessing without the
    /// batch dimension).
    pub fn to_chw_unit(&self) -> Vec<f32> {
        let plane = self.width * self.height;
        let mut out = vec![0.0; plane * 3];
        for (p, px) in self.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * plane + p] = f32::from(px[c]) / 255.0;
            }
        }
        out
    }
}

/// One labelled training scene: a single shape on a gradient background.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// The 64×64 RGB image.
    pub image: Image,
    /// Which shape is drawn.
    pub class: Shape,
    /// The pixels the shape touches.
    pub bbox: BBox,
}

impl Sample {
    /// A 64×64 scene with a shape of a random class.
    pub fn generate(seed: u64) -> Sample {
        let mut rng = SplitMix64::new(seed);
        let class = Shape::ALL[rng.below(4)];
        Sample::draw(&mut rng, class)
    }

    /// A 64×64 scene with a shape of the given class.
    pub fn with_class(seed: u64, class: Shape) -> Sample {
        let mut rng = SplitMix64::new(seed);
        Sample::draw(&mut rng, class)
    }

    fn draw(rng: &mut SplitMix64, class: Shape) -> Sample {
        let mut canvas = Canvas::new(rng, IMAGE_SIZE, IMAGE_SIZE);
        let extent = rng.range(MIN_SHAPE, MAX_SHAPE);
        let geometry = Geometry::random(rng, class, extent);
        let (lo_x, hi_x, lo_y, hi_y) = geometry.extent();
        // Keep the whole shape inside the image with a 2-pixel margin.
        let margin = 2.0;
        let size = IMAGE_SIZE as f32;
        let cx = rng.range(margin - lo_x, size - margin - hi_x);
        let cy = rng.range(margin - lo_y, size - margin - hi_y);
        let colour = canvas.contrasting_colour(rng);
        let bbox = canvas.draw(&geometry, cx, cy, colour);
        Sample {
            image: canvas.finish(rng),
            class,
            bbox,
        }
    }
}

/// Smallest side of a [`scene_with_all_classes`] scene: each quadrant must hold a shape of
/// [`MAX_SHAPE`] pixels with a margin.
pub const MIN_SCENE_SIZE: usize = 96;

/// A larger scene with one shape of every class, each in its own quadrant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiScene {
    /// The RGB image.
    pub image: Image,
    /// The box of each class's shape, indexed by class ([`Shape::index`]).
    pub boxes: [BBox; 4],
}

/// A `size`×`size` scene (`size >= 96`) with one shape of each class at non-overlapping,
/// known positions: each class gets one quadrant (which one depends on the seed), the shape
/// is placed at random inside it with a margin, so boxes never overlap.
///
/// ```
/// use convscope_demo::scene::scene_with_all_classes;
/// let s = scene_with_all_classes(3, 160);
/// assert_eq!((s.image.width, s.image.height), (160, 160));
/// for (i, a) in s.boxes.iter().enumerate() {
///     for b in &s.boxes[i + 1..] {
///         assert!(!a.overlaps(b));
///     }
/// }
/// ```
pub fn scene_with_all_classes(seed: u64, size: usize) -> MultiScene {
    assert!(
        size >= MIN_SCENE_SIZE,
        "scene size {size} is below {MIN_SCENE_SIZE}"
    );
    let mut rng = SplitMix64::new(seed);
    let mut canvas = Canvas::new(&mut rng, size, size);
    // Shuffle the quadrants (Fisher–Yates).
    let mut quadrants = [0usize, 1, 2, 3];
    for i in (1..4).rev() {
        quadrants.swap(i, rng.below(i + 1));
    }
    let half = size as f32 / 2.0;
    let mut boxes = [BBox::default(); 4];
    for class in Shape::ALL {
        let q = quadrants[class.index()];
        let (qx, qy) = ((q % 2) as f32 * half, (q / 2) as f32 * half);
        let max_extent = MAX_SHAPE.min(half - 8.0);
        let extent = rng.range((MIN_SHAPE + 6.0).min(max_extent), max_extent);
        let geometry = Geometry::random(&mut rng, class, extent);
        let (lo_x, hi_x, lo_y, hi_y) = geometry.extent();
        let margin = 4.0;
        let cx = qx + rng.range(margin - lo_x, half - margin - hi_x);
        let cy = qy + rng.range(margin - lo_y, half - margin - hi_y);
        let colour = canvas.contrasting_colour(&mut rng);
        boxes[class.index()] = canvas.draw(&geometry, cx, cy, colour);
    }
    MultiScene {
        image: canvas.finish(&mut rng),
        boxes,
    }
}

/// A shape centred on the origin, in pixel units.
#[derive(Clone, Debug)]
enum Geometry {
    Circle {
        r: f32,
    },
    /// Convex polygon, counter-clockwise in image coordinates (y down).
    Polygon(Vec<(f32, f32)>),
    /// Square patch of half-side `half`, rotated by (`cos`, `sin`), bars of width `bar`
    /// separated by gaps of the same width.
    Stripes {
        half: f32,
        cos: f32,
        sin: f32,
        bar: f32,
    },
}

impl Geometry {
    /// A shape of `class` whose axis-aligned extent is about `extent` pixels.
    fn random(rng: &mut SplitMix64, class: Shape, extent: f32) -> Geometry {
        let angle = rng.range(0.0, 2.0 * PI);
        let (sin, cos) = angle.sin_cos();
        // Side of a square rotated by `angle` whose bounding box is `extent` wide.
        let side = extent / (cos.abs() + sin.abs());
        match class {
            Shape::Circle => Geometry::Circle { r: extent / 2.0 },
            Shape::Square => {
                let h = side / 2.0;
                Geometry::Polygon(
                    [(-h, -h), (h, -h), (h, h), (-h, h)]
                        .iter()
                        .map(|&(x, y)| (x * cos - y * sin, x * sin + y * cos))
                        .collect(),
                )
            }
            Shape::Triangle => {
                // Equilateral; circumradius so that the side (the widest extent) is `extent`.
                let r = extent / 3f32.sqrt();
                Geometry::Polygon(
                    (0..3)
                        .map(|k| {
                            let a = angle + k as f32 * 2.0 * PI / 3.0;
                            (r * a.cos(), r * a.sin())
                        })
                        .collect(),
                )
            }
            Shape::Stripes => {
                // Stripes look best when the patch is a little larger than a solid shape.
                let side = side * 1.1;
                let bars = 3 + rng.below(2);
                Geometry::Stripes {
                    half: side / 2.0,
                    cos,
                    sin,
                    bar: side / (2 * bars - 1) as f32,
                }
            }
        }
    }

    /// `(min x, max x, min y, max y)` of the shape around its centre.
    fn extent(&self) -> (f32, f32, f32, f32) {
        let corners = |pts: &[(f32, f32)]| {
            pts.iter().fold(
                (f32::MAX, f32::MIN, f32::MAX, f32::MIN),
                |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
            )
        };
        match self {
            Geometry::Circle { r } => (-r, *r, -r, *r),
            Geometry::Polygon(p) => corners(p),
            Geometry::Stripes { half, cos, sin, .. } => {
                let h = *half;
                let pts: Vec<(f32, f32)> = [(-h, -h), (h, -h), (h, h), (-h, h)]
                    .iter()
                    .map(|&(x, y)| (x * cos - y * sin, x * sin + y * cos))
                    .collect();
                corners(&pts)
            }
        }
    }

    /// Whether the point `(x, y)` (relative to the centre) is inside the shape.
    fn inside(&self, x: f32, y: f32) -> bool {
        match self {
            Geometry::Circle { r } => x * x + y * y <= r * r,
            Geometry::Polygon(p) => (0..p.len()).all(|i| {
                let (ax, ay) = p[i];
                let (bx, by) = p[(i + 1) % p.len()];
                (bx - ax) * (y - ay) - (by - ay) * (x - ax) >= 0.0
            }),
            Geometry::Stripes {
                half,
                cos,
                sin,
                bar,
            } => {
                // Rotate into the patch frame.
                let u = x * cos + y * sin;
                let v = -x * sin + y * cos;
                u.abs() <= *half && v.abs() <= *half && ((u + half) / bar) as i64 % 2 == 0
            }
        }
    }
}

/// A background being painted on, in `f32` 0..255 RGB.
struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<[f32; 3]>,
    /// The two ends of the background gradient.
    ends: [[f32; 3]; 2],
}

impl Canvas {
    /// A smooth linear gradient between two random colours along a random direction.
    fn new(rng: &mut SplitMix64, width: usize, height: usize) -> Canvas {
        let mut colour = || {
            [
                rng.range(0.0, 255.0),
                rng.range(0.0, 255.0),
                rng.range(0.0, 255.0),
            ]
        };
        let ends = [colour(), colour()];
        let angle = rng.range(0.0, 2.0 * PI);
        let (dy, dx) = angle.sin_cos();
        let (w, h) = (width as f32, height as f32);
        // Projection of the corners onto the direction, to map the image onto t in [0, 1].
        let proj = |x: f32, y: f32| (x - w / 2.0) * dx + (y - h / 2.0) * dy;
        let span = proj(0.0, 0.0)
            .abs()
            .max(proj(w, 0.0).abs())
            .max(proj(0.0, h).abs())
            .max(proj(w, h).abs());
        let mut pixels = Vec::with_capacity(width * height);
        for y in 0..height {
            for x in 0..width {
                let t = (proj(x as f32 + 0.5, y as f32 + 0.5) / span * 0.5 + 0.5).clamp(0.0, 1.0);
                pixels.push(std::array::from_fn(|c| {
                    ends[0][c] + (ends[1][c] - ends[0][c]) * t
                }));
            }
        }
        Canvas {
            width,
            height,
            pixels,
            ends,
        }
    }

    /// A colour at least `MIN_CONTRAST` away from every colour of the background gradient.
    fn contrasting_colour(&self, rng: &mut SplitMix64) -> [f32; 3] {
        let [a, b] = self.ends;
        let dist_to_gradient = |p: [f32; 3]| {
            let ab: [f32; 3] = std::array::from_fn(|c| b[c] - a[c]);
            let ap: [f32; 3] = std::array::from_fn(|c| p[c] - a[c]);
            let len2: f32 = ab.iter().map(|v| v * v).sum();
            let t = if len2 > 0.0 {
                (ab.iter().zip(&ap).map(|(u, v)| u * v).sum::<f32>() / len2).clamp(0.0, 1.0)
            } else {
                0.0
            };
            (0..3)
                .map(|c| (ap[c] - t * ab[c]).powi(2))
                .sum::<f32>()
                .sqrt()
        };
        let mut best = [0.0; 3];
        let mut best_d = -1.0;
        for _ in 0..64 {
            let p = [
                rng.range(0.0, 255.0),
                rng.range(0.0, 255.0),
                rng.range(0.0, 255.0),
            ];
            let d = dist_to_gradient(p);
            if d >= MIN_CONTRAST {
                return p;
            }
            if d > best_d {
                (best, best_d) = (p, d);
            }
        }
        // Also try the corners of the colour cube: one of them is always far from a segment.
        for k in 0..8 {
            let p = [0, 1, 2].map(|c| if (k >> c) & 1 == 1 { 255.0 } else { 0.0 });
            let d = dist_to_gradient(p);
            if d > best_d {
                (best, best_d) = (p, d);
            }
        }
        best
    }

    /// Paints `shape` centred at `(cx, cy)` with 4×4 supersampled anti-aliasing; returns the box
    /// of the pixels it touches.
    fn draw(&mut self, shape: &Geometry, cx: f32, cy: f32, colour: [f32; 3]) -> BBox {
        const SS: usize = 4;
        let (lo_x, hi_x, lo_y, hi_y) = shape.extent();
        let x_from = (cx + lo_x - 1.0).floor().max(0.0) as usize;
        let x_to = ((cx + hi_x + 1.0).ceil().max(0.0) as usize).min(self.width);
        let y_from = (cy + lo_y - 1.0).floor().max(0.0) as usize;
        let y_to = ((cy + hi_y + 1.0).ceil().max(0.0) as usize).min(self.height);
        let mut bbox = BBox {
            x0: usize::MAX,
            y0: usize::MAX,
            x1: 0,
            y1: 0,
        };
        for y in y_from..y_to {
            for x in x_from..x_to {
                let mut hits = 0;
                for sy in 0..SS {
                    for sx in 0..SS {
                        let px = x as f32 + (sx as f32 + 0.5) / SS as f32 - cx;
                        let py = y as f32 + (sy as f32 + 0.5) / SS as f32 - cy;
                        hits += usize::from(shape.inside(px, py));
                    }
                }
                if hits == 0 {
                    continue;
                }
                let a = hits as f32 / (SS * SS) as f32;
                let p = &mut self.pixels[y * self.width + x];
                for c in 0..3 {
                    p[c] += (colour[c] - p[c]) * a;
                }
                bbox.x0 = bbox.x0.min(x);
                bbox.y0 = bbox.y0.min(y);
                bbox.x1 = bbox.x1.max(x + 1);
                bbox.y1 = bbox.y1.max(y + 1);
            }
        }
        bbox
    }

    /// Adds mild uniform noise and quantises to bytes.
    fn finish(self, rng: &mut SplitMix64) -> Image {
        let mut data = Vec::with_capacity(self.pixels.len() * 3);
        for p in &self.pixels {
            for v in p {
                let n = rng.range(-NOISE, NOISE);
                data.push(((v + n).clamp(0.0, 255.0) + 0.5) as u8);
            }
        }
        Image {
            width: self.width,
            height: self.height,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_reference_values() {
        // Reference outputs of SplitMix64 seeded with 1234567 (from the original paper's code).
        let mut r = SplitMix64::new(1_234_567);
        assert_eq!(r.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(r.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn uniform_and_normal_are_sane() {
        let mut r = SplitMix64::new(9);
        let n = 20_000;
        let (mut s, mut s2) = (0.0f64, 0.0f64);
        let mut counts = [0usize; 4];
        for _ in 0..n {
            let z = f64::from(r.normal());
            s += z;
            s2 += z * z;
            counts[r.below(4)] += 1;
        }
        let mean = s / n as f64;
        let var = s2 / n as f64 - mean * mean;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        assert!(
            counts.iter().all(|&c| (4_600..5_400).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn samples_are_deterministic_varied_and_inside() {
        let mut classes = [0usize; 4];
        for i in 0..400 {
            let s = Sample::generate(derive_seed(5, i));
            classes[s.class.index()] += 1;
            let b = s.bbox;
            assert!(
                b.x0 >= 1 && b.y0 >= 1 && b.x1 < IMAGE_SIZE && b.y1 < IMAGE_SIZE,
                "{b:?}"
            );
            let (w, h) = (b.width(), b.height());
            assert!(
                (8..=34).contains(&w) && (8..=34).contains(&h),
                "{:?} {b:?}",
                s.class
            );
            assert_eq!(s, Sample::generate(derive_seed(5, i)));
        }
        assert!(classes.iter().all(|&c| c > 70), "{classes:?}");
    }

    #[test]
    fn shape_contrasts_with_background() {
        for i in 0..50 {
            let s = Sample::with_class(derive_seed(6, i), Shape::Circle);
            let b = s.bbox;
            let (cx, cy) = ((b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2);
            let px = |x: usize, y: usize| {
                let o = (y * IMAGE_SIZE + x) * 3;
                [0, 1, 2].map(|c| f32::from(s.image.data[o + c]))
            };
            let inside = px(cx, cy);
            // A background pixel next to the box.
            let (ox, oy) = if b.x0 >= 2 {
                (b.x0 - 2, cy)
            } else {
                (b.x1 + 1, cy)
            };
            let outside = px(ox, oy);
            let d: f32 = (0..3)
                .map(|c| (inside[c] - outside[c]).powi(2))
                .sum::<f32>()
                .sqrt();
            assert!(d > 70.0, "seed {i}: {inside:?} vs {outside:?}");
        }
    }

    #[test]
    fn all_class_scene_has_disjoint_boxes() {
        for seed in 0..40 {
            let size = [96, 128, 160, 224][seed as usize % 4];
            let s = scene_with_all_classes(seed, size);
            for (i, a) in s.boxes.iter().enumerate() {
                assert!(a.width() >= 14 && a.x1 <= size && a.y1 <= size, "{a:?}");
                for b in &s.boxes[i + 1..] {
                    assert!(!a.overlaps(b), "{a:?} {b:?}");
                }
            }
        }
    }
}
