//! Small SVG line charts drawn on the server: no chart library to ship, nothing to run in the
//! browser, readable without JavaScript.

use maud::{Markup, html};

/// One line of a chart.
pub struct Series<'a> {
    /// Its name, in the legend.
    pub name: &'a str,
    /// A value per point (`None`: no data there).
    pub values: Vec<Option<f64>>,
    /// Its colour.
    pub colour: &'a str,
}

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 140.0;
const PAD: f64 = 28.0;

/// A chart titled `title`, with `unit` on its scale, and a table of the same figures (folded)
/// for screen readers and for reading exact values.
pub fn line_chart(title: &str, unit: &str, labels: &[String], series: &[Series<'_>]) -> Markup {
    let max = series.iter().flat_map(|s| s.values.iter().flatten()).fold(0.0f64, |m, v| m.max(*v));
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let n = labels.len().max(2) as f64;
    let x = |i: usize| PAD + (WIDTH - 2.0 * PAD) * i as f64 / (n - 1.0);
    let y = |v: f64| HEIGHT - PAD - (HEIGHT - 2.0 * PAD) * v / top;
    let path = |s: &Series<'_>| {
        let mut d = String::new();
        let at = |i: usize| s.values.get(i).copied().flatten();
        for (i, v) in s.values.iter().enumerate() {
            let Some(v) = v else { continue };
            let joined = i > 0 && at(i - 1).is_some();
            d.push_str(&format!("{}{:.1},{:.1} ", if joined { "L" } else { "M" }, x(i), y(*v)));
        }
        d
    };
    // A point with no neighbour draws no line: a dot shows it.
    let lonely = |s: &Series<'_>| -> Vec<(f64, f64)> {
        let at = |i: usize| s.values.get(i).copied().flatten();
        (0..s.values.len())
            .filter_map(|i| {
                let alone = (i == 0 || at(i - 1).is_none()) && at(i + 1).is_none();
                at(i).filter(|_| alone).map(|v| (x(i), y(v)))
            })
            .collect()
    };
    let shown: Vec<usize> =
        (0..labels.len()).filter(|&i| series.iter().any(|s| s.values.get(i).copied().flatten().is_some())).collect();
    html! {
        figure.chart {
            figcaption { (title) }
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title) {
                line x1=(PAD) y1=(HEIGHT - PAD) x2=(WIDTH - PAD) y2=(HEIGHT - PAD) stroke="#c9ced8" {}
                text x="2" y=(PAD - 8.0) font-size="11" fill="#5b6475" { (scale(top)) " " (unit) }
                text x="2" y=(HEIGHT - 4.0) font-size="11" fill="#5b6475" { (labels.first().cloned().unwrap_or_default()) }
                text x=(WIDTH - 2.0) y=(HEIGHT - 4.0) font-size="11" fill="#5b6475" text-anchor="end" { (labels.last().cloned().unwrap_or_default()) }
                @for s in series {
                    path d=(path(s)) fill="none" stroke=(s.colour) stroke-width="2" stroke-linejoin="round" {}
                    @for (cx, cy) in lonely(s) { circle cx=(format!("{cx:.1}")) cy=(format!("{cy:.1}")) r="3" fill=(s.colour) {} }
                }
            }
            // The page's CSP allows no inline style, so a legend's colour is drawn, not styled.
            p.legend { @for s in series { svg.swatch viewBox="0 0 10 10" width="10" height="10" aria-hidden="true" { rect width="10" height="10" fill=(s.colour) {} } " " (s.name) " " } }
            details.figures {
                summary { "Figures" }
                @if shown.is_empty() { p.muted { "No data in this window." } } @else {
                    table {
                        thead { tr { th { "Time (UTC)" } @for s in series { th { (s.name) } } } }
                        tbody { @for &i in &shown { tr {
                            td { (labels[i]) }
                            @for s in series { td { (s.values.get(i).copied().flatten().map(figure).unwrap_or_default()) } }
                        } } }
                    }
                }
            }
        }
    }
}

/// A scale's top value with as many decimals as its size needs (costs are often fractions of a cent).
fn scale(v: f64) -> String {
    match v {
        v if v >= 100.0 => format!("{v:.0}"),
        v if v >= 1.0 => format!("{v:.1}"),
        v => figure(v),
    }
}

/// A figure with three significant digits at most (`0.000123`, `12.3`, `1234`).
pub fn figure(v: f64) -> String {
    if v == 0.0 || v.abs() >= 100.0 {
        return format!("{v:.0}");
    }
    let decimals = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    let text = format!("{v:.decimals$}");
    if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.').to_string() } else { text }
}

#[cfg(test)]
mod tests {
    use super::figure;

    #[test]
    fn figures_keep_three_significant_digits() {
        assert_eq!(figure(0.0), "0");
        assert_eq!(figure(0.000_123_45), "0.000123");
        assert_eq!(figure(0.5), "0.5");
        assert_eq!(figure(12.345), "12.3");
        assert_eq!(figure(1234.5), "1234");
        assert_eq!(figure(-0.0042), "-0.0042");
    }
}
