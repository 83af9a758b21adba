//! The report's charts: SVG text drawn by plotters' SVG backend.
//!
//! Text is written as SVG `<text>` with a generic font family, laid out by
//! plotters' built-in size estimate (no font files are read), and drawn by
//! the browser with whatever sans-serif font it has.

use plotters::coord::Shift;
use plotters::prelude::*;

/// Width and height of a histogram, in pixels.
const HISTOGRAM_SIZE: (u32, u32) = (380, 240);
/// Width and height of a per-day chart.
const DAY_CHART_SIZE: (u32, u32) = (1100, 300);

const FONT: &str = "sans-serif";
const BAR: RGBColor = RGBColor(0x3b, 0x6e, 0xa8);
const MEAN: RGBColor = RGBColor(0xc0, 0x39, 0x2b);
const SHARE: RGBColor = RGBColor(0xe6, 0x7e, 0x22);
const COUNT: RGBColor = RGBColor(0x7f, 0x8c, 0x8d);

/// A chart that failed to draw (plotters' error, which is not `Send`).
fn drawing_error(what: &str, error: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing the {what} chart: {error}")
}

/// Draws into an SVG string of the given size.
fn svg(
    what: &str,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<String> {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        root.fill(&WHITE).map_err(|error| drawing_error(what, error))?;
        draw(&root)?;
        root.present().map_err(|error| drawing_error(what, error))?;
    }
    Ok(text)
}

/// A histogram of one class: statuses per score bin of `[0, 1]`, on a log
/// scale (scores pile up near 0: on a linear scale every other bar would
/// be invisible). Empty bins have no bar.
pub fn histogram(class: &str, bins: &[u64]) -> anyhow::Result<String> {
    let what = format!("{class} histogram");
    let highest = bins.iter().copied().max().unwrap_or(0).max(1) as f64;
    let width = 1.0 / bins.len().max(1) as f64;
    svg(&what, HISTOGRAM_SIZE, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(class, (FONT, 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d(0f64..1f64, (0.8f64..highest * 2.0).log_scale())
            .map_err(|error| drawing_error(&what, error))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("score")
            .y_desc("statuses (log)")
            .x_labels(6)
            .x_label_formatter(&|x| format!("{x:.1}"))
            .y_label_formatter(&|y| compact(*y))
            .label_style((FONT, 11))
            .draw()
            .map_err(|error| drawing_error(&what, error))?;
        chart
            .draw_series(bins.iter().enumerate().filter(|(_, count)| **count > 0).map(|(index, count)| {
                let left = index as f64 * width;
                Rectangle::new([(left, 0.8), (left + width, *count as f64)], BAR.filled())
            }))
            .map_err(|error| drawing_error(&what, error))?;
        Ok(())
    })
}

/// One day of the per-day charts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DayPoint {
    /// Days since 1970-01-01.
    pub day: i64,
    /// Scored statuses that day.
    pub n_statuses: u64,
    /// Their mean toxicity.
    pub mean_toxicity: f64,
    /// The share of them at or above the threshold.
    pub share_toxic: f64,
}

/// Mean toxicity and the share of toxic statuses per day (lines, left
/// axis 0 to 1), over the day's scored statuses (bars, right axis).
pub fn days(points: &[DayPoint], threshold: f64) -> anyhow::Result<String> {
    let what = "per-day";
    let first = points.first().map_or(0, |point| point.day);
    let last = points.last().map_or(0, |point| point.day);
    let x_range = first as f64..(last + 1) as f64;
    let highest = points.iter().map(|point| point.n_statuses).max().unwrap_or(0).max(1) as f64;
    svg(what, DAY_CHART_SIZE, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(52)
            .right_y_label_area_size(60)
            .build_cartesian_2d(x_range.clone(), 0f64..1f64)
            .map_err(|error| drawing_error(what, error))?
            .set_secondary_coord(x_range, 0f64..highest * 1.1);
        chart
            .configure_mesh()
            .disable_x_mesh()
            // At most one label a day: more would repeat a date.
            .x_labels(usize::try_from(last - first + 2).unwrap_or(2).min(10))
            .x_label_formatter(&|x| day_label(x.floor() as i64))
            .y_desc("toxicity")
            .label_style((FONT, 11))
            .draw()
            .map_err(|error| drawing_error(what, error))?;
        chart
            .configure_secondary_axes()
            .y_desc("scored statuses")
            .y_label_formatter(&|y| compact(*y))
            .label_style((FONT, 11))
            .draw()
            .map_err(|error| drawing_error(what, error))?;
        chart
            .draw_secondary_series(points.iter().map(|point| {
                let left = point.day as f64 + 0.1;
                Rectangle::new([(left, 0.0), (left + 0.8, point.n_statuses as f64)], COUNT.mix(0.35).filled())
            }))
            .map_err(|error| drawing_error(what, error))?
            .label("scored statuses (right)")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], COUNT.mix(0.35).filled()));
        let center = |point: &DayPoint| point.day as f64 + 0.5;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|point| (center(point), point.mean_toxicity)),
                MEAN.stroke_width(2),
            ))
            .map_err(|error| drawing_error(what, error))?
            .label("mean toxicity")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], MEAN.stroke_width(2)));
        // A line needs two days; a dot marks every day, so that a report of
        // one day (or of days far apart) shows its values too.
        chart
            .draw_series(points.iter().map(|point| Circle::new((center(point), point.mean_toxicity), 3, MEAN.filled())))
            .map_err(|error| drawing_error(what, error))?;
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|point| (center(point), point.share_toxic)),
                SHARE.stroke_width(2),
            ))
            .map_err(|error| drawing_error(what, error))?
            .label(format!("share with toxicity ≥ {threshold}"))
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], SHARE.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|point| Circle::new((center(point), point.share_toxic), 3, SHARE.filled())))
            .map_err(|error| drawing_error(what, error))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 12))
            .draw()
            .map_err(|error| drawing_error(what, error))?;
        Ok(())
    })
}

/// `YYYY-MM-DD` of a day count since 1970-01-01.
pub fn day_label(day: i64) -> String {
    jiff::civil::date(1970, 1, 1)
        .checked_add(jiff::Span::new().days(day))
        .map_or_else(|_| day.to_string(), |date| date.to_string())
}

/// The day count since 1970-01-01 of a `YYYY-MM-DD` date.
pub fn day_number(date: &str) -> Option<i64> {
    let date: jiff::civil::Date = date.parse().ok()?;
    let days = date.since((jiff::Unit::Day, jiff::civil::date(1970, 1, 1))).ok()?;
    Some(i64::from(days.get_days()))
}

/// An axis label: 1200 as "1.2k", 3000000 as "3M".
fn compact(value: f64) -> String {
    let (scaled, suffix) = match value.abs() {
        v if v >= 1e9 => (value / 1e9, "G"),
        v if v >= 1e6 => (value / 1e6, "M"),
        v if v >= 1e3 => (value / 1e3, "k"),
        _ => (value, ""),
    };
    let text = format!("{scaled:.1}");
    let text = text.strip_suffix(".0").unwrap_or(&text);
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_convert_both_ways() {
        for (date, number) in [("1970-01-01", 0), ("2020-01-01", 18_262), ("1969-12-31", -1)] {
            assert_eq!(day_number(date), Some(number), "{date}");
            assert_eq!(day_label(number), date);
        }
        assert_eq!(day_number("2020-02-30"), None);
    }

    #[test]
    fn axis_labels_are_compact() {
        assert_eq!(compact(1.0), "1");
        assert_eq!(compact(1_200.0), "1.2k");
        assert_eq!(compact(3_000_000.0), "3M");
    }

    #[test]
    fn charts_are_svg_with_one_bar_per_non_empty_bin() {
        let svg = histogram("toxicity", &[5, 0, 2, 1]).expect("histogram");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{svg}");
        assert!(svg.contains("toxicity"), "the caption");
        let bars = svg.matches(&format!("fill=\"#{:02X}{:02X}{:02X}\"", BAR.0, BAR.1, BAR.2)).count();
        assert_eq!(bars, 3, "{svg}");
        let points = [
            DayPoint { day: 18_262, n_statuses: 10, mean_toxicity: 0.2, share_toxic: 0.1 },
            DayPoint { day: 18_264, n_statuses: 4, mean_toxicity: 0.6, share_toxic: 0.5 },
        ];
        let svg = days(&points, 0.5).expect("days");
        assert!(svg.contains("2020-01-01"), "a date label");
        assert!(svg.contains("mean toxicity"), "the legend");
    }

    #[test]
    fn a_report_of_one_day_shows_that_days_values() {
        let one_day = [DayPoint { day: 18_262, n_statuses: 10, mean_toxicity: 0.2, share_toxic: 0.1 }];
        let svg = days(&one_day, 0.5).expect("days");
        for (what, color) in [("mean", MEAN), ("share", SHARE)] {
            let marked = svg
                .split("<circle")
                .skip(1)
                .filter(|circle| circle.contains(&format!("fill=\"#{:02X}{:02X}{:02X}\"", color.0, color.1, color.2)))
                .count();
            assert_eq!(marked, 1, "one {what} dot: {svg}");
        }
    }
}
