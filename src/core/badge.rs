//! SVG badges in the shields.io look: `flat`, `flat-square`, `for-the-badge`.
//!
//! Everything that reaches the SVG is either escaped text (label, value) or a colour that passed
//! [`Color::parse`] (a known name or a hex code), so no query parameter can inject markup.
//! Text widths are approximated from per-character Verdana widths (shields.io measures with the
//! real font; an approximation within a few pixels is enough for a counter).

use std::fmt::Write;

/// The longest label kept (characters); longer labels are cut with `…`.
pub const MAX_LABEL_CHARS: usize = 48;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BadgeStyle {
    #[default]
    Flat,
    FlatSquare,
    ForTheBadge,
}

impl BadgeStyle {
    /// `flat`, `flat-square` or `for-the-badge`.
    pub fn parse(s: &str) -> Result<Self, BadgeError> {
        match s {
            "flat" => Ok(BadgeStyle::Flat),
            "flat-square" => Ok(BadgeStyle::FlatSquare),
            "for-the-badge" => Ok(BadgeStyle::ForTheBadge),
            _ => Err(BadgeError::Style),
        }
    }
}

/// A bad badge parameter: HTTP 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadgeError {
    #[error("color must be a named color or a hex code like 4c1 or ff8800")]
    Color,
    #[error("style must be flat, flat-square or for-the-badge")]
    Style,
}

/// A colour safe to put in an attribute: always `#` and 3 or 6 hex digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Color(String);

/// shields.io's named colours.
const NAMED_COLORS: &[(&str, &str)] = &[
    ("brightgreen", "#4c1"),
    ("green", "#97ca00"),
    ("yellowgreen", "#a4a61d"),
    ("yellow", "#dfb317"),
    ("orange", "#fe7d37"),
    ("red", "#e05d44"),
    ("blue", "#007ec6"),
    ("lightgrey", "#9f9f9f"),
    ("lightgray", "#9f9f9f"),
    ("grey", "#555"),
    ("gray", "#555"),
    ("blueviolet", "#8a2be2"),
    ("success", "#4c1"),
    ("important", "#fe7d37"),
    ("critical", "#e05d44"),
    ("informational", "#007ec6"),
    ("inactive", "#9f9f9f"),
    ("black", "#000"),
    ("white", "#fff"),
];

impl Color {
    /// A named colour (case-insensitive) or a hex code of 3 or 6 digits, with or without `#`.
    pub fn parse(s: &str) -> Result<Self, BadgeError> {
        let s = s.trim();
        if let Some((_, hex)) = NAMED_COLORS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
        {
            return Ok(Color((*hex).to_owned()));
        }
        let hex = s.strip_prefix('#').unwrap_or(s);
        if matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Color(format!("#{}", hex.to_ascii_lowercase())))
        } else {
            Err(BadgeError::Color)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether dark text reads better on this background (relative luminance above ~0.6).
    fn is_light(&self) -> bool {
        let hex = &self.0[1..];
        let channel = |i: usize| -> f64 {
            let v = if hex.len() == 3 {
                u8::from_str_radix(&hex[i..i + 1].repeat(2), 16)
            } else {
                u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            };
            f64::from(v.unwrap_or(0)) / 255.0
        };
        0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2) > 0.6
    }
}

impl Default for Color {
    fn default() -> Self {
        Color("#4c1".to_owned())
    }
}

/// What to draw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Badge {
    pub label: String,
    pub value: String,
    pub color: Color,
    pub label_color: Color,
    pub style: BadgeStyle,
}

impl Badge {
    /// A counter badge: `label` (default `views`) and the abbreviated count.
    pub fn counter(label: Option<&str>, count: i64, color: Color, style: BadgeStyle) -> Self {
        Badge {
            label: label.unwrap_or("views").to_owned(),
            value: abbreviate(count),
            color,
            label_color: Color("#555".to_owned()),
            style,
        }
    }

    pub fn render(&self) -> String {
        render(self)
    }

    /// [`Badge::render`] with the platform's Unicode upper-casing (`for-the-badge`), e.g. the
    /// JavaScript engine's in the worker rather than Rust's tables; `str::to_uppercase` gives
    /// exactly `render`.
    pub fn render_with(&self, uppercase: fn(&str) -> String) -> String {
        render_with(self, uppercase)
    }
}

/// `999`, `1.2k`, `12k`, `123k`, `1.2M`, `3.4B`, `5.6T`, `7.8P`, `9.2E`: one decimal below 10 of
/// a unit, rounded down so a badge never claims more than was counted.
pub fn abbreviate(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let magnitude = n.unsigned_abs();
    if magnitude < 1000 {
        return format!("{sign}{magnitude}");
    }
    let units = ["k", "M", "B", "T", "P", "E"];
    let mut unit = 0;
    let mut scale: u64 = 1000;
    while unit + 1 < units.len() && magnitude / scale >= 1000 {
        scale *= 1000;
        unit += 1;
    }
    let whole = magnitude / scale;
    if whole < 10 {
        let tenth = (magnitude % scale) / (scale / 10);
        if tenth > 0 {
            return format!("{sign}{whole}.{tenth}{}", units[unit]);
        }
    }
    format!("{sign}{whole}{}", units[unit])
}

/// Escape text for SVG element content and attributes.
pub fn escape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Approximate width in pixels of `text` in Verdana 11px (shields.io's font).
pub fn text_width(text: &str) -> f64 {
    text.chars().map(char_width).sum()
}

fn char_width(c: char) -> f64 {
    match c {
        'i' | 'j' | 'l' | '|' | '\'' | '.' | ',' | ':' | ';' | '!' => 3.5,
        'f' | 'r' | 't' | 'I' | ' ' | '(' | ')' | '[' | ']' | '-' => 4.8,
        'm' | 'w' | 'M' | 'W' | '%' | '@' => 10.5,
        'A'..='Z' => 7.7,
        '0'..='9' => 7.0,
        c if c.is_ascii() => 6.6,
        // CJK and other wide characters.
        _ => 11.0,
    }
}

/// Cut a label to [`MAX_LABEL_CHARS`] characters.
fn clip(label: &str) -> String {
    if label.chars().count() <= MAX_LABEL_CHARS {
        label.to_owned()
    } else {
        let mut cut: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// A length of `n / 2` pixels, written like `f64`'s `Display` would (`43`, `12.5`) without
/// pulling float formatting into the worker.
struct Halves(u32);

impl std::fmt::Display for Halves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let whole = self.0 / 2;
        if self.0.is_multiple_of(2) {
            write!(f, "{whole}")
        } else {
            write!(f, "{whole}.5")
        }
    }
}

/// The SVG document of `badge`.
///
/// Widths are measured in `f64` (as always), then rounded to whole pixels; every number written
/// is an integer or a half, formatted without float formatting (the wasm worker stays smaller).
pub fn render(badge: &Badge) -> String {
    render_with(badge, str::to_uppercase)
}

/// [`render`] with `uppercase` for the `for-the-badge` texts.
pub fn render_with(badge: &Badge, uppercase: fn(&str) -> String) -> String {
    let (label, value) = match badge.style {
        BadgeStyle::ForTheBadge => (uppercase(&clip(&badge.label)), uppercase(&badge.value)),
        _ => (clip(&badge.label), badge.value.clone()),
    };
    // (height, padding, font size: px; letter spacing: px, as f64 and as written; scale)
    let (height, padding, font_size, (spacing, spacing_text), scale): (u32, u32, u32, _, f64) =
        match badge.style {
            // for-the-badge: 10px bold (about as wide as 11px regular, so the same table with
            // scale 1) plus letter spacing 1.25, and wider padding.
            BadgeStyle::ForTheBadge => (28, 12, 10, (1.25, "1.25"), 1.0),
            _ => (20, 6, 11, (0.0, "0"), 1.0),
        };
    let measure = |t: &str| {
        // Non-negative and far below u32::MAX (at most a few thousand pixels).
        let text = (text_width(t) * scale + spacing * t.chars().count() as f64).round();
        text as u32 + 2 * padding
    };
    let label_w = if label.is_empty() { 0 } else { measure(&label) };
    let value_w = measure(&value);
    let total_w = label_w + value_w;
    let label_text = escape_xml(&label);
    let value_text = escape_xml(&value);
    let title = if label.is_empty() {
        value_text.clone()
    } else {
        format!("{label_text}: {value_text}")
    };
    let text_fill = |c: &Color| if c.is_light() { "#333" } else { "#fff" };
    let rounded = badge.style == BadgeStyle::Flat;
    let baseline = if height > 20 { 18 } else { 14 };

    let mut svg = String::with_capacity(1200);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{height}" role="img" aria-label="{title}"><title>{title}</title>"#
    );
    if rounded {
        svg.push_str(r##"<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>"##);
        let _ = write!(
            svg,
            r##"<clipPath id="r"><rect width="{total_w}" height="{height}" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)">"##
        );
    } else {
        svg.push_str("<g shape-rendering=\"crispEdges\">");
    }
    let _ = write!(
        svg,
        r#"<rect width="{label_w}" height="{height}" fill="{}"/><rect x="{label_w}" width="{value_w}" height="{height}" fill="{}"/>"#,
        badge.label_color.as_str(),
        badge.color.as_str()
    );
    if rounded {
        let _ = write!(
            svg,
            r#"<rect width="{total_w}" height="{height}" fill="url(#s)"/>"#
        );
    }
    svg.push_str("</g>");
    let weight = if badge.style == BadgeStyle::ForTheBadge {
        r#" font-weight="bold""#
    } else {
        ""
    };
    let _ = write!(
        svg,
        r#"<g text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" text-rendering="geometricPrecision" font-size="{font_size}"{weight} letter-spacing="{spacing_text}">"#
    );
    let mut text = |x: Halves, content: &str, fill: &str| {
        if rounded {
            // The 1px shadow of the flat style.
            let _ = write!(
                svg,
                r##"<text x="{x}" y="{}" fill="#010101" fill-opacity=".3">{content}</text>"##,
                baseline + 1
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{x}" y="{baseline}" fill="{fill}">{content}</text>"#
        );
    };
    if !label.is_empty() {
        text(Halves(label_w), &label_text, text_fill(&badge.label_color));
    }
    text(
        Halves(2 * label_w + value_w),
        &value_text,
        text_fill(&badge.color),
    );
    svg.push_str("</g></svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_abbreviate_without_overstating() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (1000, "1k"),
            (1234, "1.2k"),
            (1299, "1.2k"),
            (12_345, "12k"),
            (123_456, "123k"),
            (999_999, "999k"),
            (1_000_000, "1M"),
            (3_456_789, "3.4M"),
            (7_800_000_000, "7.8B"),
            (-1500, "-1.5k"),
            (i64::MAX, "9.2E"),
            (i64::MIN, "-9.2E"),
        ];
        for (n, text) in cases {
            assert_eq!(abbreviate(n), text, "{n}");
        }
    }

    #[test]
    fn colors_are_names_or_hex_only() {
        assert_eq!(Color::parse("brightgreen").unwrap().as_str(), "#4c1");
        assert_eq!(Color::parse("Blue").unwrap().as_str(), "#007ec6");
        assert_eq!(Color::parse("FF8800").unwrap().as_str(), "#ff8800");
        assert_eq!(Color::parse("#abc").unwrap().as_str(), "#abc");
        for bad in [
            "",
            "#12",
            "12345g",
            "red\" onload=\"alert(1)",
            "url(#x)",
            "#1234567",
        ] {
            assert_eq!(Color::parse(bad), Err(BadgeError::Color), "{bad}");
        }
        assert!(Color::parse("fff").unwrap().is_light());
        assert!(!Color::parse("555").unwrap().is_light());
    }

    #[test]
    fn styles_parse() {
        assert_eq!(BadgeStyle::parse("flat-square"), Ok(BadgeStyle::FlatSquare));
        assert_eq!(
            BadgeStyle::parse("for-the-badge"),
            Ok(BadgeStyle::ForTheBadge)
        );
        assert!(BadgeStyle::parse("plastic<").is_err());
    }

    #[test]
    fn text_is_escaped() {
        let badge = Badge::counter(
            Some("<script>alert('x')</script> & \"q\""),
            5,
            Color::default(),
            BadgeStyle::Flat,
        );
        let svg = badge.render();
        assert!(!svg.contains("<script>"));
        assert!(
            svg.contains("&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt; &amp; &quot;q&quot;")
        );
        assert_eq!(escape_xml("a\u{0}b"), "ab");
    }

    #[test]
    fn every_style_renders_a_well_formed_document() {
        for style in [
            BadgeStyle::Flat,
            BadgeStyle::FlatSquare,
            BadgeStyle::ForTheBadge,
        ] {
            let svg = Badge::counter(Some("views"), 1234, Color::default(), style).render();
            assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
            assert!(svg.ends_with("</svg>"));
            assert_eq!(svg.matches("<g").count(), svg.matches("</g>").count());
            let value = if style == BadgeStyle::ForTheBadge {
                "1.2K"
            } else {
                "1.2k"
            };
            assert!(svg.contains(&format!(">{value}</text>")), "{svg}");
            let height = if style == BadgeStyle::ForTheBadge {
                "28"
            } else {
                "20"
            };
            assert!(svg.contains(&format!("height=\"{height}\"")));
        }
        let flat = Badge::counter(Some("views"), 1, Color::default(), BadgeStyle::Flat).render();
        assert!(flat.contains("rx=\"3\""));
        let square =
            Badge::counter(Some("views"), 1, Color::default(), BadgeStyle::FlatSquare).render();
        assert!(!square.contains("rx="));
    }

    #[test]
    fn widths_grow_with_text_and_labels_are_clipped() {
        assert!(text_width("views") < text_width("page views"));
        assert!(text_width("iii") < text_width("MMM"));
        let long = "x".repeat(200);
        let badge = Badge::counter(Some(&long), 1, Color::default(), BadgeStyle::Flat);
        let svg = badge.render();
        assert!(svg.contains(&format!("{}…", "x".repeat(MAX_LABEL_CHARS - 1))));
        assert!(!svg.contains(&"x".repeat(MAX_LABEL_CHARS)));
        // An empty label draws the value alone.
        let bare = Badge::counter(Some(""), 7, Color::default(), BadgeStyle::Flat).render();
        assert!(bare.contains("aria-label=\"7\""));
    }
}
