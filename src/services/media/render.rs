//! Thumbnails: which stored size answers a request (pure), and rendering one from an image
//! (PNG, JPEG, GIF, WebP; blocking, run on the blocking pool). `scale` fits the image within the
//! size keeping its aspect ratio (never enlarging it); `crop` fills the size exactly, cutting the
//! centre of the image. A JPEG gives a JPEG thumbnail, other formats a PNG (transparency kept);
//! animations give a still of their first frame.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, imageops::FilterType};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Crop,
    Scale,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Crop => "crop",
            Method::Scale => "scale",
        }
    }

    /// The spec's method of a request (`scale` when absent or unknown).
    pub fn from_ruma(method: Option<&ruma::media::Method>) -> Self {
        match method {
            Some(ruma::media::Method::Crop) => Method::Crop,
            _ => Method::Scale,
        }
    }

    pub fn to_ruma(self) -> ruma::media::Method {
        match self {
            Method::Crop => ruma::media::Method::Crop,
            Method::Scale => ruma::media::Method::Scale,
        }
    }
}

/// The sizes thumbnails are generated at (the spec's suggested list).
pub const SIZES: [(u32, u32, Method); 5] = [
    (32, 32, Method::Crop),
    (96, 96, Method::Crop),
    (320, 240, Method::Scale),
    (640, 480, Method::Scale),
    (800, 600, Method::Scale),
];

/// The stored size answering a request: the smallest size of the method at least as large as
/// asked, else the largest size of the method.
pub fn choose_size(width: u32, height: u32, method: Method) -> (u32, u32) {
    let of_method = || SIZES.iter().filter(move |s| s.2 == method);
    of_method()
        .filter(|s| s.0 >= width && s.1 >= height)
        .min_by_key(|s| u64::from(s.0) * u64::from(s.1))
        .or_else(|| of_method().max_by_key(|s| u64::from(s.0) * u64::from(s.1)))
        .map(|s| (s.0, s.1))
        .expect("every method has sizes")
}

/// `scale`: the largest size within `max_w` × `max_h` with the source's aspect ratio, never
/// larger than the source, at least 1 × 1.
pub fn scaled_dimensions(src_w: u32, src_h: u32, max_w: u32, max_h: u32) -> (u32, u32) {
    if src_w <= max_w && src_h <= max_h {
        return (src_w.max(1), src_h.max(1));
    }
    let (sw, sh, mw, mh) = (
        u64::from(src_w),
        u64::from(src_h),
        u64::from(max_w),
        u64::from(max_h),
    );
    // Compare src_w/src_h with max_w/max_h without floating point.
    if sw * mh >= sh * mw {
        // Width-bound.
        let h = (sh * mw + sw / 2) / sw;
        (max_w.max(1), (h as u32).clamp(1, max_h.max(1)))
    } else {
        let w = (sw * mh + sh / 2) / sh;
        ((w as u32).clamp(1, max_w.max(1)), max_h.max(1))
    }
}

/// `crop`: the centred region of the source (x, y, width, height) with the aspect ratio of
/// `w` × `h`, as large as possible.
pub fn crop_region(src_w: u32, src_h: u32, w: u32, h: u32) -> (u32, u32, u32, u32) {
    let (sw, sh, tw, th) = (
        u64::from(src_w),
        u64::from(src_h),
        u64::from(w.max(1)),
        u64::from(h.max(1)),
    );
    if sw * th >= sh * tw {
        // The source is wider: keep its height, cut the sides.
        let cw = ((sh * tw) / th).clamp(1, sw) as u32;
        ((src_w - cw) / 2, 0, cw, src_h)
    } else {
        let ch = ((sw * th) / tw).clamp(1, sh) as u32;
        (0, (src_h - ch) / 2, src_w, ch)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ThumbnailError {
    #[error("the content is not an image that can be thumbnailed")]
    NotAnImage,
    #[error("the image is too large to thumbnail")]
    TooLarge,
}

/// A rendered thumbnail.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub width: u32,
    pub height: u32,
}

/// Renders a thumbnail of `source` at `width` × `height` with `method`. Blocking.
pub fn render(
    source: &[u8],
    width: u32,
    height: u32,
    method: Method,
    max_pixels: u64,
) -> Result<Rendered, ThumbnailError> {
    let reader = ImageReader::new(Cursor::new(source))
        .with_guessed_format()
        .map_err(|_| ThumbnailError::NotAnImage)?;
    let format = match reader.format() {
        Some(f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP)) => {
            f
        }
        _ => return Err(ThumbnailError::NotAnImage),
    };
    let (src_w, src_h) = ImageReader::with_format(Cursor::new(source), format)
        .into_dimensions()
        .map_err(|_| ThumbnailError::NotAnImage)?;
    if u64::from(src_w) * u64::from(src_h) > max_pixels {
        return Err(ThumbnailError::TooLarge);
    }
    let mut reader = ImageReader::with_format(Cursor::new(source), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(src_w);
    limits.max_image_height = Some(src_h);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ThumbnailError::TooLarge,
        _ => ThumbnailError::NotAnImage,
    })?;
    let thumbnail = match method {
        Method::Scale => {
            let (w, h) = scaled_dimensions(src_w, src_h, width, height);
            if (w, h) == (src_w, src_h) {
                image
            } else {
                image.resize_exact(w, h, FilterType::Triangle)
            }
        }
        Method::Crop => {
            let (x, y, cw, ch) = crop_region(src_w, src_h, width, height);
            image.crop_imm(x, y, cw, ch).resize_exact(
                width.max(1),
                height.max(1),
                FilterType::Triangle,
            )
        }
    };
    encode(thumbnail, format)
}

fn encode(image: DynamicImage, source_format: ImageFormat) -> Result<Rendered, ThumbnailError> {
    let (width, height) = (image.width(), image.height());
    let mut bytes = Vec::new();
    let content_type = if source_format == ImageFormat::Jpeg {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85);
        DynamicImage::ImageRgb8(image.to_rgb8())
            .write_with_encoder(encoder)
            .map_err(|_| ThumbnailError::NotAnImage)?;
        "image/jpeg"
    } else {
        let image = if image.color().has_alpha() {
            DynamicImage::ImageRgba8(image.to_rgba8())
        } else {
            DynamicImage::ImageRgb8(image.to_rgb8())
        };
        image
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .map_err(|_| ThumbnailError::NotAnImage)?;
        "image/png"
    };
    Ok(Rendered {
        bytes,
        content_type,
        width,
        height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smallest_large_enough_size_is_chosen() {
        assert_eq!(choose_size(32, 32, Method::Crop), (32, 32));
        assert_eq!(choose_size(33, 20, Method::Crop), (96, 96));
        assert_eq!(choose_size(200, 200, Method::Crop), (96, 96));
        assert_eq!(choose_size(1, 1, Method::Scale), (320, 240));
        assert_eq!(choose_size(320, 241, Method::Scale), (640, 480));
        assert_eq!(choose_size(641, 10, Method::Scale), (800, 600));
        assert_eq!(choose_size(4000, 4000, Method::Scale), (800, 600));
    }

    #[test]
    fn scale_fits_within_and_keeps_the_aspect_ratio() {
        assert_eq!(scaled_dimensions(1000, 500, 320, 240), (320, 160));
        assert_eq!(scaled_dimensions(500, 1000, 320, 240), (120, 240));
        assert_eq!(scaled_dimensions(640, 480, 320, 240), (320, 240));
        // Never enlarged.
        assert_eq!(scaled_dimensions(100, 50, 800, 600), (100, 50));
        // Extreme ratios keep at least one pixel.
        assert_eq!(scaled_dimensions(10_000, 1, 320, 240), (320, 1));
        assert_eq!(scaled_dimensions(1, 10_000, 320, 240), (1, 240));
    }

    #[test]
    fn crop_takes_the_centre_with_the_target_ratio() {
        assert_eq!(crop_region(1000, 500, 96, 96), (250, 0, 500, 500));
        assert_eq!(crop_region(500, 1000, 96, 96), (0, 250, 500, 500));
        assert_eq!(crop_region(640, 480, 32, 32), (80, 0, 480, 480));
        assert_eq!(crop_region(96, 96, 96, 96), (0, 0, 96, 96));
    }

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
        });
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn renders_scaled_and_cropped_thumbnails() {
        let source = png(400, 200);
        let scaled = render(&source, 320, 240, Method::Scale, 1 << 20).unwrap();
        assert_eq!(
            (scaled.width, scaled.height, scaled.content_type),
            (320, 160, "image/png")
        );
        let decoded = image::load_from_memory(&scaled.bytes).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (320, 160));
        let cropped = render(&source, 96, 96, Method::Crop, 1 << 20).unwrap();
        assert_eq!((cropped.width, cropped.height), (96, 96));
    }

    fn encoded(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
        let img = image::RgbaImage::from_fn(w, h, |x, y| {
            image::Rgba([(x % 256) as u8, (y % 256) as u8, 7, 200])
        });
        let mut out = Vec::new();
        let img = if format == ImageFormat::Jpeg {
            DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(img).to_rgb8())
        } else {
            DynamicImage::ImageRgba8(img)
        };
        img.write_to(&mut Cursor::new(&mut out), format).unwrap();
        out
    }

    #[test]
    fn every_supported_format_is_thumbnailed() {
        for (format, content_type) in [
            (ImageFormat::Png, "image/png"),
            (ImageFormat::Jpeg, "image/jpeg"),
            (ImageFormat::Gif, "image/png"),
            (ImageFormat::WebP, "image/png"),
        ] {
            let rendered =
                render(&encoded(200, 100, format), 96, 96, Method::Crop, 1 << 20).unwrap();
            assert_eq!(
                (rendered.width, rendered.height, rendered.content_type),
                (96, 96, content_type),
                "{format:?}"
            );
            let decoded = image::load_from_memory(&rendered.bytes).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (96, 96));
            // Transparency survives in PNG thumbnails.
            if content_type == "image/png" {
                assert!(decoded.color().has_alpha(), "{format:?}");
            }
        }
    }

    #[test]
    fn refuses_what_is_not_an_image_or_too_large() {
        assert_eq!(
            render(b"plain text", 32, 32, Method::Crop, 1 << 20).unwrap_err(),
            ThumbnailError::NotAnImage
        );
        assert_eq!(
            render(&png(100, 100), 32, 32, Method::Crop, 9_999).unwrap_err(),
            ThumbnailError::TooLarge
        );
        let mut truncated = png(100, 100);
        truncated.truncate(60);
        assert_eq!(
            render(&truncated, 32, 32, Method::Crop, 1 << 20).unwrap_err(),
            ThumbnailError::NotAnImage
        );
    }
}
