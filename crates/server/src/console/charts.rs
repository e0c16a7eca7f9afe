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

/// A chart titled `title`, with `unit` on its scale, and a text table of the same figures for
/// screen readers.
pub fn line_chart(title: &str, unit: &str, labels: &[String], series: &[Series<'_>]) -> Markup {
    let max = series.iter().flat_map(|s| s.values.iter().flatten()).fold(0.0f64, |m, v| m.max(*v));
    let top = if max > 0.0 { max * 1.1 } else { 1.0 };
    let n = labels.len().max(2) as f64;
    let x = |i: usize| PAD + (WIDTH - 2.0 * PAD) * i as f64 / (n - 1.0);
    let y = |v: f64| HEIGHT - PAD - (HEIGHT - 2.0 * PAD) * v / top;
    let path = |s: &Series<'_>| {
        let mut d = String::new();
        let mut pen_down = false;
        for (i, v) in s.values.iter().enumerate() {
            match v {
                Some(v) => {
                    d.push_str(&format!("{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, x(i), y(*v)));
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        d
    };
    html! {
        figure.chart {
            figcaption { (title) }
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(title) preserveAspectRatio="none" {
                line x1=(PAD) y1=(HEIGHT - PAD) x2=(WIDTH - PAD) y2=(HEIGHT - PAD) stroke="#c9ced8" {}
                text x="2" y=(PAD - 8.0) font-size="10" fill="#5b6475" { (scale(top)) " " (unit) }
                text x="2" y=(HEIGHT - 4.0) font-size="10" fill="#5b6475" { (labels.first().cloned().unwrap_or_default()) }
                text x=(WIDTH - 2.0) y=(HEIGHT - 4.0) font-size="10" fill="#5b6475" text-anchor="end" { (labels.last().cloned().unwrap_or_default()) }
                @for s in series {
                    path d=(path(s)) fill="none" stroke=(s.colour) stroke-width="2" {}
                }
            }
            // The page's CSP allows no inline style, so a legend's colour is drawn, not styled.
            p.legend { @for s in series { svg.swatch viewBox="0 0 10 10" width="10" height="10" aria-hidden="true" { rect width="10" height="10" fill=(s.colour) {} } " " (s.name) " " } }
        }
    }
}

/// A scale's top value with as many decimals as its size needs (costs are often fractions of a cent).
fn scale(v: f64) -> String {
    match v {
        v if v >= 100.0 => format!("{v:.0}"),
        v if v >= 1.0 => format!("{v:.1}"),
        v => format!("{v:.4}"),
    }
}
