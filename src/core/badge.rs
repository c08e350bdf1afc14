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
    #[error("theme must be auto, light or dark")]
    Theme,
    #[error("abbreviate must be 0 or 1")]
    Abbreviate,
    #[error("graph must be 30d")]
    Graph,
}

/// How the label half looks. Without a theme a badge has shields.io's classic grey label; a
/// theme picks a label that sits well on light or dark pages, or (`auto`) follows the reader's
/// `prefers-color-scheme` from a `<style>` inside the SVG.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Theme {
    Light,
    Dark,
    Auto,
}

impl Theme {
    pub fn parse(s: &str) -> Result<Self, BadgeError> {
        match s {
            "light" => Ok(Theme::Light),
            "dark" => Ok(Theme::Dark),
            "auto" => Ok(Theme::Auto),
            _ => Err(BadgeError::Theme),
        }
    }
}

/// Label background and text of a theme (contrast above 10:1 both ways).
const LIGHT_LABEL: (&str, &str) = ("#eaeef2", "#1f2328");
const DARK_LABEL: (&str, &str) = ("#30363d", "#f0f6fc");

/// Days a sparkline (`graph=30d`) shows.
pub const SPARKLINE_DAYS: u32 = 30;

/// Everything a badge request may choose, checked together before anything is counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BadgeOptions {
    pub color: Color,
    pub style: BadgeStyle,
    pub theme: Option<Theme>,
    /// `1.2k` instead of `1234`.
    pub abbreviate: bool,
    /// A sparkline of the last [`SPARKLINE_DAYS`] days after the value.
    pub graph: bool,
}

impl BadgeOptions {
    /// From the query: `color` (default blue), `style`, `theme`, `abbreviate`, `graph`.
    pub fn parse(
        color: Option<&str>,
        style: Option<&str>,
        theme: Option<&str>,
        abbreviate: Option<&str>,
        graph: Option<&str>,
    ) -> Result<Self, BadgeError> {
        Ok(BadgeOptions {
            color: Color::parse(color.unwrap_or("blue"))?,
            style: BadgeStyle::parse(style.unwrap_or("flat"))?,
            theme: theme
                .filter(|t| !t.is_empty())
                .map(Theme::parse)
                .transpose()?,
            abbreviate: match abbreviate {
                None | Some("0" | "false" | "") => false,
                Some("1" | "true") => true,
                Some(_) => return Err(BadgeError::Abbreviate),
            },
            graph: match graph {
                None | Some("") => false,
                Some("30d") => true,
                Some(_) => return Err(BadgeError::Graph),
            },
        })
    }

    /// How a count reads on the badge.
    pub fn number(&self, count: i64) -> String {
        if self.abbreviate {
            abbreviate(count)
        } else {
            count.to_string()
        }
    }
}

/// A colour safe to put in an attribute: always `#` and 3 or 6 hex digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Color(String);

impl Color {
    /// The colour as shields.io's endpoint JSON takes it: hex digits without `#`.
    pub fn shields(&self) -> &str {
        &self.0[1..]
    }
}

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
        Color("#007ec6".to_owned())
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
    pub theme: Option<Theme>,
    /// Counts to draw as a sparkline after the value, oldest first.
    pub sparkline: Option<Vec<i64>>,
}

impl Badge {
    /// A counter badge: `label` (default `views`), the count as `options` say, and the daily
    /// counts of the sparkline when `options.graph`.
    pub fn counter(
        label: Option<&str>,
        count: i64,
        options: &BadgeOptions,
        sparkline: Option<Vec<i64>>,
    ) -> Self {
        Badge {
            label: label.unwrap_or("views").to_owned(),
            value: options.number(count),
            color: options.color.clone(),
            label_color: Color("#555".to_owned()),
            style: options.style,
            theme: options.theme,
            sparkline: sparkline.filter(|_| options.graph),
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
    let value_text_w = measure(&value);
    let spark_w = if badge.sparkline.is_some() {
        SPARK_WIDTH + padding
    } else {
        0
    };
    let value_w = value_text_w + spark_w;
    let total_w = label_w + value_w;
    let label_text = escape_xml(&label);
    let value_text = escape_xml(&value);
    let title = if label.is_empty() {
        value_text.clone()
    } else {
        format!("{label_text}: {value_text}")
    };
    let text_fill = |c: &Color| if c.is_light() { "#333" } else { "#fff" };
    // The label's colours: the classic grey, or the theme's (auto: light unless the reader's
    // scheme is dark, by CSS inside the SVG; the attributes stay for renderers without CSS).
    let (label_bg, label_fill) = match badge.theme {
        None => (badge.label_color.as_str(), text_fill(&badge.label_color)),
        Some(Theme::Light | Theme::Auto) => LIGHT_LABEL,
        Some(Theme::Dark) => DARK_LABEL,
    };
    let auto = badge.theme == Some(Theme::Auto);
    let (bg_class, text_class) = if auto {
        (r#" class="l""#, r#" class="t""#)
    } else {
        ("", "")
    };
    let rounded = badge.style == BadgeStyle::Flat;
    // The 1px text shadow of the classic flat badge (it muddies a themed label).
    let shadow = rounded && badge.theme.is_none();
    let baseline = if height > 20 { 18 } else { 14 };

    let mut svg = String::with_capacity(1400);
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{height}" role="img" aria-label="{title}"><title>{title}</title>"#
    );
    if auto {
        let _ = write!(
            svg,
            "<style>.l{{fill:{}}}.t{{fill:{}}}@media (prefers-color-scheme:dark){{.l{{fill:{}}}.t{{fill:{}}}}}</style>",
            LIGHT_LABEL.0, LIGHT_LABEL.1, DARK_LABEL.0, DARK_LABEL.1
        );
    }
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
        r#"<rect width="{label_w}" height="{height}" fill="{label_bg}"{bg_class}/><rect x="{label_w}" width="{value_w}" height="{height}" fill="{}"/>"#,
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
    let mut text = |x: Halves, content: &str, fill: &str, class: &str| {
        if shadow {
            let _ = write!(
                svg,
                r##"<text x="{x}" y="{}" fill="#010101" fill-opacity=".3">{content}</text>"##,
                baseline + 1
            );
        }
        let _ = write!(
            svg,
            r#"<text x="{x}" y="{baseline}" fill="{fill}"{class}>{content}</text>"#
        );
    };
    if !label.is_empty() {
        text(Halves(label_w), &label_text, label_fill, text_class);
    }
    let value_fill = text_fill(&badge.color);
    text(
        Halves(2 * label_w + value_text_w),
        &value_text,
        value_fill,
        "",
    );
    svg.push_str("</g>");
    if let Some(counts) = &badge.sparkline {
        let x0 = label_w + value_text_w;
        let (top, bottom) = if height > 20 { (6, 22) } else { (4, 16) };
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{value_fill}" stroke-width="1.5" stroke-linejoin="round" stroke-linecap="round" points="{}"/>"#,
            sparkline_points(counts, x0, top, bottom)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Width of a sparkline in pixels: 30 days 2 px apart.
const SPARK_WIDTH: u32 = 2 * (SPARKLINE_DAYS - 1);

/// `x,y x,y …` of `counts` (oldest first) from `x0`, 2 px apart, scaled so the largest reaches
/// `top` and zero sits on `bottom`; coordinates in halves of a pixel (no float formatting).
fn sparkline_points(counts: &[i64], x0: u32, top: u32, bottom: u32) -> String {
    let max = counts.iter().copied().max().unwrap_or(0).max(1);
    let span = 2 * u64::from(bottom - top);
    let mut points = String::with_capacity(counts.len() * 9);
    for (i, &count) in counts.iter().enumerate() {
        // count ≤ max, so the rise is at most `span`; u128 keeps count × span exact.
        let rise = (count.max(0) as u128 * u128::from(span) / max as u128) as u64;
        let y = 2 * u64::from(bottom) - rise;
        if i > 0 {
            points.push(' ');
        }
        let x = x0 + 2 * i as u32;
        let _ = write!(points, "{x},{}", Halves(y as u32));
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counter badge as the route draws it, abbreviated.
    fn counter_badge(label: Option<&str>, count: i64, style: BadgeStyle) -> Badge {
        let options = BadgeOptions {
            style,
            abbreviate: true,
            ..Default::default()
        };
        Badge::counter(label, count, &options, None)
    }

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
        let badge = counter_badge(
            Some("<script>alert('x')</script> & \"q\""),
            5,
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
            let svg = counter_badge(Some("views"), 1234, style).render();
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
        let flat = counter_badge(Some("views"), 1, BadgeStyle::Flat).render();
        assert!(flat.contains("rx=\"3\""));
        let square = counter_badge(Some("views"), 1, BadgeStyle::FlatSquare).render();
        assert!(!square.contains("rx="));
    }

    #[test]
    fn widths_grow_with_text_and_labels_are_clipped() {
        assert!(text_width("views") < text_width("page views"));
        assert!(text_width("iii") < text_width("MMM"));
        let long = "x".repeat(200);
        let badge = counter_badge(Some(&long), 1, BadgeStyle::Flat);
        let svg = badge.render();
        assert!(svg.contains(&format!("{}…", "x".repeat(MAX_LABEL_CHARS - 1))));
        assert!(!svg.contains(&"x".repeat(MAX_LABEL_CHARS)));
        // An empty label draws the value alone.
        let bare = counter_badge(Some(""), 7, BadgeStyle::Flat).render();
        assert!(bare.contains("aria-label=\"7\""));
    }

    #[test]
    fn options_are_checked_together() {
        let options =
            BadgeOptions::parse(Some("green"), None, Some("auto"), Some("1"), Some("30d")).unwrap();
        assert_eq!(options.theme, Some(Theme::Auto));
        assert!(options.abbreviate && options.graph);
        assert_eq!(options.number(1234), "1.2k");
        let plain = BadgeOptions::parse(None, None, None, None, None).unwrap();
        assert_eq!(plain.number(1234), "1234");
        assert_eq!(plain.color.shields(), "007ec6");
        for (args, error) in [
            ((Some("nope"), None, None, None, None), BadgeError::Color),
            ((None, Some("round"), None, None, None), BadgeError::Style),
            ((None, None, Some("sepia"), None, None), BadgeError::Theme),
            (
                (None, None, None, Some("yes"), None),
                BadgeError::Abbreviate,
            ),
            ((None, None, None, None, Some("7d")), BadgeError::Graph),
        ] {
            let (c, s, t, a, g) = args;
            assert_eq!(BadgeOptions::parse(c, s, t, a, g), Err(error));
        }
    }

    #[test]
    fn themes_colour_the_label_and_auto_follows_the_reader() {
        let themed = |theme| {
            let options = BadgeOptions {
                theme: Some(theme),
                ..Default::default()
            };
            Badge::counter(Some("views"), 7, &options, None).render()
        };
        let light = themed(Theme::Light);
        assert!(
            light.contains(&format!(r#"fill="{}""#, LIGHT_LABEL.0)),
            "{light}"
        );
        assert!(!light.contains("<style>") && !light.contains("fill-opacity=\".3\""));
        let dark = themed(Theme::Dark);
        assert!(
            dark.contains(&format!(r#"fill="{}""#, DARK_LABEL.0)),
            "{dark}"
        );
        let auto = themed(Theme::Auto);
        assert!(
            auto.contains("@media (prefers-color-scheme:dark)"),
            "{auto}"
        );
        assert!(
            auto.contains(&format!(".l{{fill:{}}}", DARK_LABEL.0)),
            "{auto}"
        );
        assert!(auto.contains(r#"class="l""#) && auto.contains(r#"class="t""#));
        // The classic badge keeps its grey label and text shadow.
        let classic = counter_badge(Some("views"), 7, BadgeStyle::Flat).render();
        assert!(classic.contains(r##"fill="#555""##) && classic.contains("fill-opacity=\".3\""));
    }

    #[test]
    fn a_sparkline_follows_the_value() {
        let options = BadgeOptions {
            graph: true,
            ..Default::default()
        };
        let mut counts = vec![0i64; 30];
        counts[29] = 10;
        counts[14] = 5;
        let with = Badge::counter(Some("views"), 15, &options, Some(counts)).render();
        let without = Badge::counter(Some("views"), 15, &options, None).render();
        assert!(with.contains("<polyline"), "{with}");
        assert!(!without.contains("<polyline"));
        let points = with
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let points: Vec<&str> = points.split(' ').collect();
        assert_eq!(points.len(), 30);
        // Zero on the bottom line (y 16), the largest at the top (y 4), half of it between.
        assert!(points[0].ends_with(",16"), "{points:?}");
        assert!(points[29].ends_with(",4"), "{points:?}");
        assert!(points[14].ends_with(",10"), "{points:?}");
        let width = |svg: &str| -> u32 {
            svg.split("width=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        assert_eq!(width(&with), width(&without) + SPARK_WIDTH + 6);
        // Nothing overflows on extreme counts.
        let huge = Badge::counter(None, 1, &options, Some(vec![i64::MAX, 0, -5])).render();
        assert!(huge.contains("points=\""));
    }
}
